"""Usage (metered) charges are revenue at consumption, i.e. when the invoice that bills them
posts: invoice_to_ledger credits them to revenue directly, their schedule line is born
recognized, and no recognition run takes them again. There is no separate usage_overage
journey (see docs/architecture.md). Through the real webhook, engine and NetSuite emulator."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.stripe import emulator as se
from sync.journeys import registry
from sync.models import JournalEntry, RevenueSchedule, RevenueScheduleLine, RevenueType
from sync.services.recognition import recognition_run
from tests.conftest import drain
from tests.factories import add_cash_accounts, link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import post_signed

pytestmark = pytest.mark.django_db
D = dt.date


def ts(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def ledger(db):
    ledger = make_ledger()
    add_cash_accounts(ledger)
    map_product("price_platform")
    map_product("price_api_calls", RevenueType.POINT_IN_TIME, code="API")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger


TAX = (se.TaxSpec(rate_id="txr_us_8", percentage="8"),)


def usage_line(amount: int, units: int, *, taxes=()) -> se.LineSpec:
    """April's API calls, billed in arrears on the May 1 invoice."""
    return se.LineSpec(
        amount_minor=amount,
        quantity=units,
        price_id="price_api_calls",
        product_id="prod_api",
        description=f"{units} API calls (Apr 2026)",
        period_start=ts(D(2026, 4, 1)),
        period_end=ts(D(2026, 5, 1)),
        taxes=taxes,
    )


def send_invoice(client, invoice_id: str, lines: list[se.LineSpec]) -> dict:
    obj = se.make_invoice(
        "cus_acme",
        lines,
        currency="usd",
        invoice_id=invoice_id,
        subscription_id="sub_acme",
        created=ts(D(2026, 5, 1)),
        finalized_at=ts(D(2026, 5, 1)),
    )
    event = se.make_event("invoice.finalized", obj, created=ts(D(2026, 5, 1)))
    assert post_signed(client, event).status_code == 200
    return obj


def entry_lines(entry: JournalEntry) -> list[tuple[str, int, int, str]]:
    return [
        (ln.account.number, ln.debit_minor, ln.credit_minor, ln.product_code)
        for ln in entry.lines.all()
    ]


def test_usage_is_credited_to_revenue_when_invoiced_and_never_deferred(client, ledger, netsuite):
    send_invoice(client, "in_usage", [usage_line(250_00, 125_000)])
    drain()

    entry = JournalEntry.objects.get(journey__business_key="in_usage")
    assert entry.state == JournalEntry.State.POSTED
    assert entry.posting_date == D(2026, 5, 1)
    assert entry_lines(entry) == [("1200", 250_00, 0, ""), ("4000", 0, 250_00, "API")]
    schedule = RevenueSchedule.objects.get()
    assert (schedule.revenue_type, schedule.product_code) == (RevenueType.POINT_IN_TIME, "API")
    [line] = schedule.lines.all()
    assert (line.period, line.amount_minor, line.state) == (D(2026, 5, 1), 250_00, "recognized")
    assert (line.recognized_period, line.recognition_entry) == (D(2026, 5, 1), entry)
    assert recognition_run(entity=ledger.entity, period=D(2026, 5, 1)).nothing_due
    assert "usage_overage" not in registry()  # invoice_to_ledger recognizes it; nothing to add


def test_an_invoice_with_subscription_and_usage_defers_only_the_subscription(
    client, ledger, netsuite
):
    platform = se.LineSpec(
        amount_minor=1_000_00,
        price_id="price_platform",
        product_id="prod_platform",
        period_start=ts(D(2026, 5, 1)),
        period_end=ts(D(2026, 6, 1)),
        taxes=TAX,
    )
    send_invoice(client, "in_mixed", [platform, usage_line(250_00, 125_000, taxes=TAX)])
    drain()

    entry = JournalEntry.objects.get(journey__business_key="in_mixed")
    assert entry_lines(entry) == [
        ("1200", 1_350_00, 0, ""),
        ("2400", 0, 1_000_00, "PLAT"),
        ("4000", 0, 250_00, "API"),
        ("2200", 0, 100_00, ""),
    ]
    [may] = recognition_run(entity=ledger.entity, period=D(2026, 5, 1)).journeys
    drain()
    recognition = JournalEntry.objects.get(kind=JournalEntry.Kind.RECOGNITION)
    # The run recognizes the subscription only; usage was revenue when invoiced.
    assert entry_lines(recognition) == [
        ("2400", 1_000_00, 0, "PLAT"),
        ("4000", 0, 1_000_00, "PLAT"),
    ]
    may_revenue = sum(
        ln.credit_minor - ln.debit_minor
        for e in JournalEntry.objects.filter(state=JournalEntry.State.POSTED)
        for ln in e.lines.filter(account=ledger.revenue)
    )
    assert may_revenue == 1_250_00
    may.refresh_from_db()
    assert may.state == "completed"


def test_a_credit_note_on_usage_reverses_revenue_not_deferred_revenue(client, ledger, netsuite):
    invoice = send_invoice(client, "in_usage", [usage_line(250_00, 125_000)])
    drain()
    note = se.make_credit_note(invoice, [50_00], timing="pre_payment", credit_note_id="cn_usage")
    post_signed(client, se.make_event("credit_note.created", note))
    drain()

    credit = JournalEntry.objects.get(kind=JournalEntry.Kind.CREDIT_NOTE)
    assert credit.state == JournalEntry.State.POSTED
    assert sorted(entry_lines(credit)) == sorted(
        [("4000", 50_00, 0, "API"), ("1200", 0, 50_00, "")]
    )
    line = RevenueScheduleLine.objects.get()
    assert (line.state, line.amount_minor, line.credited_minor) == ("recognized", 250_00, 50_00)


def test_the_same_usage_invoice_delivered_twice_is_revenue_once(client, ledger, netsuite):
    obj = se.make_invoice(
        "cus_acme",
        [usage_line(250_00, 125_000)],
        currency="usd",
        invoice_id="in_twice",
        subscription_id="sub_acme",
        created=ts(D(2026, 5, 1)),
        finalized_at=ts(D(2026, 5, 1)),
    )
    event = se.make_event("invoice.finalized", obj, created=ts(D(2026, 5, 1)))
    answers = [post_signed(client, event).json()["duplicate"] for _ in range(2)]
    drain()
    assert answers == [False, True]
    [entry] = JournalEntry.objects.all()
    assert entry_lines(entry)[1] == ("4000", 0, 250_00, "API")
    assert RevenueScheduleLine.objects.count() == 1
