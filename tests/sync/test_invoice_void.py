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
