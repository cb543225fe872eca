"""Mappings on screen: lists, validated forms with a reason, history, maker-checker for posting
rules and product mappings, and fix-and-replay of the exceptions a fix unblocks."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from sync.models import AuditEntry, ExceptionCase, FxRate, MappingChange, ProductMapping
from sync.root_causes import root_cause_of
from tests.factories import (
    ExceptionCaseFactory,
    GLAccountFactory,
    LegalEntityFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def _stuck_on(category: str, context: dict, n: int = 2) -> list[ExceptionCase]:
    return [
        ExceptionCaseFactory(
            category=category, context=context, root_cause=root_cause_of(category, context)
        )
        for _ in range(n)
    ]


def test_index_and_lists_are_readable_by_every_role(client, manager, django_assert_max_num_queries):
    us = LegalEntityFactory()
    for i in range(12):
        GLAccountFactory(legal_entity=us, number=f"{4000 + i}", kind="revenue")
    client.force_login(manager)
    index = client.get(reverse("mapping-index")).content.decode()
    assert re.search(r'id="kind-gl_account".*?>12<', index, re.S)
    client.get(reverse("mapping-list", args=["gl_account"]))
    with django_assert_max_num_queries(10):
        listed = client.get(reverse("mapping-list", args=["gl_account"])).content.decode()
    assert listed.count('<tr id="mapping-') == 12
    assert "New GL account" not in listed  # a manager only reads
    searched = client.get(reverse("mapping-list", args=["gl_account"]), {"q": "4011"})
    assert searched.content.decode().count('<tr id="mapping-') == 1


def test_a_saved_fix_lists_the_exceptions_it_unblocks_and_finance_ops_replay_them(
    client, integration_admin, finance_ops
):
    LegalEntityFactory()
    cases = _stuck_on("missing_fx_rate", {"pair": "EUR/USD", "date": "2026-11-02"}, n=3)
    other = _stuck_on("missing_fx_rate", {"pair": "GBP/USD", "date": "2026-11-02"}, n=1)
    client.force_login(integration_admin)
    form = {
        "rate_date": "2026-11-01",
        "base_currency": "EUR",
        "quote_currency": "USD",
        "rate": "1.0842",
        "reason": "ECB rate",
    }
    response = client.post(reverse("mapping-new", args=["fx_rate"]), form, follow=True)
    rate = FxRate.objects.get(base_currency="EUR")
    assert AuditEntry.objects.get(action="fxrate.create").reason == "ECB rate"
    page = response.content.decode()
    assert '<strong id="unblocked-count">3</strong>' in page
    assert f'id="exception-{other[0].pk}"' not in page
    assert "Finance ops replay them" in page  # an admin-only user does not replay

    client.force_login(finance_ops)
    fix = reverse("mapping-fix")
    client.post(fix, {"kind": "fx_rate", "pk": rate.pk, "reason": "rate added"})
    replays = AuditEntry.objects.filter(action="journey.replay", reason="rate added")
    assert replays.count() == 3
    assert set(replays.values_list("object_id", flat=True)) == {str(c.journey_id) for c in cases}


def test_invalid_input_shows_the_errors_and_saves_nothing(client, integration_admin):
    client.force_login(integration_admin)
    form = {"journey_type": "invoice_to_ledger", "warning_minutes": "90", "target_minutes": "60"}
    response = client.post(reverse("mapping-new", args=["sla_policy"]), form)
    assert response.status_code == 400
    html = response.content.decode()
    assert "This field is required." in html  # the reason
    response = client.post(reverse("mapping-new", args=["sla_policy"]), {**form, "reason": "r"})
    assert response.status_code == 400
    assert "warning minutes cannot exceed target minutes" in response.content.decode()
    assert not AuditEntry.objects.filter(action__startswith="slapolicy").exists()


def test_product_mapping_on_screen_is_proposed_then_approved_by_another_admin(
    client, integration_admin
):
    cases = _stuck_on("unmapped_product", {"missing": {"unmapped_product": ["price_x"]}}, n=2)
    client.force_login(integration_admin)
    form = {
        "source_system": "stripe",
        "source_ref": "price_x",
        "product_code": "X",
        "product_name": "X",
        "product_family": "",
        "revenue_type": "ratable",
        "effective_from": "2000-01-01",
        "reason": "new price",
    }
    page = client.post(reverse("mapping-new", args=["product_mapping"]), form, follow=True)
    change = MappingChange.objects.get()
    assert "another integration admin must approve it" in page.content.decode()
    assert not ProductMapping.objects.exists()
    own = client.post(reverse("mapping-change-action", args=[change.pk, "approve"]))
    assert own.status_code == 403

    iris = UserFactory(username="iris", roles=["integration_admin"])
    client.force_login(iris)
    done = client.post(
        reverse("mapping-change-action", args=[change.pk, "approve"]), {"note": "ok"}, follow=True
    )
    mapping = ProductMapping.objects.get(source_ref="price_x")
    html = done.content.decode()
    assert '<strong id="unblocked-count">2</strong>' in html
    assert all(f'id="exception-{c.pk}"' in html for c in cases)
    history = client.get(reverse("mapping-history", args=["product_mapping", mapping.pk]))
    text = history.content.decode()
    assert "productmapping.create" in text and "approved by iris" in text


def test_entity_limited_admin_edits_only_their_entity(client):
    us = LegalEntityFactory()
    uk = LegalEntityFactory(code="uk-ltd", functional_currency="GBP")
    GLAccountFactory(legal_entity=us, number="4000", kind="revenue")
    GLAccountFactory(legal_entity=uk, number="5000", kind="revenue")
    admin = UserFactory(roles=["integration_admin"], entities=[uk])
    client.force_login(admin)
    listed = client.get(reverse("mapping-list", args=["gl_account"])).content.decode()
    assert "5000" in listed and "4000" not in listed
    form = client.get(reverse("mapping-new", args=["gl_account"])).content.decode()
    assert 'value="' + str(us.pk) + '"' not in form.split('name="legal_entity"')[1][:400]
    post = client.post(
        reverse("mapping-new", args=["gl_account"]),
        {"legal_entity": us.pk, "number": "4999", "name": "x", "kind": "revenue", "reason": "r"},
    )
    assert post.status_code == 400 and "Select a valid choice" in post.content.decode()
    # Shared kinds are read-only for them.
    assert (
        "New FX rate" not in client.get(reverse("mapping-list", args=["fx_rate"])).content.decode()
    )
    assert client.post(reverse("mapping-new", args=["fx_rate"]), {}).status_code == 403


@pytest.mark.parametrize("persona", ["finance_ops", "manager", "auditor"])
def test_other_roles_cannot_change_mappings_on_screen(client, request, persona):
    client.force_login(request.getfixturevalue(persona))
    response = client.post(reverse("mapping-new", args=["fx_rate"]), {"reason": "r"})
    assert response.status_code == 403
    assert not FxRate.objects.exists()
