"""invoice.voided: a reversing entry linked to the original, never an edit."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.stripe import emulator as se
from sync.models import (
    ExceptionCase,
    JournalEntry,
    Journey,
    RevenueSchedule,
    RevenueScheduleLine,
)
from tests.conftest import drain, emulator_records
from tests.factories import link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import invoice_event, post_signed

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(db):
    ledger = make_ledger()
    map_product("price_platform")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger


def _void(client, event: dict) -> None:
    obj = dict(event["data"]["object"], status="void")
    post_signed(client, se.make_event("invoice.voided", obj))
    drain()


def _lines(entry):
    return [(ln.account.number, ln.debit_minor, ln.credit_minor) for ln in entry.lines.all()]


def test_void_after_posting_reverses_every_line_and_cancels_the_schedule(client, ledger, netsuite):
    event = invoice_event(invoice_id="in_v", amount=1_000_00)
    post_signed(client, event)
    drain()
    _void(client, event)

    original = JournalEntry.objects.get(external_id="RCT-STRIPE-in_v")
    reversal = JournalEntry.objects.get(reverses=original)
    assert reversal.kind == JournalEntry.Kind.REVERSAL
    assert reversal.external_id == "RCT-STRIPE-in_v-VOID"
    assert _lines(original) == [("1200", 1_080_00, 0), ("2400", 0, 1_000_00), ("2200", 0, 80_00)]
    assert _lines(reversal) == [("1200", 0, 1_080_00), ("2400", 1_000_00, 0), ("2200", 80_00, 0)]
    assert original.state == reversal.state == JournalEntry.State.POSTED
    assert RevenueSchedule.objects.get().state == RevenueSchedule.State.CANCELLED
    assert set(RevenueScheduleLine.objects.values_list("state", flat=True)) == {"cancelled"}
    assert sorted(r["externalId"] for r in emulator_records(netsuite)) == [
        "RCT-STRIPE-in_v",
        "RCT-STRIPE-in_v-VOID",
    ]


def test_void_after_recognition_takes_recognized_revenue_back(client, ledger, netsuite):
    from sync.services.recognition import recognition_run

    event = invoice_event(invoice_id="in_vr", amount=900_00, tax_rate=None)  # Apr 1..May 1
    post_signed(client, event)
    drain()
    recognition_run(entity=ledger.entity, period=dt.date(2026, 4, 1))
    drain()
    _void(client, event)
    reversal = JournalEntry.objects.get(kind=JournalEntry.Kind.REVERSAL)
    assert _lines(reversal) == [
        ("1200", 0, 900_00),
        ("2400", 900_00, 0),  # the swapped invoice
        ("4000", 900_00, 0),
        ("2400", 0, 900_00),  # April's recognition taken back
    ]
    # Deferred revenue nets to zero; revenue for the invoice nets to zero.
    all_lines = [ln for e in JournalEntry.objects.all() for ln in e.lines.all()]
    for number in ("1200", "2400", "4000"):
        assert (
            sum(ln.debit_minor - ln.credit_minor for ln in all_lines if ln.account.number == number)
            == 0
        )


def test_void_of_an_invoice_that_never_posted_cancels_its_journey(client, ledger, netsuite):
    event = invoice_event(invoice_id="in_vx", price="price_unmapped")
    post_signed(client, event)
    drain()
    assert Journey.objects.get(business_key="in_vx").state == Journey.State.EXCEPTION
    _void(client, event)
    assert Journey.objects.get(business_key="in_vx").state == Journey.State.CANCELLED
    assert Journey.objects.get(business_key="in_vx:void").state == Journey.State.COMPLETED
    case = ExceptionCase.objects.get()
    assert case.state == ExceptionCase.State.RESOLVED and "voided" in case.resolution_note
    assert not JournalEntry.objects.exists() and emulator_records(netsuite) == []


def test_voids_in_one_batch_each_get_their_own_outcome(client, ledger, netsuite, caplog):
    """build_reversal through its batch form: two posted invoices (one with April
    recognized) are reversed as one by one would, an unposted one is cancelled, a credited
    one stops alone as an amount mismatch, and one whose invoice never arrived waits."""
    from connectors.stripe.webhooks import event_parse
    from sync.engine import journeys_advance_claimed, steps_claim_batch
    from sync.models import GLAccount
    from sync.services.dispatch import inbound_events_dispatch_received
    from sync.services.inbox import inbound_events_receive_bulk
    from sync.services.recognition import recognition_run
    from tests.factories import add_cash_accounts

    add_cash_accounts(ledger)
    contra = GLAccount.objects.create(
        legal_entity=ledger.entity, number="4900", name="Credits", kind="revenue"
    )
    ledger.ratable_rule.contra_revenue_account = contra
    ledger.ratable_rule.save()
    recognized = invoice_event(invoice_id="in_b_rec", amount=900_00, tax_rate=None)
    post_signed(client, recognized)
    drain()
    recognition_run(entity=ledger.entity, period=dt.date(2026, 4, 1))
    drain()
    plain = invoice_event(invoice_id="in_b_plain", amount=1_000_00)
    unposted = invoice_event(invoice_id="in_b_unposted", price="price_unmapped")
    credited = invoice_event(invoice_id="in_b_credited", amount=500_00, tax_rate=None)
    for event in (plain, unposted, credited):
        post_signed(client, event)
    drain()
    note = se.make_credit_note(
        credited["data"]["object"], [100_00], timing="pre_payment", credit_note_id="cn_b"
    )
    post_signed(client, se.make_event("credit_note.created", note))
    drain()
    absent = invoice_event(invoice_id="in_b_absent")  # never delivered
    voids = [
        se.make_event("invoice.voided", dict(e["data"]["object"], status="void"))
        for e in (recognized, plain, unposted, credited, absent)
    ]
    inbound_events_receive_bulk(source_system="stripe", envelopes=[event_parse(v) for v in voids])
    inbound_events_dispatch_received()
    claims = steps_claim_batch(50)
    assert len(claims) == 5  # five invoices, five aggregates: one batch
    journeys_advance_claimed(claims)
    assert not [r.message for r in caplog.records if "batch form" in r.message]
    drain()

    def void_of(invoice_id: str) -> Journey:
        return Journey.objects.get(business_key=f"{invoice_id}:void")

    rec = JournalEntry.objects.get(external_id="RCT-STRIPE-in_b_rec-VOID")
    assert rec.journey == void_of("in_b_rec") and rec.state == JournalEntry.State.POSTED
    assert _lines(rec) == [
        ("1200", 0, 900_00),
        ("2400", 900_00, 0),
        ("4000", 900_00, 0),
        ("2400", 0, 900_00),
    ]
    assert rec.reverses.external_id == "RCT-STRIPE-in_b_rec"
    plain_reversal = JournalEntry.objects.get(external_id="RCT-STRIPE-in_b_plain-VOID")
    assert _lines(plain_reversal) == [
        ("1200", 0, 1_080_00),
        ("2400", 1_000_00, 0),
        ("2200", 80_00, 0),
    ]
    for invoice_id in ("in_b_rec", "in_b_plain"):
        assert void_of(invoice_id).state == Journey.State.COMPLETED
        assert void_of(invoice_id).context["reverses"] == f"RCT-STRIPE-{invoice_id}"
        assert set(
            RevenueSchedule.objects.filter(invoice_line__invoice__source_id=invoice_id).values_list(
                "state", flat=True
            )
        ) == {"cancelled"}
    assert Journey.objects.get(business_key="in_b_unposted").state == Journey.State.CANCELLED
    assert void_of("in_b_unposted").state == Journey.State.COMPLETED
    assert void_of("in_b_credited").state == Journey.State.EXCEPTION
    case = ExceptionCase.objects.get(journey=void_of("in_b_credited"))
    assert case.category == "amount_mismatch" and "RCT-STRIPE-cn_b" in case.summary
    assert set(
        RevenueSchedule.objects.filter(
            invoice_line__invoice__source_id="in_b_credited"
        ).values_list("state", flat=True)
    ) == {"active"}  # nothing cancelled for the refused void
    assert void_of("in_b_absent").state == Journey.State.WAITING
    assert sorted(
        r["externalId"] for r in emulator_records(netsuite) if r["externalId"].endswith("-VOID")
    ) == ["RCT-STRIPE-in_b_plain-VOID", "RCT-STRIPE-in_b_rec-VOID"]
