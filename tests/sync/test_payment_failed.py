"""payment_failed: a declined charge is recorded against its invoice and never posted."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from connectors.stripe import emulator as se
from sync.models import ExceptionCase, JournalEntry, Journey, Payment, Step
from tests.conftest import drain, emulator_records
from tests.stripe_events import post_signed
from tests.sync.billing_support import APR_1, APR_10, WAITING, pay, post_invoice, ts

pytestmark = pytest.mark.django_db


def _pre_basil_invoice(client, invoice_id: str) -> dict:
    """A 1,080.00 USD invoice in the older API shape, whose charges name it."""
    invoice = se.make_invoice_pre_basil(
        "cus_acme",
        [
            se.LineSpec(
                amount_minor=1000_00,
                price_id="price_platform",
                product_id="prod_platform",
                taxes=(se.TaxSpec(rate_id="txr_us_8", percentage="8"),),
            )
        ],
        invoice_id=invoice_id,
        created=ts(APR_1),
        finalized_at=ts(APR_1),
    )
    post_signed(
        client,
        se.make_event("invoice.finalized", invoice, api_version=se.PRE_BASIL_API_VERSION),
    )
    drain()
    return invoice


def _fail(client, invoice: dict, charge_id: str, **kw) -> dict:
    kw.setdefault("created", ts(APR_10))
    charge = se.make_failed_charge(invoice, charge_id=charge_id, **kw)
    post_signed(client, se.make_event("charge.failed", charge))
    return charge


def test_failed_charge_is_recorded_on_its_invoice_and_nothing_is_posted(client, ledger, netsuite):
    invoice = _pre_basil_invoice(client, "in_dun")
    _fail(client, invoice, "ch_declined", failure_code="card_declined", decline_code="do_not_honor")
    drain()

    journey = Journey.objects.get(journey_type="payment_failed")
    assert (journey.business_key, journey.state) == ("ch_declined", Journey.State.COMPLETED)
    assert journey.aggregate_key == "stripe:in_dun" and journey.legal_entity == ledger.entity
    assert [s.name for s in journey.steps.all()] == ["record_failure"]  # no ERP step at all
    row = Payment.objects.get(source_id="ch_declined")
    assert (row.kind, row.state, row.invoice_ref) == ("payment", "failed", "in_dun")
    assert (row.amount_minor, row.fee_minor, row.currency) == (1080_00, 0, "USD")
    assert (row.failure_code, row.failure_message) == ("card_declined", "Your card was declined.")
    assert row.settled_at is None
    assert row.attempted_at == dt.datetime(2026, 4, 10, tzinfo=dt.UTC)
    ctx = journey.context
    assert ctx["posted"] is False and ctx["decline_code"] == "do_not_honor"
    assert ctx["failed_attempts_on_invoice"] == ["ch_declined"]
    assert ctx["summary"] == (
        "Charge ch_declined of 1,080.00 USD on invoice in_dun failed: card_declined (Your card "
        "was declined.). Failed attempts on this invoice: 1. No money moved; nothing was posted."
    )
    assert not JournalEntry.objects.filter(journey=journey).exists()
    assert not [r for r in emulator_records(netsuite) if "ch_declined" in r["externalId"]]


def test_each_failed_attempt_is_listed_per_invoice_until_one_succeeds(client, ledger, netsuite):
    invoice = _pre_basil_invoice(client, "in_retry")
    _fail(
        client,
        invoice,
        "ch_f1",
        failure_code="insufficient_funds",
        failure_message="Your card has insufficient funds.",
    )
    drain()
    _fail(client, invoice, "ch_f2", created=ts(dt.date(2026, 4, 13)))
    drain()
    second = Journey.objects.get(business_key="ch_f2")
    assert second.context["failed_attempts_on_invoice"] == ["ch_f1", "ch_f2"]
    assert "Failed attempts on this invoice: 2." in second.context["summary"]

    ok = se.make_charge(invoice, charge_id="ch_ok", created=ts(dt.date(2026, 4, 16)))
    post_signed(client, se.make_event("charge.succeeded", ok))
    drain()
    rows = Payment.objects.filter(invoice_ref="in_retry").order_by("attempted_at", "pk")
    assert [(p.source_id, p.state, p.failure_code) for p in rows] == [
        ("ch_f1", "failed", "insufficient_funds"),
        ("ch_f2", "failed", "card_declined"),
        ("ch_ok", "succeeded", ""),
    ]
    # Only the successful charge reached the ledger.
    payments = JournalEntry.objects.filter(kind=JournalEntry.Kind.PAYMENT, document_ref="in_retry")
    assert list(payments.values_list("external_id", flat=True)) == ["RCT-STRIPE-ch_ok"]
    assert not JournalEntry.objects.filter(external_id__in=["RCT-STRIPE-ch_f1", "RCT-STRIPE-ch_f2"])


def test_current_shape_failure_is_linked_through_its_payment_intent(client, ledger, netsuite):
    """Since basil a charge names no invoice: the failed attempt shares its payment intent with
    the later charge that paid, whose invoice_payment.paid event names the invoice."""
    invoice = post_invoice(client, invoice_id="in_pi", amount=1000_00)
    pay(client, invoice, charge_id="ch_paid", payment_intent_id="pi_shared")
    _fail(client, invoice, "ch_first_try", payment_intent_id="pi_shared")
    drain()
    row = Payment.objects.get(source_id="ch_first_try")
    assert (row.state, row.invoice_ref) == ("failed", "in_pi")
    journey = Journey.objects.get(business_key="ch_first_try")
    assert journey.state == Journey.State.COMPLETED
    assert journey.context["invoice_ref"] == "in_pi"


def test_failure_with_no_invoice_waits_then_is_recorded_without_one(client, ledger, netsuite):
    invoice = post_invoice(client, invoice_id="in_unknown", amount=1000_00)
    _fail(client, invoice, "ch_orphan")
    drain()
    step = Step.objects.get(journey__business_key="ch_orphan", name="record_failure")
    assert step.state in WAITING and "names no invoice yet" in step.error_message
    assert not Payment.objects.filter(source_id="ch_orphan").exists()
    # Time passes: the grace period is over.
    Step.objects.filter(pk=step.pk).update(
        started_at=timezone.now() - dt.timedelta(minutes=5), next_attempt_at=timezone.now()
    )
    drain()
    journey = Journey.objects.get(business_key="ch_orphan")
    assert journey.state == Journey.State.COMPLETED
    assert journey.context["invoice_ref"] == ""
    assert "on no known invoice failed: card_declined" in journey.context["summary"]
    row = Payment.objects.get(source_id="ch_orphan")
    assert (row.state, row.invoice_ref, row.customer_ref) == ("failed", "", "cus_acme")
    assert journey.legal_entity == ledger.entity  # from the customer's link
    assert not ExceptionCase.objects.exists()


def test_same_failure_delivered_twice_is_recorded_once(client, ledger, netsuite):
    invoice = _pre_basil_invoice(client, "in_twice")
    charge = se.make_failed_charge(invoice, charge_id="ch_twice", created=ts(APR_10))
    event = se.make_event("charge.failed", charge)
    answers = [post_signed(client, event).json()["duplicate"] for _ in range(2)]
    post_signed(client, se.make_event("charge.failed", charge))  # a second event, same charge
    drain()
    assert answers == [False, True]
    assert Journey.objects.filter(journey_type="payment_failed").count() == 1
    assert Payment.objects.filter(source_id="ch_twice").count() == 1
    assert not JournalEntry.objects.filter(external_id="RCT-STRIPE-ch_twice").exists()


def test_charge_failed_event_carrying_a_succeeded_charge_is_invalid(client, ledger, netsuite):
    invoice = _pre_basil_invoice(client, "in_odd")
    charge = se.make_charge(invoice, charge_id="ch_odd", created=ts(APR_10))
    post_signed(client, se.make_event("charge.failed", charge))
    drain()
    case = ExceptionCase.objects.get(journey__business_key="ch_odd")
    assert case.category == ExceptionCase.Category.INVALID_PAYLOAD
    assert "field 'status' must be 'failed', got 'succeeded'" in case.summary
    assert not Payment.objects.filter(source_id="ch_odd").exists()
