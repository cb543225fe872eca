"""The Django admin edits mappings through the same audited, validated service as the API."""

from __future__ import annotations

import pytest

from sync.models import AuditEntry, ProductMapping
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/sync/productmapping/add/"
FORM = {
    "source_system": "stripe",
    "source_ref": "price_new",
    "product_code": "NEW",
    "product_name": "New thing",
    "product_family": "",
    "revenue_type": "ratable",
    "effective_from": "2026-01-01",
}


def _staff(role: str):
    user = UserFactory(username=f"staff_{role}", roles=[role])
    user.is_staff = True
    user.save()
    return user


def test_integration_admin_adds_a_product_mapping_and_it_is_audited(client):
    user = _staff("integration_admin")
    client.force_login(user)
    resp = client.post(ADD_URL, FORM)
    assert resp.status_code == 302
    mapping = ProductMapping.objects.get(source_ref="price_new")
    assert mapping.product_code == "NEW"
    audit = AuditEntry.objects.get(action="productmapping.create", object_id=str(mapping.pk))
    assert audit.actor == user and audit.after["product_code"] == "NEW"


@pytest.mark.parametrize("role", ["finance_ops", "manager", "auditor"])
def test_other_roles_cannot_change_mappings_in_the_admin(client, role):
    client.force_login(_staff(role))
    assert client.get("/admin/sync/productmapping/").status_code == 200  # may read
    assert client.post(ADD_URL, FORM).status_code == 403
    assert not ProductMapping.objects.exists()
    assert list(AuditEntry.objects.values_list("action", "object_id")) == [
        ("access.denied", f"POST {ADD_URL}")
    ]
