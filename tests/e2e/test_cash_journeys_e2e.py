"""payment_to_ledger and refund_to_ledger on real parts: Stripe's events delivered together
over HTTP, as Stripe sends them, a real qcluster and clock letting each journey wait for the
one it depends on, and the NetSuite emulator holding the result.

Figures are minor units in our ledger and decimal major units in the ERP."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connectors.stripe import emulator as se
from sync.journeys.payment import open_balance
from sync.models import InboundEvent, JournalEntry, Journey, Payment
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
    map_product("price_platform")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger


def completed(journey_type: str, business_key: str) -> Journey:
    journey = settled_journey(journey_type, business_key)
    assert journey.state == Journey.State.COMPLETED, describe(journey)
    return journey


def lines(entry: JournalEntry) -> list[tuple[str, int, int]]:
    return [(ln.account.number, ln.debit_minor, ln.credit_minor) for ln in entry.lines.all()]


def invoice_and_payment(invoice_id: str, charge_id: str) -> tuple[list[dict], dict]:
    """invoice.finalized (1,000.00 + 8% = 1,080.00), then what Stripe sends when it is paid
    on Apr 10: invoice_payment.paid (the link) and charge.succeeded. Returns (events, charge)."""
    invoice_ev = invoice_event(invoice_id=invoice_id, amount=1_000_00)
    invoice = invoice_ev["data"]["object"]
    charge = se.make_charge(invoice, charge_id=charge_id, created=ts(D(2026, 4, 10)))
    link = se.make_event("invoice_payment.paid", se.make_invoice_payment(invoice, charge))
    return [invoice_ev, link, se.make_event("charge.succeeded", charge)], charge


def test_payment_delivered_with_its_invoice_posts_after_it_and_clears_the_ar(
    live_server, stack, ledger
):
    stack.start_workers()
    events, _ = invoice_and_payment("in_paid", "ch_paid")
    assert [deliver(live_server, e).status_code for e in events] == [200] * 3

    completed("invoice_to_ledger", "in_paid")
    journey = completed("payment_to_ledger", "ch_paid")

    entry = JournalEntry.objects.get(journey=journey)
    assert entry.kind == JournalEntry.Kind.PAYMENT and entry.state == "posted"
    assert entry.document_ref == "in_paid" and entry.external_id == "RCT-STRIPE-ch_paid"
    # Stripe keeps 2.9% + 0.30 = 31.62: Dr cash 1,048.38 + Dr fees 31.62 / Cr AR 1,080.00
    assert lines(entry) == [("1100", 1_048_38, 0), ("6100", 31_62, 0), ("1200", 0, 1_080_00)]
    invoice_entry = JournalEntry.objects.get(external_id="RCT-STRIPE-in_paid")
    assert entry.created_at > invoice_entry.posted_at  # built only once the invoice posted
    assert open_balance(ledger.entity, "in_paid", ledger.ar.pk) == (0, 0)
    payment = Payment.objects.get(source_id="ch_paid")
    assert (payment.invoice_ref, payment.amount_minor, payment.fee_minor) == (
        "in_paid",
        1_080_00,
        31_62,
    )
    assert InboundEvent.objects.get(event_type="invoice_payment.paid").state == "applied"
    record = stack.record("RCT-STRIPE-ch_paid")
    assert record_lines(record) == [
        ("1100", Decimal("1048.38"), 0),
        ("6100", Decimal("31.62"), 0),
        ("1200", 0, Decimal("1080.00")),
    ]
    assert record["write_count"] == 1 and entry.erp_document_id == str(record["id"])


def test_refund_delivered_with_the_credit_note_it_pays_out_posts_once(live_server, stack, ledger):
    stack.start_workers()
    events, charge = invoice_and_payment("in_ref", "ch_ref")
    for event in events:
        deliver(live_server, event)
    completed("payment_to_ledger", "ch_ref")

    # After payment: credit 100.00 + 8% = 108.00 to the customer, paid out by refund re_e2e.
    invoice = events[0]["data"]["object"]
    refund = se.make_refund(charge, 108_00, refund_id="re_e2e", created=ts(D(2026, 4, 20)))
    note = se.make_credit_note(
        invoice, [100_00], timing="post_payment", refund=refund, credit_note_id="cn_ref"
    )
    # Both at once; the refund waits until the credit note that names it is in the ledger.
    # (Credit note first: a refund that sees no credit note at all waits a 30 s grace for one,
    # which the unit tests cover.)
    deliver(live_server, se.make_event("credit_note.created", note))
    deliver(live_server, se.make_event("refund.created", refund))
    credit = completed("credit_note", "cn_ref")
    journey = completed("refund_to_ledger", "re_e2e")

    credit_entry = JournalEntry.objects.get(journey=credit)
    # Post-payment credit: Dr deferred 100.00 + Dr tax 8.00 / Cr customer credit 108.00
    assert sorted(lines(credit_entry)) == sorted(
        [("2400", 100_00, 0), ("2200", 8_00, 0), ("2300", 0, 108_00)]
    )
    entry = JournalEntry.objects.get(journey=journey)
    assert entry.kind == JournalEntry.Kind.REFUND and entry.state == "posted"
    assert entry.document_ref == "in_ref" and entry.posting_date == D(2026, 4, 20)
    # The refund pays out that credit: Dr customer credit 108.00 / Cr cash 108.00
    assert lines(entry) == [("2300", 108_00, 0), ("1100", 0, 108_00)]
    assert entry.created_at > credit_entry.posted_at  # built only once the credit note posted
    credit_account = ledger.accounts["credit"].pk
    assert open_balance(ledger.entity, "in_ref", credit_account) == (0, 0)
    assert open_balance(ledger.entity, "in_ref", ledger.ar.pk) == (0, 0)

    record = stack.record("RCT-STRIPE-re_e2e")
    assert record_lines(record) == [("2300", Decimal("108.00"), 0), ("1100", 0, Decimal("108.00"))]
    assert record["write_count"] == 1 and entry.erp_document_id == str(record["id"])
    assert sorted(r["externalId"] for r in stack.records()) == [
        "RCT-STRIPE-ch_ref",
        "RCT-STRIPE-cn_ref",
        "RCT-STRIPE-in_ref",
        "RCT-STRIPE-re_e2e",
    ]
