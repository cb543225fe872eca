"""Mappings over the API: every role reads; integration admins write, validated and audited."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sync.models import (
    AuditEntry,
    CustomerLink,
    FxRate,
    GLAccount,
    LegalEntity,
    PostingRule,
    ProductMapping,
    SlaPolicy,
    TaxMapping,
)
from tests.controltower.api.helpers import make_entry
from tests.factories import make_ledger

pytestmark = pytest.mark.django_db

V1 = "/api/v1/"


def _payloads(ledger) -> dict[str, tuple[type, dict]]:
    """A valid create body for every mapping endpoint (against the ``ledger`` fixture)."""
    return {
        "legal-entities": (
            LegalEntity,
            {
                "code": "uk-ltd",
                "name": "Acme UK Ltd",
                "functional_currency": "GBP",
                "country": "GB",
                "netsuite_subsidiary_id": "3",
            },
        ),
        "gl-accounts": (
            GLAccount,
            {
                "legal_entity": "us-inc",
                "number": "4100",
                "name": "Services revenue",
                "kind": "revenue",
            },
        ),
        "posting-rules": (
            PostingRule,
            {
                "legal_entity": "us-inc",
                "revenue_type": "on_delivery",
                "product_family": "",
                "effective_from": "2026-01-01",
                "ar_account": ledger.ar.pk,
                "revenue_account": ledger.revenue.pk,
                "deferred_revenue_account": ledger.deferred.pk,
                "tax_payable_account": ledger.tax.pk,
                "fx_rounding_account": None,
            },
        ),
        "product-mappings": (
            ProductMapping,
            {
                "source_ref": "price_support",
                "product_code": "SUPPORT",
                "revenue_type": "ratable",
                "effective_from": "2026-01-01",
            },
        ),
        "tax-mappings": (
            TaxMapping,
            {
                "legal_entity": "us-inc",
                "source_rate_ref": "txr_ca_7_25",
                "jurisdiction": "US-CA",
                "rate_percent": "7.2500",
                "erp_tax_code": "CA-ST",
                "tax_account": ledger.tax.pk,
            },
        ),
        "customer-links": (
            CustomerLink,
            {
                "legal_entity": "us-inc",
                "billing_customer_id": "cus_new",
                "crm_account_id": "001XYZ",
                "erp_customer_id": "C-42",
            },
        ),
        "fx-rates": (
            FxRate,
            {
                "rate_date": "2026-04-01",
                "base_currency": "EUR",
                "quote_currency": "USD",
                "rate": "1.0842",
            },
        ),
        "sla-policies": (
            SlaPolicy,
            {"journey_type": "invoice_to_ledger", "warning_minutes": 30, "target_minutes": 60},
        ),
    }


ENDPOINTS = [
    "legal-entities",
    "gl-accounts",
    "posting-rules",
    "product-mappings",
    "tax-mappings",
    "customer-links",
    "fx-rates",
    "sla-policies",
]


# Posting rules and product mappings apply only once a second admin approves
# (tests/controltower/api/test_mapping_changes.py).
APPLIED_AT_ONCE = [e for e in ENDPOINTS if e not in ("posting-rules", "product-mappings")]


def _approved(api, resp) -> dict:
    """Approve the change a 202 proposed, as a second integration admin; the change applied."""
    from tests.factories import UserFactory

    assert resp.status_code == 202, resp.content
    assert resp.json()["state"] == "pending"
    second = UserFactory(username="iris", roles=["integration_admin"])
    done = api(second).post(f"{V1}mapping-changes/{resp.json()['id']}/approve/", {}, format="json")
    assert done.status_code == 200, done.content
    assert done.json()["state"] == "applied"
    return done.json()


@pytest.mark.parametrize("endpoint", APPLIED_AT_ONCE)
def test_integration_admin_creates_a_mapping_which_is_saved_and_audited(
    api, integration_admin, ledger, endpoint
):
    model, body = _payloads(ledger)[endpoint]
    before = model.objects.count()

    resp = api(integration_admin).post(
        f"{V1}{endpoint}/", {**body, "reason": "month-end setup"}, format="json"
    )

    assert resp.status_code == 201, resp.content
    created = model.objects.get(pk=resp.json()["id"])
    assert model.objects.count() == before + 1
    assert "reason" not in resp.json()
    [audit] = AuditEntry.objects.filter(
        object_type=model._meta.label_lower, object_id=str(created.pk)
    )
    assert audit.action == f"{model._meta.model_name}.create"
    assert (audit.actor, audit.actor_label) == (integration_admin, "ivan")
    assert audit.reason == "month-end setup"
    assert audit.before is None and audit.after["id"] == created.pk


def test_created_posting_rule_names_entity_by_code_and_accounts_by_id(
    api, integration_admin, ledger
):
    _, body = _payloads(ledger)["posting-rules"]
    resp = api(integration_admin).post(
        f"{V1}posting-rules/", {**body, "reason": "new rule"}, format="json"
    )
    change = _approved(api, resp)
    rule = PostingRule.objects.get(pk=change["applied_id"])
    assert (rule.legal_entity, rule.ar_account, rule.revenue_type) == (
        ledger.entity,
        ledger.ar,
        "on_delivery",
    )
    shown = api(integration_admin).get(f"{V1}posting-rules/{rule.pk}/").json()
    assert shown["legal_entity"] == "us-inc"
    assert shown["ar_account"] == ledger.ar.pk


def test_fx_rate_goes_in_and_out_as_an_exact_decimal_string(api, integration_admin):
    body = {
        "rate_date": "2026-04-01",
        "base_currency": "EUR",
        "quote_currency": "JPY",
        "rate": "163.1234567891",
    }
    resp = api(integration_admin).post(f"{V1}fx-rates/", body, format="json")
    assert resp.status_code == 201
    assert resp.json()["rate"] == "163.1234567891"
    assert FxRate.objects.get().rate == Decimal("163.1234567891")
    listed = api(integration_admin).get(f"{V1}fx-rates/").json()["results"]
    assert [r["rate"] for r in listed] == ["163.1234567891"]


def test_fx_rate_sent_as_a_json_float_is_refused(api, integration_admin):
    body = {
        "rate_date": "2026-04-01",
        "base_currency": "EUR",
        "quote_currency": "USD",
        "rate": 1.0842,
    }
    resp = api(integration_admin).post(f"{V1}fx-rates/", body, format="json")
    assert resp.status_code == 400
    assert "decimal string" in resp.json()["rate"][0]
    assert not FxRate.objects.exists()


# --- invalid input: 400 naming the fields, nothing written -----------------------------------


def _nothing_written(model, count_before: int) -> None:
    assert model.objects.count() == count_before
    assert not AuditEntry.objects.exists()


def test_lowercase_currency_code_is_a_400_naming_the_field(api, integration_admin):
    body = {"code": "uk-ltd", "name": "Acme UK", "functional_currency": "usd", "country": "gb"}
    resp = api(integration_admin).post(f"{V1}legal-entities/", body, format="json")
    assert resp.status_code == 400
    assert set(resp.json()) == {"functional_currency", "country"}
    assert "ISO-4217" in resp.json()["functional_currency"][0]
    _nothing_written(LegalEntity, 0)


def test_fx_rate_with_lowercase_currency_is_a_400(api, integration_admin):
    body = {
        "rate_date": "2026-04-01",
        "base_currency": "usd",
        "quote_currency": "EUR",
        "rate": "0.92",
    }
    resp = api(integration_admin).post(f"{V1}fx-rates/", body, format="json")
    assert resp.status_code == 400
    assert list(resp.json()) == ["base_currency"]
    _nothing_written(FxRate, 0)


def test_posting_rule_with_accounts_of_another_entity_is_a_400_naming_them(
    api, integration_admin, ledger
):
    other = make_ledger("de-gmbh", "EUR", "DE", "2")
    rules_before = PostingRule.objects.count()
    body = {
        "legal_entity": "us-inc",
        "revenue_type": "on_delivery",
        "ar_account": other.ar.pk,  # de-gmbh's
        "revenue_account": ledger.revenue.pk,
        "deferred_revenue_account": other.deferred.pk,  # de-gmbh's
        "tax_payable_account": ledger.tax.pk,
    }
    resp = api(integration_admin).post(f"{V1}posting-rules/", body, format="json")
    assert resp.status_code == 400
    errors = resp.json()
    assert set(errors) == {"ar_account", "deferred_revenue_account"}
    assert "another legal entity" in errors["ar_account"][0]
    _nothing_written(PostingRule, rules_before)


def test_changing_a_rule_to_a_foreign_account_is_refused_and_the_rule_unchanged(
    api, integration_admin, ledger
):
    other = make_ledger("de-gmbh", "EUR", "DE", "2")
    rule = ledger.ratable_rule
    resp = api(integration_admin).patch(
        f"{V1}posting-rules/{rule.pk}/", {"revenue_account": other.revenue.pk}, format="json"
    )
    assert resp.status_code == 400
    assert list(resp.json()) == ["revenue_account"]
    rule.refresh_from_db()
    assert rule.revenue_account == ledger.revenue
    assert not AuditEntry.objects.exists()


def test_tax_mapping_with_a_foreign_tax_account_is_a_400(api, integration_admin, ledger):
    other = make_ledger("de-gmbh", "EUR", "DE", "2")
    _, body = _payloads(ledger)["tax-mappings"]
    resp = api(integration_admin).post(
        f"{V1}tax-mappings/", {**body, "tax_account": other.tax.pk}, format="json"
    )
    assert resp.status_code == 400
    assert list(resp.json()) == ["tax_account"]
    _nothing_written(TaxMapping, 1)


def test_missing_fields_are_a_400_naming_each(api, integration_admin, ledger):
    resp = api(integration_admin).post(
        f"{V1}posting-rules/", {"legal_entity": "us-inc"}, format="json"
    )
    assert resp.status_code == 400
    assert set(resp.json()) == {
        "revenue_type",
        "ar_account",
        "revenue_account",
        "deferred_revenue_account",
        "tax_payable_account",
    }
    assert resp.json()["ar_account"] == ["This field is required."]
    _nothing_written(PostingRule, 2)


def test_unknown_entity_code_is_a_400(api, integration_admin, ledger):
    _, body = _payloads(ledger)["gl-accounts"]
    resp = api(integration_admin).post(
        f"{V1}gl-accounts/", {**body, "legal_entity": "nowhere"}, format="json"
    )
    assert resp.status_code == 400
    assert list(resp.json()) == ["legal_entity"]


def test_duplicate_fx_rate_is_a_400_from_the_model_constraint(api, integration_admin):
    FxRate.objects.create(
        rate_date=dt.date(2026, 4, 1),
        base_currency="EUR",
        quote_currency="USD",
        rate=Decimal("1.08"),
    )
    body = {
        "rate_date": "2026-04-01",
        "base_currency": "EUR",
        "quote_currency": "USD",
        "rate": "1.09",
    }
    resp = api(integration_admin).post(f"{V1}fx-rates/", body, format="json")
    assert resp.status_code == 400
    assert list(resp.json()) == ["non_field_errors"]
    assert FxRate.objects.get().rate == Decimal("1.08")


def test_duplicate_entity_code_is_a_400_naming_code(api, integration_admin, ledger):
    body = {"code": "us-inc", "name": "Again", "functional_currency": "USD", "country": "US"}
    resp = api(integration_admin).post(f"{V1}legal-entities/", body, format="json")
    assert resp.status_code == 400
    assert list(resp.json()) == ["code"]
    _nothing_written(LegalEntity, 1)


def test_sla_warning_after_target_is_a_400(api, integration_admin):
    body = {"journey_type": "invoice_to_ledger", "warning_minutes": 90, "target_minutes": 60}
    resp = api(integration_admin).post(f"{V1}sla-policies/", body, format="json")
    assert resp.status_code == 400
    assert list(resp.json()) == ["non_field_errors"]
    _nothing_written(SlaPolicy, 0)


# --- changes and deletes ----------------------------------------------------------------------


def test_update_is_audited_with_before_and_after(api, integration_admin, ledger):
    account = ledger.revenue
    resp = api(integration_admin).patch(
        f"{V1}gl-accounts/{account.pk}/", {"name": "Recurring revenue"}, format="json"
    )
    assert resp.status_code == 200
    assert resp.json()["name"] == "Recurring revenue"
    account.refresh_from_db()
    assert account.name == "Recurring revenue"
    [audit] = AuditEntry.objects.all()
    assert audit.action == "glaccount.update"
    assert (audit.before["name"], audit.after["name"]) == (
        "Subscription revenue",
        "Recurring revenue",
    )
    assert audit.actor == integration_admin


def test_put_replaces_a_product_mapping(api, integration_admin):
    pm = ProductMapping.objects.create(
        source_ref="price_a", product_code="A", revenue_type="ratable"
    )
    body = {
        "source_system": "stripe",
        "source_ref": "price_a",
        "product_code": "A2",
        "product_name": "A two",
        "product_family": "core",
        "revenue_type": "point_in_time",
        "effective_from": "2000-01-01",
    }
    resp = api(integration_admin).put(
        f"{V1}product-mappings/{pm.pk}/", {**body, "reason": "re-family"}, format="json"
    )
    pm.refresh_from_db()
    assert pm.product_code != "A2"  # nothing applies before the approval
    _approved(api, resp)
    pm.refresh_from_db()
    assert (pm.product_code, pm.product_family, pm.revenue_type) == ("A2", "core", "point_in_time")


def test_delete_of_an_unused_mapping_is_audited(api, integration_admin):
    rate = FxRate.objects.create(
        rate_date=dt.date(2026, 4, 1),
        base_currency="EUR",
        quote_currency="USD",
        rate=Decimal("1.08"),
    )
    resp = api(integration_admin).delete(f"{V1}fx-rates/{rate.pk}/")
    assert resp.status_code == 204
    assert not FxRate.objects.exists()
    [audit] = AuditEntry.objects.all()
    assert (audit.action, audit.object_id, audit.before["rate"]) == (
        "fxrate.delete",
        str(rate.pk),
        "1.0800000000",
    )


def test_delete_of_an_account_a_posted_entry_uses_is_a_409(api, integration_admin):
    ledger = make_ledger()
    spare = GLAccount.objects.create(
        legal_entity=ledger.entity, number="4999", name="Spare", kind="revenue"
    )
    make_entry(entity=ledger.entity, debit=ledger.ar, credit=spare, amount_minor=500)

    resp = api(integration_admin).delete(f"{V1}gl-accounts/{spare.pk}/")

    assert resp.status_code == 409
    assert "journal line" in resp.json()["detail"]
    assert GLAccount.objects.filter(pk=spare.pk).exists()
    assert not AuditEntry.objects.exists()


def test_delete_of_an_entity_with_accounts_is_a_409(api, integration_admin, ledger):
    resp = api(integration_admin).delete(f"{V1}legal-entities/{ledger.entity.pk}/")
    assert resp.status_code == 409
    assert "gl accounts" in resp.json()["detail"]
    assert LegalEntity.objects.filter(pk=ledger.entity.pk).exists()


# --- who may write --------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["finance_ops", "manager", "auditor"])
def test_other_roles_may_read_but_not_write_mappings(api, ledger, persona, request):
    client = api(request.getfixturevalue(persona))
    rule = ledger.ratable_rule
    _, body = _payloads(ledger)["gl-accounts"]

    listed = client.get(f"{V1}gl-accounts/")
    assert listed.status_code == 200 and listed.json()["count"] == 5
    assert client.get(f"{V1}posting-rules/{rule.pk}/").json()["ar_account"] == ledger.ar.pk

    attempts = [
        client.post(f"{V1}gl-accounts/", body, format="json"),
        client.patch(f"{V1}posting-rules/{rule.pk}/", {"product_family": "x"}, format="json"),
        client.put(f"{V1}gl-accounts/{ledger.ar.pk}/", {**body, "number": "1200"}, format="json"),
        client.delete(f"{V1}gl-accounts/{ledger.rounding.pk}/"),
    ]
    assert [r.status_code for r in attempts] == [403] * 4
    assert attempts[0].json()["detail"] == "Only integration admins may change mappings."
    assert GLAccount.objects.count() == 5
    rule.refresh_from_db()
    assert rule.product_family == ""
    # Nothing but the four refusals reaches the trail.
    denied = AuditEntry.objects.filter(action="access.denied").order_by("id")
    assert next((d.object_id, d.reason) for d in denied) == (
        "POST /api/v1/gl-accounts/",
        "Only integration admins may change mappings.",
    )
    assert denied.count() == 4 == AuditEntry.objects.count()


# --- lists --------------------------------------------------------------------------------


def test_gl_accounts_filter_by_entity_code(api, auditor, ledger):
    other = make_ledger("de-gmbh", "EUR", "DE", "2")
    resp = api(auditor).get(f"{V1}gl-accounts/", {"entity": "de-gmbh", "kind": "liability"})
    assert sorted(r["id"] for r in resp.json()["results"]) == sorted(
        [other.deferred.pk, other.tax.pk]
    )
    assert {r["legal_entity"] for r in resp.json()["results"]} == {"de-gmbh"}


@pytest.mark.parametrize(
    "endpoint", ["gl-accounts", "posting-rules", "tax-mappings", "customer-links"]
)
def test_entity_scoped_mapping_lists_cost_a_fixed_number_of_queries(
    api, auditor, endpoint, django_assert_max_num_queries
):
    for i in range(5):  # 5 entities x (5 accounts, 2 rules, 1 tax, 1 link)
        ledger = make_ledger(f"e{i}", "USD", "US", str(i))
        TaxMapping.objects.create(
            legal_entity=ledger.entity,
            source_rate_ref=f"txr_{i}",
            rate_percent="5",
            erp_tax_code="T",
            tax_account=ledger.tax,
        )
        CustomerLink.objects.create(legal_entity=ledger.entity, billing_customer_id=f"cus_{i}")
    client = api(auditor)
    with django_assert_max_num_queries(4):  # token, roles, count, page
        resp = client.get(f"{V1}{endpoint}/", {"limit": 100})
    assert resp.json()["count"] >= 5
    assert {r["legal_entity"] for r in resp.json()["results"]} == {f"e{i}" for i in range(5)}
