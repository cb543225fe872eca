"""The Django admin edits mappings through the same audited, validated service as the API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sync.models import AuditEntry, FxRate, ProductMapping
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


def test_integration_admin_adds_an_fx_rate_and_it_is_audited(client):
    user = _staff("integration_admin")
    client.force_login(user)
    form = {
        "rate_date": "2026-04-01",
        "base_currency": "EUR",
        "quote_currency": "USD",
        "rate": "1.08",
    }
    resp = client.post("/admin/sync/fxrate/add/", form)
    assert resp.status_code == 302
    rate = FxRate.objects.get(rate_date="2026-04-01")
    assert rate.rate == Decimal("1.08")
    audit = AuditEntry.objects.get(action="fxrate.create", object_id=str(rate.pk))
    assert audit.actor == user and audit.after["base_currency"] == "EUR"


def test_product_mappings_are_read_only_in_the_admin_they_need_a_second_admin(client):
    client.force_login(_staff("integration_admin"))
    assert client.get("/admin/sync/productmapping/").status_code == 200
    assert client.post(ADD_URL, FORM).status_code == 403
    assert not ProductMapping.objects.exists()


@pytest.mark.parametrize("role", ["finance_ops", "manager", "auditor"])
def test_other_roles_cannot_change_mappings_in_the_admin(client, role):
    client.force_login(_staff(role))
    assert client.get("/admin/sync/productmapping/").status_code == 200  # may read
    assert client.post(ADD_URL, FORM).status_code == 403
    assert not ProductMapping.objects.exists()
    assert list(AuditEntry.objects.values_list("action", "object_id")) == [
        ("access.denied", f"POST {ADD_URL}")
    ]
