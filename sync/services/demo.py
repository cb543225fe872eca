"""Demo master data: two legal entities with their charts, rules, products and taxes.

Idempotent: running it again changes nothing. Writes go through ``mapping_save`` so the
audit trail shows who set the demo up, as for any admin change.
"""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.models import AbstractBaseUser

from sync.models import (
    EntityAccounts,
    GLAccount,
    LegalEntity,
    PostingRule,
    ProductMapping,
    RevenueType,
    SlaPolicy,
    TaxMapping,
)
from sync.services.mappings import mapping_save

ENTITIES = [
    ("us-inc", "Acme Cloud Inc.", "USD", "US", "1"),
    ("eu-bv", "Acme Cloud Europe B.V.", "EUR", "NL", "2"),
]
ACCOUNTS = [
    ("1100", "Cash", GLAccount.Kind.ASSET),
    ("1150", "Disputed payments", GLAccount.Kind.ASSET),
    ("1200", "Accounts receivable", GLAccount.Kind.ASSET),
    ("2200", "Sales tax / VAT payable", GLAccount.Kind.LIABILITY),
    ("2300", "Customer credit balances", GLAccount.Kind.LIABILITY),
    ("2400", "Deferred revenue", GLAccount.Kind.LIABILITY),
    ("4000", "Subscription revenue", GLAccount.Kind.REVENUE),
    ("4100", "Usage revenue", GLAccount.Kind.REVENUE),
    ("4900", "Credits and refunds (contra revenue)", GLAccount.Kind.REVENUE),
    ("6100", "Payment processing fees", GLAccount.Kind.EXPENSE),
    ("6900", "Bad debt and dispute losses", GLAccount.Kind.EXPENSE),
    ("7900", "FX gain/loss", GLAccount.Kind.EXPENSE),
    ("7990", "FX rounding", GLAccount.Kind.EXPENSE),
]
PRODUCTS = [
    ("price_platform_monthly", "PLATFORM-M", "Platform (monthly)", "platform", RevenueType.RATABLE),
    ("price_platform_annual", "PLATFORM-A", "Platform (annual)", "platform", RevenueType.RATABLE),
    ("price_seats", "SEATS", "Additional seats", "platform", RevenueType.RATABLE),
    ("price_api_overage", "API-OVERAGE", "API overage", "usage", RevenueType.POINT_IN_TIME),
]
TAXES = [
    ("us-inc", "txr_us_ca_725", "US-CA", "7.25", "CA-STATE"),
    ("us-inc", "txr_us_ny_8875", "US-NY", "8.875", "NY-STATE"),
    ("eu-bv", "txr_nl_vat_21", "NL", "21", "NL-VAT-21"),
    ("eu-bv", "txr_de_vat_19", "DE", "19", "DE-VAT-19"),
]


def demo_master_data_seed(*, actor: AbstractBaseUser | None) -> dict[str, int]:
    """Create what is missing of the demo set-up; returns how many rows it created."""
    created = 0

    def save(obj):
        nonlocal created
        mapping_save(actor=actor, instance=obj, reason="demo set-up", check_permission=False)
        created += 1
        return obj

    for code, name, currency, country, subsidiary in ENTITIES:
        entity = LegalEntity.objects.filter(code=code).first() or save(
            LegalEntity(
                code=code,
                name=name,
                functional_currency=currency,
                country=country,
                netsuite_subsidiary_id=subsidiary,
            )
        )
        acc = {}
        for number, acc_name, kind in ACCOUNTS:
            acc[number] = GLAccount.objects.filter(legal_entity=entity, number=number).first() or (
                save(GLAccount(legal_entity=entity, number=number, name=acc_name, kind=kind))
            )
        for revenue_type, revenue_account in (
            (RevenueType.RATABLE, "4000"),
            (RevenueType.POINT_IN_TIME, "4100"),
            (RevenueType.ON_DELIVERY, "4000"),
        ):
            if not PostingRule.objects.filter(
                legal_entity=entity, revenue_type=revenue_type
            ).exists():
                save(
                    PostingRule(
                        legal_entity=entity,
                        revenue_type=revenue_type,
                        effective_from=dt.date(2020, 1, 1),
                        ar_account=acc["1200"],
                        revenue_account=acc[revenue_account],
                        deferred_revenue_account=acc["2400"],
                        tax_payable_account=acc["2200"],
                        fx_rounding_account=acc["7990"],
                        contra_revenue_account=acc["4900"],
                    )
                )
        accounts = EntityAccounts.objects.filter(legal_entity=entity).first()
        if accounts is None:
            save(
                EntityAccounts(
                    legal_entity=entity,
                    cash_account=acc["1100"],
                    processor_fee_account=acc["6100"],
                    fx_gain_loss_account=acc["7900"],
                    customer_credit_account=acc["2300"],
                    dispute_account=acc["1150"],
                    bad_debt_account=acc["6900"],
                )
            )
        elif accounts.dispute_account_id is None or accounts.bad_debt_account_id is None:
            # A set-up from before disputes and write-offs: add their accounts.
            accounts.dispute_account = accounts.dispute_account or acc["1150"]
            accounts.bad_debt_account = accounts.bad_debt_account or acc["6900"]
            save(accounts)
    for ref, code, name, family, revenue_type in PRODUCTS:
        if not ProductMapping.objects.filter(source_ref=ref).exists():
            save(
                ProductMapping(
                    source_system="stripe",
                    source_ref=ref,
                    product_code=code,
                    product_name=name,
                    product_family=family,
                    revenue_type=revenue_type,
                    effective_from=dt.date(2020, 1, 1),
                )
            )
    for entity_code, ref, jurisdiction, percent, tax_code in TAXES:
        entity = LegalEntity.objects.get(code=entity_code)
        if not TaxMapping.objects.filter(legal_entity=entity, source_rate_ref=ref).exists():
            save(
                TaxMapping(
                    legal_entity=entity,
                    source_system="stripe",
                    source_rate_ref=ref,
                    jurisdiction=jurisdiction,
                    rate_percent=percent,
                    erp_tax_code=tax_code,
                    tax_account=GLAccount.objects.get(legal_entity=entity, number="2200"),
                )
            )
    if not SlaPolicy.objects.filter(journey_type="invoice_to_ledger").exists():
        save(SlaPolicy(journey_type="invoice_to_ledger", warning_minutes=30, target_minutes=60))
    return {"created": created}
