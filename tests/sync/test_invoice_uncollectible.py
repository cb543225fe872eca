"""invoice_uncollectible through signed webhooks, the engine (inline) and the NetSuite emulator.

Invoices are 1,000.00 + 8% tax = 1,080.00 USD (Apr 1) unless said otherwise.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.stripe import emulator as se
from sync.journeys.payment import open_balance
from sync.models import EntityAccounts, ExceptionCase, FxRate, JournalEntry, Journey, Step
from tests.conftest import drain, emulator_records
from tests.factories import add_cash_accounts, link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import invoice_event, post_signed
from tests.sync.billing_support import (
    APR_1,
    APR_20,
    WAITING,
    add_dispute_accounts,
    drain_with_waits,
    erp_lines,
    lines,
    pay,
    post_invoice,
    release,
    ts,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(db):
    ledger = make_ledger()
    add_cash_accounts(ledger)
    add_dispute_accounts(ledger)
    map_product("price_platform")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger


def _ar(ledger, invoice_id: str) -> tuple[int, int]:
    return open_balance(ledger.entity, invoice_id, ledger.ar.pk)


def _mark(client, invoice: dict, **kw) -> dict:
    kw.setdefault("marked_at", ts(APR_20))
    event = se.make_event(
        "invoice.marked_uncollectible",
        se.uncollectible_invoice(invoice, **kw),
        created=kw["marked_at"],
    )
    post_signed(client, event)
    return event


def test_uncollectible_invoice_writes_its_open_ar_off_to_bad_debt(client, ledger, netsuite):
    invoice = post_invoice(client, invoice_id="in_bad", amount=1000_00)
    _mark(client, invoice)
    drain()

    journey = Journey.objects.get(journey_type="invoice_uncollectible")
    assert (journey.business_key, journey.state) == ("in_bad:uncollectible", "completed")
    assert journey.aggregate_key == "stripe:in_bad" and journey.legal_entity == ledger.entity
    entry = JournalEntry.objects.get(journey=journey)
    assert (entry.kind, entry.state) == (JournalEntry.Kind.WRITE_OFF, JournalEntry.State.POSTED)
    assert entry.external_id == "RCT-STRIPE-in_bad-UNCOLLECTIBLE" and entry.document_ref == "in_bad"
    assert entry.posting_date == APR_20  # status_transitions.marked_uncollectible_at
    # Dr bad debt 1,080.00 / Cr AR 1,080.00 (tax included: relief is claimed by hand)
    assert lines(entry) == [("6900", 1080_00, 0, 1080_00, 0), ("1200", 0, 1080_00, 0, 1080_00)]
    assert entry.lines.get(account__number="1200").customer_ref == "cus_acme"
    assert _ar(ledger, "in_bad") == (0, 0)
    record, erp = erp_lines(netsuite, "RCT-STRIPE-in_bad-UNCOLLECTIBLE")
    assert str(record["id"]) == entry.erp_document_id and record["write_count"] == 1
    assert erp == [("6900", Decimal("1080.00"), 0), ("1200", 0, Decimal("1080.00"))]
    assert journey.context["written_off_minor"] == 1080_00
    assert journey.context["left_open_minor"] == 0


def test_partly_paid_invoice_writes_off_only_what_remains(client, ledger, netsuite):
    invoice = post_invoice(client, invoice_id="in_part", amount=1000_00)
    pay(client, invoice, amount=500_00, charge_id="ch_half")
    drain()
    assert _ar(ledger, "in_part") == (580_00, 580_00)
    _mark(client, invoice, amount_paid=500_00)
    drain()
    entry = JournalEntry.objects.get(external_id="RCT-STRIPE-in_part-UNCOLLECTIBLE")
    # amount_remaining 1,080.00 - 500.00 = 580.00: Dr bad debt 580.00 / Cr AR 580.00
    assert lines(entry) == [("6900", 580_00, 0, 580_00, 0), ("1200", 0, 580_00, 0, 580_00)]
    assert _ar(ledger, "in_part") == (0, 0)
    step = Step.objects.get(journey__business_key="in_part:uncollectible", name="build_entry")
    assert step.response_snapshot["open_ar_before_minor"] == 580_00
    assert step.response_snapshot["written_off_minor"] == 580_00


def test_partly_paid_eur_invoice_is_written_off_at_its_carrying_amount(client, ledger, netsuite):
    """EUR 1,000.00 (no tax) at 1.08 = AR 1,080.00 USD. 400.00 EUR paid at Stripe's 1.1 relieves
    AR by 432.00 USD (its share of the carrying amount). The 600.00 EUR left is written off at
    the 648.00 USD it is carried at: no FX difference on a write-off."""
    FxRate.objects.create(
        rate_date=APR_1, base_currency="EUR", quote_currency="USD", rate=Decimal("1.0800")
    )
    invoice = post_invoice(
        client, invoice_id="in_eur", amount=1000_00, currency="eur", tax_rate=None
    )
    pay(
        client,
        invoice,
        amount=400_00,
        charge_id="ch_eur",
        fee=12_76,
        exchange_rate="1.1",
        settlement_currency="usd",
    )
    drain()
    assert _ar(ledger, "in_eur") == (600_00, 648_00)
    _mark(client, invoice, amount_paid=400_00)
    drain()
    entry = JournalEntry.objects.get(external_id="RCT-STRIPE-in_eur-UNCOLLECTIBLE")
    assert (entry.currency, entry.fx_rate) == ("EUR", Decimal("1.08"))
    assert lines(entry) == [("6900", 600_00, 0, 648_00, 0), ("1200", 0, 600_00, 0, 648_00)]
    assert _ar(ledger, "in_eur") == (0, 0)


def test_marked_before_the_invoice_is_posted_waits_for_it(client, ledger, netsuite):
    event = invoice_event(invoice_id="in_late", amount=1000_00)
    invoice = event["data"]["object"]
    _mark(client, invoice)
    drain()
    validate = Step.objects.get(journey__business_key="in_late:uncollectible", name="validate")
    assert validate.state in WAITING and validate.next_attempt_at is not None
    assert "the invoice is not in the ledger yet" in validate.error_message
    assert not JournalEntry.objects.filter(kind=JournalEntry.Kind.WRITE_OFF).exists()
    post_signed(client, event)
    drain()
    release(validate)
    drain()
    assert Journey.objects.get(business_key="in_late:uncollectible").state == "completed"
    assert _ar(ledger, "in_late") == (0, 0)


def test_nothing_remaining_is_skipped_with_the_reason(client, ledger, netsuite):
    invoice = post_invoice(client, invoice_id="in_zero", amount=1000_00)
    marked = {**se.uncollectible_invoice(invoice), "amount_paid": 1080_00, "amount_remaining": 0}
    post_signed(client, se.make_event("invoice.marked_uncollectible", marked))
    drain()
    journey = Journey.objects.get(business_key="in_zero:uncollectible")
    assert journey.state == Journey.State.SKIPPED
    assert (
        "nothing remaining (amount_remaining 0 of 1,080.00 USD due)" in journey.context["skipped"]
    )
    assert Step.objects.get(journey=journey, name="validate").state == Step.State.SKIPPED
    assert set(Step.objects.filter(journey=journey).values_list("state", flat=True)) == {"skipped"}
    assert not JournalEntry.objects.filter(kind=JournalEntry.Kind.WRITE_OFF).exists()
    assert _ar(ledger, "in_zero") == (1080_00, 1080_00)


def test_missing_bad_debt_account_names_the_account_to_set(client, ledger, netsuite):
    EntityAccounts.objects.filter(legal_entity=ledger.entity).update(bad_debt_account=None)
    invoice = post_invoice(client, invoice_id="in_noacc", amount=1000_00)
    _mark(client, invoice)
    drain()
    case = ExceptionCase.objects.get(journey__business_key="in_noacc:uncollectible")
    assert case.category == ExceptionCase.Category.MISSING_POSTING_RULE
    assert case.summary.startswith("The write-off of invoice in_noacc cannot be posted")
    assert "name no bad debt account" in case.summary
    assert case.context["field"] == "bad_debt_account" and case.step.name == "build_entry"
    assert _ar(ledger, "in_noacc") == (1080_00, 1080_00)


def test_stripe_owing_more_than_the_ledger_holds_is_an_amount_mismatch(client, ledger, netsuite):
    invoice = post_invoice(client, invoice_id="in_mis", amount=1000_00)
    pay(client, invoice, amount=500_00, charge_id="ch_mis")
    drain()
    _mark(client, invoice)  # Stripe's copy still says nothing was paid: 1,080.00 remaining
    drain()
    case = ExceptionCase.objects.get(journey__business_key="in_mis:uncollectible")
    assert case.category == ExceptionCase.Category.AMOUNT_MISMATCH
    assert "Stripe says 1,080.00 USD remains on invoice in_mis" in case.summary
    assert "its receivable in the ledger is 580.00 USD" in case.summary
    assert not JournalEntry.objects.filter(kind=JournalEntry.Kind.WRITE_OFF).exists()


def test_same_event_three_times_and_a_second_event_write_off_once(client, ledger, netsuite):
    invoice = post_invoice(client, invoice_id="in_dup", amount=1000_00)
    event = _mark(client, invoice)
    answers = [post_signed(client, event).json()["duplicate"] for _ in range(2)]
    _mark(client, invoice)  # Stripe sends a second, distinct event about the same invoice
    drain_with_waits()
    assert answers == [True, True]
    assert Journey.objects.filter(journey_type="invoice_uncollectible").count() == 1
    assert JournalEntry.objects.filter(kind=JournalEntry.Kind.WRITE_OFF).count() == 1
    # Re-running the build and post steps of the completed journey changes nothing.
    journey = Journey.objects.get(journey_type="invoice_uncollectible")
    Step.objects.filter(journey=journey, name__in=["build_entry", "post_entry"]).update(
        state=Step.State.PENDING
    )
    Journey.objects.filter(pk=journey.pk).update(state=Journey.State.RUNNING)
    drain()
    assert JournalEntry.objects.filter(kind=JournalEntry.Kind.WRITE_OFF).count() == 1
    ids = [r["externalId"] for r in emulator_records(netsuite)]
    assert ids.count("RCT-STRIPE-in_dup-UNCOLLECTIBLE") == 1
    assert erp_lines(netsuite, "RCT-STRIPE-in_dup-UNCOLLECTIBLE")[0]["write_count"] == 1
    assert _ar(ledger, "in_dup") == (0, 0)
