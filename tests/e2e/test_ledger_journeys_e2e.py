"""invoice_void, credit_note, revenue_recognition and subscription_cancellation on real parts:
signed webhooks over HTTP to the live app (recognition started by its service), a real
qcluster and clock, the NetSuite emulator holding the result.

Figures are minor units in our ledger and decimal major units in the ERP."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connectors.stripe import emulator as se
from sync.models import (
    GLAccount,
    JournalEntry,
    Journey,
    RevenueSchedule,
    RevenueScheduleLine,
)
from sync.services.recognition import recognition_run
from tests.e2e.conftest import deliver, describe, record_lines, settled_journey
from tests.factories import add_cash_accounts, link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import invoice_event

pytestmark = [pytest.mark.e2e]
D = dt.date


def ts(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def ledger(transactional_db):
    ledger = make_ledger()
    add_cash_accounts(ledger)
    contra = GLAccount.objects.create(
        legal_entity=ledger.entity, number="4900", name="Credits (contra revenue)", kind="revenue"
    )
    ledger.ratable_rule.contra_revenue_account = contra
    ledger.ratable_rule.save()
    map_product("price_platform")
    map_product("price_quarter", code="QTR")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger


def quarter_invoice(invoice_id: str, *, amount: int = 300_00, tax: bool = True) -> dict:
    """``amount`` (+8% tax) for Apr 1 .. Jul 1 2026 on subscription sub_acme: 91 days split
    30/31/30, so 300.00 is scheduled 98.90 / 102.20 / 98.90."""
    return se.make_invoice(
        "cus_acme",
        [
            se.LineSpec(
                amount_minor=amount,
                price_id="price_quarter",
                product_id="prod_q",
                period_start=ts(D(2026, 4, 1)),
                period_end=ts(D(2026, 7, 1)),
                taxes=(se.TaxSpec(rate_id="txr_us_8", percentage="8"),) if tax else (),
            )
        ],
        currency="usd",
        invoice_id=invoice_id,
        subscription_id="sub_acme",
        created=ts(D(2026, 4, 1)),
        finalized_at=ts(D(2026, 4, 1)),
    )


def completed(journey_type: str, business_key: str) -> Journey:
    journey = settled_journey(journey_type, business_key)
    assert journey.state == Journey.State.COMPLETED, describe(journey)
    return journey


def lines(entry: JournalEntry) -> list[tuple[str, int, int]]:
    return [(ln.account.number, ln.debit_minor, ln.credit_minor) for ln in entry.lines.all()]


def planned() -> list[tuple[dt.date, int, str]]:
    """Every schedule line as (month, amount, state), by month then amount (the order in
    which concurrent journeys made them does not matter)."""
    return sorted((r.period, r.amount_minor, r.state) for r in RevenueScheduleLine.objects.all())


def test_void_delivered_right_after_its_invoice_posts_one_reversing_entry(
    live_server, stack, ledger
):
    stack.start_workers()
    event = invoice_event(invoice_id="in_void", amount=1_000_00)
    voided = se.make_event("invoice.voided", dict(event["data"]["object"], status="void"))
    assert [deliver(live_server, e).status_code for e in (event, voided)] == [200, 200]

    completed("invoice_to_ledger", "in_void")
    void = completed("invoice_void", "in_void:void")

    original = JournalEntry.objects.get(external_id="RCT-STRIPE-in_void")
    reversal = JournalEntry.objects.get(journey=void)
    assert reversal.kind == JournalEntry.Kind.REVERSAL and reversal.reverses == original
    assert original.state == reversal.state == JournalEntry.State.POSTED
    # 1,000.00 + 80.00 tax, every line swapped
    assert lines(original) == [("1200", 1_080_00, 0), ("2400", 0, 1_000_00), ("2200", 0, 80_00)]
    assert lines(reversal) == [("1200", 0, 1_080_00), ("2400", 1_000_00, 0), ("2200", 80_00, 0)]
    assert RevenueSchedule.objects.get().state == RevenueSchedule.State.CANCELLED
    assert {r.state for r in RevenueScheduleLine.objects.all()} == {"cancelled"}

    record = stack.record("RCT-STRIPE-in_void-VOID")
    assert record_lines(record) == [
        ("1200", 0, Decimal("1080.00")),
        ("2400", Decimal("1000.00"), 0),
        ("2200", Decimal("80.00"), 0),
    ]
    assert record["write_count"] == 1 and reversal.erp_document_id == str(record["id"])
    assert stack.record("RCT-STRIPE-in_void")["write_count"] == 1  # the original untouched
    assert len(stack.records()) == 2


def test_credit_note_after_a_recognized_month_splits_earned_and_unearned(
    live_server, stack, ledger, finance_ops
):
    stack.start_workers()
    invoice = quarter_invoice("in_q")
    deliver(live_server, se.make_event("invoice.finalized", invoice))
    completed("invoice_to_ledger", "in_q")
    run = recognition_run(entity=ledger.entity, period=D(2026, 4, 1), actor=finance_ops)
    [april] = run.journeys
    completed("revenue_recognition", april.business_key)

    note = se.make_credit_note(invoice, [100_00], timing="pre_payment", credit_note_id="cn_e2e")
    assert deliver(live_server, se.make_event("credit_note.created", note)).status_code == 200
    journey = completed("credit_note", "cn_e2e")

    entry = JournalEntry.objects.get(journey=journey)
    assert entry.kind == JournalEntry.Kind.CREDIT_NOTE and entry.state == "posted"
    # The 100.00 credit spreads over the schedule as 32.97 / 34.07 / 32.96: April's share is
    # earned (Dr contra revenue), the rest unearned (Dr deferred); the tax comes back; Cr AR.
    assert sorted(lines(entry)) == sorted(
        [("2400", 67_03, 0), ("4900", 32_97, 0), ("2200", 8_00, 0), ("1200", 0, 108_00)]
    )
    assert planned() == [
        (D(2026, 4, 1), 98_90, "recognized"),
        (D(2026, 5, 1), 68_13, "planned"),
        (D(2026, 6, 1), 65_94, "planned"),
    ]
    record = stack.record("RCT-STRIPE-cn_e2e")
    assert sorted(record_lines(record)) == sorted(
        [
            ("2400", Decimal("67.03"), 0),
            ("4900", Decimal("32.97"), 0),
            ("2200", Decimal("8.00"), 0),
            ("1200", 0, Decimal("108.00")),
        ]
    )
    assert record["write_count"] == 1 and entry.erp_document_id == str(record["id"])


def test_recognition_run_posts_the_month_once_through_the_workers(
    live_server, stack, ledger, finance_ops
):
    stack.start_workers()
    april_only = invoice_event(invoice_id="in_apr", amount=900_00, tax_rate=None)  # Apr 1..May 1
    deliver(live_server, april_only)
    deliver(live_server, se.make_event("invoice.finalized", quarter_invoice("in_qr", tax=False)))
    completed("invoice_to_ledger", "in_apr")
    completed("invoice_to_ledger", "in_qr")

    run = recognition_run(entity=ledger.entity, period=D(2026, 4, 1), actor=finance_ops)
    [started] = run.journeys
    assert started.business_key == "us-inc:2026-04:USD:1"
    journey = completed("revenue_recognition", started.business_key)

    entry = JournalEntry.objects.get(journey=journey)
    assert entry.kind == JournalEntry.Kind.RECOGNITION and entry.state == "posted"
    assert entry.posting_date == D(2026, 4, 30)
    assert entry.external_id == "RCT-REVREC-us-inc:2026-04:USD:1"
    # April: all of in_apr (900.00) and the first 30 of in_qr's 91 days (98.90).
    assert sorted(lines(entry)) == sorted(
        [("2400", 900_00, 0), ("4000", 0, 900_00), ("2400", 98_90, 0), ("4000", 0, 98_90)]
    )
    assert journey.context["recognized_minor"] == 998_90
    assert planned() == [
        (D(2026, 4, 1), 98_90, "recognized"),
        (D(2026, 4, 1), 900_00, "recognized"),
        (D(2026, 5, 1), 102_20, "planned"),
        (D(2026, 6, 1), 98_90, "planned"),
    ]
    record = stack.record("RCT-REVREC-us-inc:2026-04:USD:1")
    debits = sum(d for _, d, _ in record_lines(record))
    credits = sum(c for _, _, c in record_lines(record))
    assert debits == credits == Decimal("998.90")
    assert record["write_count"] == 1 and entry.erp_document_id == str(record["id"])

    # Running April again finds nothing due and starts nothing.
    assert recognition_run(entity=ledger.entity, period=D(2026, 4, 1)).nothing_due
    assert Journey.objects.filter(journey_type="revenue_recognition").count() == 1


def test_subscription_ended_early_moves_later_months_into_the_end_month(
    live_server, stack, ledger, finance_ops
):
    stack.start_workers()
    deliver(live_server, se.make_event("invoice.finalized", quarter_invoice("in_sub", tax=False)))
    completed("invoice_to_ledger", "in_sub")

    sub = se.make_subscription("cus_acme", [se.ItemSpec(price_id="price_quarter")], currency="usd")
    sub.update(id="sub_acme")
    ended = se.subscription_ended(sub, at=ts(D(2026, 5, 15)))
    event = se.make_event("customer.subscription.deleted", ended)
    assert deliver(live_server, event).status_code == 200
    journey = completed("subscription_cancellation", "sub_acme:cancel")

    assert journey.context["ended_on"] == "2026-05-15"
    assert journey.context["schedule_lines_moved"] == 1
    # June's 98.90 now falls in May, the month the subscription ended.
    assert planned() == [
        (D(2026, 4, 1), 98_90, "planned"),
        (D(2026, 5, 1), 98_90, "planned"),
        (D(2026, 5, 1), 102_20, "planned"),
    ]

    # Recognizing up to May empties the deferral: nothing is left for June.
    run = recognition_run(entity=ledger.entity, period=D(2026, 5, 1), actor=finance_ops)
    keys = sorted(j.business_key for j in run.journeys)
    assert keys == ["us-inc:2026-04:USD:1", "us-inc:2026-05:USD:1"]
    for key in keys:
        completed("revenue_recognition", key)
    recognized = {
        e.posting_date: sum(c for _, _, c in lines(e))
        for e in JournalEntry.objects.filter(kind=JournalEntry.Kind.RECOGNITION)
    }
    assert recognized == {D(2026, 4, 30): 98_90, D(2026, 5, 31): 201_10}
    assert not RevenueScheduleLine.objects.filter(state="planned").exists()
    erp = {r["externalId"]: r for r in stack.records()}
    assert sum(c for _, _, c in record_lines(erp["RCT-REVREC-us-inc:2026-05:USD:1"])) == Decimal(
        "201.10"
    )
