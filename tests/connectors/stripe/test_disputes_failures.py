"""Failed charges, disputes and uncollectible invoices: Stripe payloads -> canonical dataclasses,
and the emulator builders that make them."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal

import pytest

from connectors.base import PermanentError
from connectors.stripe import emulator as em
from connectors.stripe.payments import (
    parse_charge_failure,
    parse_dispute,
    parse_invoice_balance,
)
from tests.connectors.stripe.conftest import SHARED_REFERENCE, read_json

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def wire(obj: dict) -> dict:
    """``obj`` as it arrives: serialized, parsed back with Decimal floats."""
    return json.loads(em.serialize(obj), parse_float=Decimal)


def _invoice(**kw) -> dict:
    return em.make_invoice(
        "cus_1",
        [em.LineSpec(amount_minor=1000_00, price_id="price_p")],
        currency=kw.pop("currency", "usd"),
        invoice_id="in_1",
        created=T0,
        finalized_at=T0,
        **kw,
    )


# --- failed charges -----------------------------------------------------------------------------


def test_failed_charge_builder_and_parser_agree():
    charge = em.make_failed_charge(
        _invoice(),
        charge_id="ch_f",
        failure_code="expired_card",
        failure_message="Your card has expired.",
        decline_code="expired_card",
        created=T0,
    )
    assert charge["balance_transaction"] is None and charge["captured"] is False
    assert (charge["paid"], charge["amount_captured"], charge["status"]) == (False, 0, "failed")
    failure = parse_charge_failure(wire(charge))
    assert (failure.failure_code, failure.failure_message, failure.decline_code) == (
        "expired_card",
        "Your card has expired.",
        "expired_card",
    )
    p = failure.payment
    assert (p.source_id, p.status, p.amount_minor, p.currency) == ("ch_f", "failed", 1000_00, "USD")
    assert (p.fee_minor, p.settlement_currency, p.settled_at) == (0, "", None)
    assert p.created == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_failed_pre_basil_charge_names_its_invoice():
    invoice = em.make_invoice_pre_basil(
        "cus_1", [em.LineSpec(amount_minor=500, price_id="price_p")], invoice_id="in_old"
    )
    failure = parse_charge_failure(wire(em.make_failed_charge(invoice)))
    assert failure.payment.invoice_ref == "in_old"


def test_reference_charge_is_refused_as_a_failure():
    charge = read_json(SHARED_REFERENCE / "pre-basil" / "charge_ch_fakefakefakefakefake0001.json")
    assert charge["status"] == "succeeded"
    with pytest.raises(PermanentError, match="field 'status' must be 'failed'"):
        parse_charge_failure(charge)


# --- disputes -----------------------------------------------------------------------------------


def test_reference_pre_basil_dispute_is_a_withdrawal_of_amount_and_fee():
    """dj-stripe's fixture: 10.00 USD disputed, Stripe's 15.00 dispute fee, net -25.00."""
    obj = read_json(SHARED_REFERENCE / "pre-basil" / "dispute_dp_fakefakefakefake01.json")
    d = parse_dispute(obj)
    assert (d.source_id, d.charge_ref, d.currency, d.amount_minor) == (
        "dp_1JAyTwJSZQVUcJYgPqasUEn1",
        "ch_fakefakefakefakefake0001",
        "USD",
        1000,
    )
    assert (d.status, d.reason, d.is_inquiry) == ("needs_response", "fraudulent", False)
    w = d.withdrawal
    assert (w.direction, w.amount_minor, w.fee_minor, w.currency) == (
        "withdrawn",
        1000,
        1500,
        "USD",
    )
    assert w.net_minor == -2500 and w.exchange_rate == ""
    assert w.available_at == dt.datetime.fromtimestamp(1626307200, dt.UTC)
    assert d.reinstatement is None


def test_reference_current_dispute_is_an_inquiry_without_funds():
    obj = read_json(SHARED_REFERENCE / "current" / "objects.json")["dispute"]
    d = parse_dispute(obj)
    assert d.status == "warning_needs_response" and d.is_inquiry
    assert d.funds == () and d.withdrawal is None and d.payment_intent_ref == ""


def test_emulated_dispute_won_with_fee_back_in_a_foreign_settlement():
    charge = em.make_charge(
        _invoice(currency="eur"),
        fee=32_23,
        exchange_rate="1.1",
        settlement_currency="usd",
        charge_id="ch_eur",
        created=T0,
    )
    dispute = em.make_dispute(charge, dispute_id="dp_x", created=T0)
    opened = parse_dispute(wire(dispute))
    w = opened.withdrawal
    assert (opened.currency, opened.amount_minor) == ("EUR", 1000_00)
    assert (w.currency, w.amount_minor, w.fee_minor, w.exchange_rate) == (
        "USD",
        1100_00,
        15_00,
        "1.1",
    )
    assert dispute["balance_transactions"][0]["reporting_category"] == "dispute"

    won = em.close_dispute(dispute, "won", fee_returned=15_00, exchange_rate="1.05", closed_at=T0)
    assert dispute["status"] == "needs_response"  # the open dispute is not changed
    d = parse_dispute(wire(won))
    r = d.reinstatement
    assert d.status == "won" and len(d.funds) == 2
    assert (r.direction, r.amount_minor, r.fee_minor, r.exchange_rate) == (
        "reinstated",
        1050_00,
        -15_00,
        "1.05",
    )
    assert r.net_minor == 1065_00
    assert won["balance_transactions"][1]["reporting_category"] == "dispute_reversal"


def test_lost_dispute_moves_nothing_more_and_inquiries_close_as_warning_closed():
    charge = em.make_charge(_invoice(), charge_id="ch_1", created=T0)
    lost = parse_dispute(em.close_dispute(em.make_dispute(charge), "lost"))
    assert lost.status == "lost" and [f.direction for f in lost.funds] == ["withdrawn"]
    inquiry = em.make_dispute(charge, status="warning_needs_response")
    assert parse_dispute(em.close_dispute(inquiry, "warning_closed")).funds == ()
    with pytest.raises(ValueError, match="only an inquiry closes as warning_closed"):
        em.close_dispute(inquiry, "lost")
    with pytest.raises(ValueError, match="dispute amount must be in"):
        em.make_dispute(charge, amount=1000_01)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("charge"), "missing required field 'charge'"),
        (lambda d: d.update(status="pending"), "field 'status' must be one of"),
        (lambda d: d.update(amount=-5), "field 'amount' must be zero or positive"),
        (lambda d: d.update(balance_transactions=["txn_1"]), "an expanded balance transaction"),
        (
            lambda d: d["balance_transactions"][0].update(source="ch_other"),
            "balance_transactions[0].source",
        ),
        (lambda d: d["balance_transactions"][0].update(amount=1.5), "balance_transactions[0]"),
    ],
)
def test_dispute_parser_names_the_bad_field(change, message):
    charge = em.make_charge(_invoice(), charge_id="ch_1", created=T0)
    obj = copy.deepcopy(em.make_dispute(charge, dispute_id="dp_bad"))
    change(obj)
    with pytest.raises(PermanentError) as info:
        parse_dispute(obj)
    assert message in info.value.message and "dispute dp_bad" in info.value.message


# --- uncollectible invoices ---------------------------------------------------------------------


def test_uncollectible_invoice_balance_after_a_partial_payment():
    marked = em.uncollectible_invoice(_invoice(), amount_paid=300_00, marked_at=T0 + 86400)
    b = parse_invoice_balance(wire(marked))
    assert (b.source_id, b.status, b.currency) == ("in_1", "uncollectible", "USD")
    assert (b.amount_due_minor, b.amount_paid_minor, b.amount_remaining_minor) == (
        1000_00,
        300_00,
        700_00,
    )
    assert b.marked_uncollectible_at == dt.datetime(2026, 1, 2, tzinfo=dt.UTC)


def test_pre_basil_invoice_without_amount_remaining_uses_due_less_paid():
    invoice = em.make_invoice_pre_basil(
        "cus_1", [em.LineSpec(amount_minor=500, price_id="price_p")], invoice_id="in_old"
    )
    marked = em.uncollectible_invoice(invoice)
    marked.pop("amount_remaining")
    assert parse_invoice_balance(marked).amount_remaining_minor == 500


def test_invoice_balance_refuses_a_remaining_amount_outside_what_is_due():
    marked = {**em.uncollectible_invoice(_invoice()), "amount_remaining": 1000_01}
    with pytest.raises(PermanentError, match=r"amount_remaining \(100001\) must be between 0"):
        parse_invoice_balance(marked)
    with pytest.raises(ValueError, match="amount_paid must be in"):
        em.uncollectible_invoice(_invoice(), amount_paid=1000_00)
