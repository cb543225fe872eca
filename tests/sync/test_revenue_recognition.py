"""Schedules from invoices, recognition runs, late invoices and period close — through the
real webhook, engine and NetSuite emulator (engine inline)."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.stripe import emulator as se
from sync.errors import DomainError
from sync.models import (
    AccountingPeriod,
    AuditEntry,
    JournalEntry,
    Journey,
    RevenueSchedule,
    RevenueScheduleLine,
    RevenueType,
)
from sync.services.periods import period_close
from sync.services.recognition import recognition_run, recognition_run_monthly
from tests.conftest import drain, emulator_records
from tests.factories import link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import post_signed

pytestmark = pytest.mark.django_db

D = dt.date


def ts(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def ledger(db):
    ledger = make_ledger()
    map_product("price_annual")
    map_product("price_monthly")
    map_product("price_overage", RevenueType.POINT_IN_TIME, code="OVERAGE")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger


def invoice(client, invoice_id: str, lines: list[se.LineSpec], issued: dt.date):
    obj = se.make_invoice(
        "cus_acme",
        lines,
        currency="usd",
        invoice_id=invoice_id,
        created=ts(issued),
        finalized_at=ts(issued),
    )
    assert post_signed(client, se.make_event("invoice.finalized", obj)).status_code == 200


def line(
    price: str,
    amount: int,
    start: dt.date | None = None,
    end: dt.date | None = None,
    tax: bool = False,
) -> se.LineSpec:
    return se.LineSpec(
        amount_minor=amount,
        price_id=price,
        product_id=f"prod_{price}",
        period_start=ts(start) if start else None,
        period_end=ts(end) if end else None,
        taxes=(se.TaxSpec(rate_id="txr_us_8", percentage="8"),) if tax else (),
    )


def schedule_of(invoice_id: str) -> list[tuple[dt.date, int]]:
    rows = RevenueScheduleLine.objects.filter(
        schedule__invoice_line__invoice__source_id=invoice_id
    ).order_by("period", "pk")
    return [(r.period, r.amount_minor) for r in rows]


def recognize(entity, period: dt.date) -> list[JournalEntry]:
    result = recognition_run(entity=entity, period=period)
    drain()
    return [
        JournalEntry.objects.get(journey=j)
        for j in result.journeys
        if JournalEntry.objects.filter(journey=j).exists()
    ]


def test_annual_prepaid_mid_month_is_deferred_and_spread_by_day(client, ledger, netsuite):
    """12,000.00 USD for 2026-04-15..2027-04-15 with 8% tax, invoiced on 2026-04-15."""
    invoice(
        client,
        "in_annual",
        [line("price_annual", 12_000_00, D(2026, 4, 15), D(2027, 4, 15), tax=True)],
        D(2026, 4, 15),
    )
    drain()
    entry = JournalEntry.objects.get(journey__business_key="in_annual")
    assert [(ln.account.number, ln.debit_minor, ln.credit_minor) for ln in entry.lines.all()] == [
        ("1200", 12_960_00, 0),
        ("2400", 0, 12_000_00),
        ("2200", 0, 960_00),
    ]
    # 365 days: April has 16 of them (15th..30th), May 31, June 30, ..., April 2027 14.
    assert schedule_of("in_annual") == [
        (D(2026, 4, 1), 526_02),
        (D(2026, 5, 1), 1_019_18),
        (D(2026, 6, 1), 986_30),
        (D(2026, 7, 1), 1_019_18),
        (D(2026, 8, 1), 1_019_18),
        (D(2026, 9, 1), 986_30),
        (D(2026, 10, 1), 1_019_18),
        (D(2026, 11, 1), 986_30),
        (D(2026, 12, 1), 1_019_18),
        (D(2027, 1, 1), 1_019_18),
        (D(2027, 2, 1), 920_55),
        (D(2027, 3, 1), 1_019_18),
        (D(2027, 4, 1), 460_27),
    ]
    assert sum(a for _, a in schedule_of("in_annual")) == 12_000_00

    [april] = recognize(ledger.entity, D(2026, 4, 1))
    assert april.kind == JournalEntry.Kind.RECOGNITION and april.posting_date == D(2026, 4, 30)
    assert [(ln.account.number, ln.debit_minor, ln.credit_minor) for ln in april.lines.all()] == [
        ("2400", 526_02, 0),
        ("4000", 0, 526_02),
    ]
    assert april.state == JournalEntry.State.POSTED
    assert {r["externalId"] for r in emulator_records(netsuite)} == {
        "RCT-STRIPE-in_annual",
        "RCT-REVREC-us-inc:2026-04:USD:1",
    }


def test_running_a_period_twice_posts_nothing_new(client, ledger, netsuite):
    invoice(
        client, "in_m", [line("price_monthly", 90_00, D(2026, 4, 1), D(2026, 5, 1))], D(2026, 4, 1)
    )
    drain()
    first = recognition_run(entity=ledger.entity, period=D(2026, 4, 1))
    in_flight = recognition_run(entity=ledger.entity, period=D(2026, 4, 1))
    drain()
    again = recognition_run(entity=ledger.entity, period=D(2026, 4, 1))
    drain()
    assert len(first.journeys) == 1
    assert in_flight.journeys == [] and in_flight.skipped_in_flight == ["us-inc:2026-04:USD"]
    assert again.nothing_due
    assert JournalEntry.objects.filter(kind=JournalEntry.Kind.RECOGNITION).count() == 1
    assert len(emulator_records(netsuite)) == 2
    assert AuditEntry.objects.filter(action="recognition.run").count() == 3


def test_proration_upgrade_gives_april_revenue_of_100(client, ledger, netsuite):
    """90/month from Apr 1, upgraded to 120 on Apr 21: -30 unused, +40 for the rest."""
    invoice(
        client,
        "in_base",
        [line("price_monthly", 90_00, D(2026, 4, 1), D(2026, 5, 1))],
        D(2026, 4, 1),
    )
    invoice(
        client,
        "in_prorate",
        [
            line("price_monthly", -30_00, D(2026, 4, 21), D(2026, 5, 1)),
            line("price_monthly", 40_00, D(2026, 4, 21), D(2026, 5, 1)),
        ],
        D(2026, 4, 21),
    )
    drain()
    proration = JournalEntry.objects.get(journey__business_key="in_prorate")
    assert [
        (ln.account.number, ln.debit_minor, ln.credit_minor) for ln in proration.lines.all()
    ] == [
        ("1200", 10_00, 0),
        ("2400", 30_00, 0),
        ("2400", 0, 40_00),
    ]
    [april] = recognize(ledger.entity, D(2026, 4, 1))
    revenue = sum(
        ln.credit_minor - ln.debit_minor for ln in april.lines.all() if ln.account.number == "4000"
    )
    assert revenue == 100_00


def test_usage_overage_is_revenue_at_once_and_never_recognized_again(client, ledger, netsuite):
    invoice(client, "in_usage", [line("price_overage", 250_00)], D(2026, 4, 30))
    drain()
    entry = JournalEntry.objects.get(journey__business_key="in_usage")
    assert [(ln.account.number, ln.credit_minor) for ln in entry.lines.all()][1] == ("4000", 250_00)
    sched_line = RevenueScheduleLine.objects.get(
        schedule__invoice_line__invoice__source_id="in_usage"
    )
    assert sched_line.state == RevenueScheduleLine.State.RECOGNIZED
    assert sched_line.recognition_entry == entry
    assert recognition_run(entity=ledger.entity, period=D(2026, 4, 1)).nothing_due


def test_late_invoice_for_a_closed_month_is_recognized_in_the_first_open_month(
    client, ledger, netsuite, finance_ops
):
    invoice(
        client,
        "in_apr",
        [line("price_monthly", 90_00, D(2026, 4, 1), D(2026, 5, 1))],
        D(2026, 4, 1),
    )
    drain()
    recognize(ledger.entity, D(2026, 4, 1))
    period_close(entity=ledger.entity, period=D(2026, 4, 1), actor=finance_ops)
    period_close(entity=ledger.entity, period=D(2026, 5, 1), actor=finance_ops)

    # A May service invoice arrives after May was closed.
    invoice(
        client,
        "in_late",
        [line("price_monthly", 60_00, D(2026, 5, 1), D(2026, 6, 1))],
        D(2026, 5, 20),
    )
    drain()
    with pytest.raises(DomainError, match="closed"):
        recognition_run(entity=ledger.entity, period=D(2026, 5, 1))
    [june] = recognize(ledger.entity, D(2026, 6, 1))
    assert june.posting_date == D(2026, 6, 30)
    assert june.lines.get(account__number="4000").credit_minor == 60_00
    late = RevenueScheduleLine.objects.get(schedule__invoice_line__invoice__source_id="in_late")
    assert (late.period, late.recognized_period) == (D(2026, 5, 1), D(2026, 6, 1))


def test_periods_close_in_order_and_only_when_recognized(
    client, ledger, netsuite, finance_ops, auditor
):
    invoice(
        client, "in_c", [line("price_monthly", 90_00, D(2026, 4, 1), D(2026, 5, 1))], D(2026, 4, 1)
    )
    drain()
    with pytest.raises(DomainError, match="still has 1 schedule line"):
        period_close(entity=ledger.entity, period=D(2026, 4, 1), actor=finance_ops)
    recognize(ledger.entity, D(2026, 4, 1))
    from sync.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        period_close(entity=ledger.entity, period=D(2026, 4, 1), actor=auditor)
    period_close(entity=ledger.entity, period=D(2026, 4, 1), actor=finance_ops)
    with pytest.raises(DomainError, match="next period to close is 2026-05"):
        period_close(entity=ledger.entity, period=D(2026, 7, 1), actor=finance_ops)
    assert AccountingPeriod.objects.get().state == AccountingPeriod.State.CLOSED
    assert AuditEntry.objects.get(action="period.close").actor == finance_ops


def test_monthly_schedule_runs_last_month_for_every_entity(client, ledger, netsuite):
    eu = make_ledger("eu-bv", "EUR", "NL", "2")
    invoice(
        client, "in_q", [line("price_monthly", 90_00, D(2026, 4, 1), D(2026, 5, 1))], D(2026, 4, 1)
    )
    drain()
    assert recognition_run_monthly(today=D(2026, 5, 3)) == {"us-inc": 1, eu.entity.code: 0}
    drain()
    assert Journey.objects.get(journey_type="revenue_recognition").state == "completed"
    assert RevenueSchedule.objects.get().lines.get().state == RevenueScheduleLine.State.RECOGNIZED


def test_future_period_is_refused(ledger):
    with pytest.raises(DomainError, match="has not started"):
        recognition_run(entity=ledger.entity, period=D(2099, 1, 1))


def test_net_negative_downgrade_lands_on_customer_credit_not_revenue(client, ledger, netsuite):
    """120 -> 90 on Apr 21: -40 unused, +30 for the rest; the 10.00 is owed to the customer."""
    from tests.factories import add_cash_accounts

    add_cash_accounts(ledger)
    invoice(
        client,
        "in_down",
        [
            line("price_monthly", -40_00, D(2026, 4, 21), D(2026, 5, 1)),
            line("price_monthly", 30_00, D(2026, 4, 21), D(2026, 5, 1)),
        ],
        D(2026, 4, 21),
    )
    drain()
    entry = JournalEntry.objects.get(journey__business_key="in_down")
    assert [(ln.account.number, ln.debit_minor, ln.credit_minor) for ln in entry.lines.all()] == [
        ("2300", 0, 10_00),
        ("2400", 40_00, 0),
        ("2400", 0, 30_00),
    ]
    assert not entry.lines.filter(account__number__in=["4000", "1200"]).exists()


def test_foreign_currency_deferral_empties_to_the_cent_in_both_currencies(client, ledger, netsuite):
    """12,000.00 EUR deferred by a USD entity at 1.0863 = 13,035.60 USD; recognizing all
    thirteen months releases exactly that (converting month by month would leave cents)."""
    from sync.models import FxRate

    FxRate.objects.create(
        rate_date=D(2025, 11, 15), base_currency="EUR", quote_currency="USD", rate="1.0863"
    )
    obj = se.make_invoice(
        "cus_acme",
        [line("price_annual", 12_000_00, D(2025, 11, 15), D(2026, 11, 15))],
        currency="eur",
        invoice_id="in_eur",
        created=ts(D(2025, 11, 15)),
        finalized_at=ts(D(2025, 11, 15)),
    )
    post_signed(client, se.make_event("invoice.finalized", obj))
    drain()
    deferred = JournalEntry.objects.get(journey__business_key="in_eur").lines.get(
        account__number="2400"
    )
    assert (deferred.credit_minor, deferred.functional_credit_minor) == (12_000_00, 13_035_60)
    recognize(ledger.entity, D(2026, 11, 1))
    lines = [
        ln
        for e in JournalEntry.objects.filter(state="posted")
        for ln in e.lines.all()
        if ln.account.number == "2400"
    ]
    assert len(lines) == 14  # the invoice's credit and thirteen monthly releases
    assert sum(ln.credit_minor - ln.debit_minor for ln in lines) == 0
    assert sum(ln.functional_credit_minor - ln.functional_debit_minor for ln in lines) == 0
