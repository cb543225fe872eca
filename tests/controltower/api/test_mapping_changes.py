"""Maker-checker: a change to a posting rule or product mapping applies only when a second
integration admin approves it; never its proposer; never against a row that changed since."""

from __future__ import annotations

import pytest

from sync.errors import DomainError, PermissionDenied
from sync.models import AuditEntry, MappingChange, ProductMapping
from sync.services.mapping_changes import (
    mapping_change_approve,
    mapping_change_propose,
    mapping_change_reject,
    mapping_change_withdraw,
)
from sync.services.mappings import mapping_save
from tests.factories import UserFactory, map_product

pytestmark = pytest.mark.django_db
V1 = "/api/v1/"
BODY = {
    "source_system": "stripe",
    "source_ref": "price_new",
    "product_code": "NEW",
    "product_name": "New",
    "product_family": "",
    "revenue_type": "ratable",
    "effective_from": "2026-01-01",
}


@pytest.fixture
def iris(db):
    return UserFactory(username="iris", roles=["integration_admin"])


def test_a_proposal_changes_nothing_until_a_second_admin_approves(api, integration_admin, iris):
    resp = api(integration_admin).post(
        f"{V1}product-mappings/", {**BODY, "reason": "new plan"}, format="json"
    )
    assert resp.status_code == 202
    change = resp.json()
    assert (change["state"], change["operation"], change["proposed_by"]) == (
        "pending",
        "create",
        "ivan",
    )
    assert not ProductMapping.objects.exists()
    own = api(integration_admin).post(f"{V1}mapping-changes/{change['id']}/approve/", {})
    assert own.status_code == 403
    assert "another integration admin must approve" in own.json()["detail"]
    assert not ProductMapping.objects.exists()

    done = api(iris).post(f"{V1}mapping-changes/{change['id']}/approve/", {"note": "ok"})
    assert done.status_code == 200 and done.json()["state"] == "applied"
    mapping = ProductMapping.objects.get(source_ref="price_new")
    assert done.json()["applied_id"] == mapping.pk
    create = AuditEntry.objects.get(action="productmapping.create")
    assert create.actor == iris
    assert "proposed by ivan (new plan), approved by iris: ok" in create.reason
    assert list(
        AuditEntry.objects.filter(action__startswith="mapping_change.")
        .order_by("id")
        .values_list("action", "actor_label")
    ) == [("mapping_change.propose", "ivan"), ("mapping_change.approve", "iris")]


def test_direct_writes_cannot_bypass_the_approval(integration_admin):
    with pytest.raises(DomainError, match="second integration admin"):
        mapping_save(actor=integration_admin, instance=ProductMapping(**{**BODY}))
    assert not ProductMapping.objects.exists()


def test_an_invalid_proposal_is_refused_at_once(api, integration_admin):
    resp = api(integration_admin).post(
        f"{V1}product-mappings/", {**BODY, "revenue_type": "nonsense", "reason": "x"}, format="json"
    )
    assert resp.status_code == 400
    assert not MappingChange.objects.exists()
    missing = api(integration_admin).post(f"{V1}product-mappings/", BODY, format="json")
    assert missing.status_code == 400 and "reason" in missing.json()


def test_approval_is_refused_when_the_row_changed_since(integration_admin, iris):
    pm = map_product("price_a")
    change = mapping_change_propose(
        actor=integration_admin,
        kind="product_mapping",
        reason="rename",
        values={"product_code": "A2"},
        target_id=pm.pk,
    )
    ProductMapping.objects.filter(pk=pm.pk).update(product_name="changed meanwhile")
    with pytest.raises(DomainError, match="changed since"):
        mapping_change_approve(change_id=change.pk, actor=iris)
    pm.refresh_from_db()
    assert pm.product_code != "A2"
    assert MappingChange.objects.get(pk=change.pk).state == "pending"


def test_one_pending_change_per_row(integration_admin):
    pm = map_product("price_a")
    mapping_change_propose(
        actor=integration_admin, kind="product_mapping", reason="a", target_id=pm.pk, values={}
    )
    with pytest.raises(DomainError, match="already awaits approval"):
        mapping_change_propose(
            actor=integration_admin, kind="product_mapping", reason="b", target_id=pm.pk, values={}
        )


def test_reject_needs_a_reason_withdraw_is_for_the_proposer(integration_admin, iris):
    change = mapping_change_propose(
        actor=integration_admin,
        kind="product_mapping",
        reason="r",
        values={**BODY, "effective_from": "2026-01-01"},
    )
    with pytest.raises(DomainError, match="reason is required"):
        mapping_change_reject(change_id=change.pk, actor=iris, note="")
    with pytest.raises(PermissionDenied):
        mapping_change_withdraw(change_id=change.pk, actor=iris)
    mapping_change_reject(change_id=change.pk, actor=iris, note="wrong family")
    change.refresh_from_db()
    assert (change.state, change.decided_by, change.decision_note) == (
        "rejected",
        iris,
        "wrong family",
    )
    with pytest.raises(DomainError, match="already rejected"):
        mapping_change_approve(change_id=change.pk, actor=iris)
    assert not ProductMapping.objects.exists()


@pytest.mark.parametrize("persona", ["finance_ops", "manager", "auditor"])
def test_other_roles_can_neither_propose_nor_decide(api, request, persona, integration_admin):
    user = request.getfixturevalue(persona)
    resp = api(user).post(f"{V1}product-mappings/", {**BODY, "reason": "x"}, format="json")
    assert resp.status_code == 403
    change = mapping_change_propose(
        actor=integration_admin, kind="product_mapping", reason="r", values=BODY
    )
    assert api(user).post(f"{V1}mapping-changes/{change.pk}/approve/", {}).status_code == 403
    assert api(user).get(f"{V1}mapping-changes/").json()["count"] == 1  # may read
    assert MappingChange.objects.get().state == "pending"


def test_delete_is_proposed_and_applied_on_approval(api, integration_admin, iris):
    pm = map_product("price_old")
    resp = api(integration_admin).delete(f"{V1}product-mappings/{pm.pk}/?reason=retired")
    assert resp.status_code == 202 and resp.json()["operation"] == "delete"
    assert ProductMapping.objects.filter(pk=pm.pk).exists()
    api(iris).post(f"{V1}mapping-changes/{resp.json()['id']}/approve/", {})
    assert not ProductMapping.objects.filter(pk=pm.pk).exists()
