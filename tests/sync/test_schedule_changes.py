"""Services on delivery, subscriptions ending early, effective-dated mappings, JPY."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.stripe import emulator as se
from sync.errors import DomainError, PermissionDenied
from sync.models import (
    AuditEntry,
    JournalEntry,
    LegalEntity,
    PostingRule,
    ProductMapping,
    RevenueSchedule,
    RevenueScheduleLine,
    RevenueType,
)
from sync.services.recognition import recognition_run
from sync.services.schedules_change import schedule_deliver
from tests.conftest import drain
from tests.factories import link_customer, make_ledger, map_product
from tests.stripe_events import post_signed

pytestmark = pytest.mark.django_db
D = dt.date


def ts(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def send_invoice(
    client,
    invoice_id,
    lines,
    issued,
    currency="usd",
    customer="cus_acme",
    subscription_id="sub_acme",
):
    obj = se.make_invoice(
        customer,
        lines,
        currency=currency,
        invoice_id=invoice_id,
        subscription_id=subscription_id,
        created=ts(issued),
        finalized_at=ts(issued),
    )
    post_signed(client, se.make_event("invoice.finalized", obj))
    drain()


@pytest.fixture
def ledger(db):
    ledger = make_ledger()
    link_customer(ledger, "cus_acme")
    return ledger


def test_services_on_delivery_wait_for_the_delivery_then_recognize_in_its_month(
    client, ledger, netsuite, finance_ops, auditor
):
    PostingRule.objects.create(
        legal_entity=ledger.entity,
        revenue_type=RevenueType.ON_DELIVERY,
        ar_account=ledger.ar,
        revenue_account=ledger.revenue,
        deferred_revenue_account=ledger.deferred,
        tax_payable_account=ledger.tax,
    )
    map_product("price_onboarding", RevenueType.ON_DELIVERY, code="ONBOARD")
    send_invoice(
        client,
        "in_svc",
        [se.LineSpec(amount_minor=5_000_00, price_id="price_onboarding")],
        D(2026, 4, 2),
    )
    entry = JournalEntry.objects.get(journey__business_key="in_svc")
    assert entry.lines.get(account=ledger.deferred).credit_minor == 5_000_00
    assert recognition_run(entity=ledger.entity, period=D(2026, 6, 1)).nothing_due

    schedule = RevenueSchedule.objects.get()
    with pytest.raises(PermissionDenied):
        schedule_deliver(schedule_id=schedule.pk, delivered_on=D(2026, 6, 12), actor=auditor)
    schedule_deliver(schedule_id=schedule.pk, delivered_on=D(2026, 6, 12), actor=finance_ops)
    with pytest.raises(DomainError, match="already recorded"):
        schedule_deliver(schedule_id=schedule.pk, delivered_on=D(2026, 6, 12), actor=finance_ops)
    assert recognition_run(entity=ledger.entity, period=D(2026, 5, 1)).nothing_due
    recognition_run(entity=ledger.entity, period=D(2026, 6, 1))
    drain()
    june = JournalEntry.objects.get(kind=JournalEntry.Kind.RECOGNITION)
    assert june.posting_date == D(2026, 6, 30)
    assert june.lines.get(account=ledger.revenue).credit_minor == 5_000_00
    assert AuditEntry.objects.get(action="schedule.deliver").actor == finance_ops


def test_a_subscription_ending_early_stops_future_months(client, ledger, netsuite):
    map_product("price_annual")
    send_invoice(
        client,
        "in_year",
        [
            se.LineSpec(
                amount_minor=12_000_00,
                price_id="price_annual",
                period_start=ts(D(2026, 1, 1)),
                period_end=ts(D(2027, 1, 1)),
            )
        ],
        D(2026, 1, 1),
    )
    sub = se.make_subscription("cus_acme", [se.ItemSpec(price_id="price_annual")], currency="usd")
    sub.update(
        id="sub_acme",
        status="canceled",
        ended_at=ts(D(2026, 3, 10)),
        canceled_at=ts(D(2026, 3, 10)),
    )
    post_signed(client, se.make_event("customer.subscription.deleted", sub))
    drain()
    lines = RevenueScheduleLine.objects.order_by("period")
    assert sorted({ln.period for ln in lines}) == [D(2026, 1, 1), D(2026, 2, 1), D(2026, 3, 1)]
    assert sum(ln.amount_minor for ln in lines) == 12_000_00
    recognition_run(entity=ledger.entity, period=D(2026, 11, 1))
    drain()
    recognized = sum(
        ln.credit_minor
        for e in JournalEntry.objects.filter(kind="recognition")
        for ln in e.lines.filter(account=ledger.revenue)
    )
    assert recognized == 12_000_00
    assert not JournalEntry.objects.filter(kind="recognition", posting_date__gt=D(2026, 3, 31))


def test_a_mapping_change_applies_from_its_date_and_leaves_posted_entries_alone(
    client, ledger, netsuite
):
    map_product("price_platform")  # ratable from 2000-01-01
    send_invoice(
        client,
        "in_before",
        [se.LineSpec(amount_minor=100_00, price_id="price_platform")],
        D(2026, 3, 1),
    )
    ProductMapping.objects.create(
        source_system="stripe",
        source_ref="price_platform",
        product_code="PLAT-USAGE",
        revenue_type=RevenueType.POINT_IN_TIME,
        effective_from=D(2026, 4, 1),
    )
    send_invoice(
        client,
        "in_after",
        [se.LineSpec(amount_minor=100_00, price_id="price_platform")],
        D(2026, 4, 5),
    )
    before = JournalEntry.objects.get(journey__business_key="in_before")
    after = JournalEntry.objects.get(journey__business_key="in_after")
    assert before.lines.filter(account=ledger.deferred).exists()
    assert after.lines.get(account=ledger.revenue).product_code == "PLAT-USAGE"
    assert before.rule_versions["product_mappings"] != after.rule_versions["product_mappings"]
    assert before.rule_versions["posting_rules"] == [ledger.ratable_rule.pk]
    assert after.rule_versions["posting_rules"] == [ledger.usage_rule.pk]


def test_jpy_invoice_posts_whole_yen(client, netsuite):
    jp = make_ledger("jp-kk", "JPY", "JP", "3")
    link_customer(jp, "cus_tokyo")
    map_product("price_jp")
    from tests.factories import map_tax

    map_tax(jp, "txr_jp_10", percent="10", code="JP-CT")
    send_invoice(
        client,
        "in_jpy",
        [
            se.LineSpec(
                amount_minor=120_000,
                price_id="price_jp",
                period_start=ts(D(2026, 4, 1)),
                period_end=ts(D(2026, 7, 1)),
                taxes=(se.TaxSpec(rate_id="txr_jp_10", percentage="10"),),
            )
        ],
        D(2026, 4, 1),
        currency="jpy",
        customer="cus_tokyo",
        subscription_id="sub_jp",
    )
    entry = JournalEntry.objects.get(journey__business_key="in_jpy")
    assert entry.currency == "JPY" and entry.legal_entity == LegalEntity.objects.get(code="jp-kk")
    assert [(ln.account.number, ln.debit_minor, ln.credit_minor) for ln in entry.lines.all()] == [
        ("1200", 132_000, 0),
        ("2400", 0, 120_000),
        ("2200", 0, 12_000),
    ]
    # 91 days: April 30, May 31, June 30 of 120,000 yen = 39,560.44 / 40,879.12 / 39,560.44;
    # the yen left over goes to the largest remainder, the earlier month on a tie.
    assert [ln.amount_minor for ln in RevenueScheduleLine.objects.order_by("period")] == [
        39_561,
        40_879,
        39_560,
    ]
