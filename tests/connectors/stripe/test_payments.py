"""Credit notes, charges, refunds and invoice payments: Stripe payloads -> canonical dataclasses."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import (
    BillingCreditNoteLine,
    BillingInvoicePayment,
    BillingPayment,
    BillingTax,
    PermanentError,
)
from connectors.stripe import emulator as em
from connectors.stripe.mapping import IncompletePayload, parse_invoice
from connectors.stripe.payments import (
    invoice_payment_links,
    link_invoice,
    parse_charge,
    parse_credit_note,
    parse_credit_note_line,
    parse_invoice_payment,
    parse_refund,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "stripe"
SHARED_REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "stripe"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def wire(obj: dict, event_type: str = "charge.succeeded") -> dict:
    """``obj`` as it arrives: inside an event, serialized, parsed back with Decimal floats."""
    body = em.serialize(em.make_event(event_type, obj, T0))
    return json.loads(body, parse_float=Decimal)["data"]["object"]


# --- reference payloads ---------------------------------------------------------------------------


def test_fixture_copies_match_the_shared_reference():
    if not SHARED_REFERENCE.is_dir():
        pytest.skip("shared reference payloads not available")
    current = read_json(SHARED_REFERENCE / "current" / "objects.json")
    for fixture, key in [
        ("current_credit_note.json", "credit_note"),
        ("current_credit_note_line_item.json", "credit_note_line_item"),
        ("current_refund.json", "refund"),
        ("current_balance_transaction.json", "balance_transaction"),
        ("current_invoice_payment.json", "invoice_payment"),
    ]:
        assert read_json(FIXTURES / fixture) == current[key], fixture
    for key, value in read_json(FIXTURES / "current_charge.json").items():  # trimmed copy
        assert current["charge"][key] == value, key
    pre = SHARED_REFERENCE / "pre-basil"
    assert read_json(FIXTURES / "pre_basil_balance_transaction.json") == read_json(
        pre / "balance_transaction_txn_fake_ch_fakefakefakefakefake0001.json"
    )
    for fixture, source in [
        ("pre_basil_charge.json", "charge_ch_fakefakefakefakefake0001.json"),
        ("pre_basil_payment_intent.json", "payment_intent_pi_fakefakefakefakefake0001.json"),
    ]:
        full = read_json(pre / source)
        for key, value in read_json(FIXTURES / fixture).items():
            assert full[key] == value, (fixture, key)


def test_current_reference_credit_note_placeholders_are_refused(load_fixture):
    """The OpenAPI fixture's pre/post-payment amounts are random placeholders (251024947 +
    1355257296 for a 1690 credit note): never map amounts that contradict each other."""
    with pytest.raises(PermanentError) as exc_info:
        parse_credit_note(load_fixture("current_credit_note.json"))
    err = exc_info.value
    assert err.code == "inconsistent_amounts"
    assert "cn_1Pgc75B7WZ01zgkWJMPt5riP" in err.message
    assert "pre_payment_amount" in err.message and "post_payment_amount" in err.message


def _consistent_reference_credit_note(load_fixture) -> dict:
    """The reference credit note with its placeholder amounts made consistent: a 1690 USD
    pre-payment credit note (no refunds), figures otherwise as published."""
    raw = load_fixture("current_credit_note.json")
    raw.update(pre_payment_amount=1690, post_payment_amount=0, refunds=[])
    return raw


def test_current_reference_credit_note(load_fixture):
    cn = parse_credit_note(_consistent_reference_credit_note(load_fixture))
    assert cn.source_id == "cn_1Pgc75B7WZ01zgkWJMPt5riP"
    assert cn.number == "ABCD-1234-CN-01"
    assert cn.invoice_ref == "in_1Pgc75B7WZ01zgkWYv4iMwt7"
    assert cn.customer_ref == "cus_QXg1o8vcGmoR32"
    assert cn.currency == "USD"
    assert cn.timing == "pre_payment"
    assert (cn.pre_payment_minor, cn.post_payment_minor) == (1690, 0)
    assert (cn.refunded_minor, cn.credited_to_balance_minor, cn.out_of_band_minor) == (0, 0, 0)
    # total_taxes and every line's taxes are null: the tax_rates[] on the first line carry no
    # amount, so nothing can be said about tax beyond "none recorded"
    assert (cn.subtotal_minor, cn.tax_minor, cn.total_minor) == (1690, 0, 1690)
    assert cn.issued_at == utc(2009, 2, 13, 23, 31, 30)  # effective_at
    assert cn.status == "issued"
    assert cn.lines == (
        BillingCreditNoteLine(
            source_id="cnli_1Pgc75B7WZ01zgkWla6u0GdZ",
            invoice_line_ref="il_1Pgc74B7WZ01zgkWWh45tUBA",
            description="My First Invoice Item (created for API docs)",
            net_minor=1190,
            tax_minor=0,
        ),
        BillingCreditNoteLine(
            source_id="cnli_1Pgc75B7WZ01zgkW9m0EaOVh",
            invoice_line_ref="",  # a custom_line_item credits no invoice line
            description="Service credit",
            net_minor=500,
            tax_minor=0,
        ),
    )
    assert sum(line.net_minor + line.tax_minor for line in cn.lines) == cn.total_minor


def test_current_reference_credit_note_as_post_payment_with_refund(load_fixture):
    raw = _consistent_reference_credit_note(load_fixture)
    raw.update(
        type="post_payment",
        pre_payment_amount=0,
        post_payment_amount=1690,
        refunds=[
            {
                "amount_refunded": 1000,
                "refund": "re_1Pgc72B7WZ01zgkWqPvrRrPE",
                "payment_record_refund": None,
                "type": "refund",
            }
        ],
        customer_balance_transaction="cbtxn_1Pgc75B7WZ01zgkWgM0DfYYl",
    )
    cn = parse_credit_note(raw)
    assert cn.timing == "post_payment"
    assert cn.refunded_minor == 1000
    assert cn.credited_to_balance_minor == 690  # the rest of the post-payment amount
    assert cn.refund_refs == ("re_1Pgc72B7WZ01zgkWqPvrRrPE",)
    assert cn.customer_balance_transaction_ref == "cbtxn_1Pgc75B7WZ01zgkWgM0DfYYl"


def test_current_reference_credit_note_line_item(load_fixture):
    line = parse_credit_note_line(load_fixture("current_credit_note_line_item.json"))
    assert line == BillingCreditNoteLine(
        source_id="cnli_1Pgc75B7WZ01zgkWPb1sOn7l",
        invoice_line_ref="il_1Pgc75B7WZ01zgkWOwaRplc5",
        description="My First Invoice Item (created for API docs)",
        net_minor=1000,
        tax_minor=0,
    )


def test_current_reference_charge_with_separate_balance_transaction(load_fixture):
    """OpenAPI fixtures: charge ch_1Pgafu... (balance_transaction as an id) and its txn."""
    charge = load_fixture("current_charge.json")
    txn = load_fixture("current_balance_transaction.json")
    assert charge["balance_transaction"] == txn["id"]
    payment = parse_charge(charge, txn)
    assert payment == BillingPayment(
        source_id="ch_1PgafuB7WZ01zgkWXYmPNZs8",
        kind="payment",
        invoice_ref="",  # current shape: a charge names no invoice
        customer_ref="",  # "customer": null
        currency="USD",
        amount_minor=100,
        fee_minor=0,
        settlement_currency="USD",
        settlement_amount_minor=100,
        exchange_rate="",  # null: no conversion
        settled_at=utc(2009, 2, 13, 23, 31, 30),  # available_on
        charge_ref="ch_1PgafuB7WZ01zgkWXYmPNZs8",
        status="uncaptured",  # status succeeded but captured: false -- an authorisation only
        payment_intent_ref="",
        balance_transaction_ref="txn_1PgaxNB7WZ01zgkWEV3TLf40",
        created=utc(2009, 2, 13, 23, 31, 30),
        metadata={},
    )
    assert payment.net_settlement_minor == 100


def test_current_reference_charge_without_balance_transaction(load_fixture):
    payment = parse_charge(load_fixture("current_charge.json"))
    assert (payment.settlement_currency, payment.settlement_amount_minor, payment.fee_minor) == (
        "",
        0,
        0,
    )
    assert payment.settled_at is None
    assert payment.balance_transaction_ref == "txn_1PgaxNB7WZ01zgkWEV3TLf40"  # what to fetch


def test_current_reference_refund(load_fixture):
    refund = parse_refund(load_fixture("current_refund.json"))
    assert refund.source_id == "re_1Pgc72B7WZ01zgkWqPvrRrPE"
    assert refund.kind == "refund"
    assert (refund.currency, refund.amount_minor) == ("USD", 100)
    assert refund.charge_ref == "ch_1PgafuB7WZ01zgkWXYmPNZs8"
    assert refund.invoice_ref == ""  # a refund never names an invoice
    assert refund.balance_transaction_ref == ""  # null in the fixture
    assert (refund.settlement_currency, refund.settlement_amount_minor) == ("", 0)
    assert refund.status == "succeeded"
    assert refund.created == utc(2009, 2, 13, 23, 31, 30)


def test_pre_basil_reference_charge(load_fixture):
    """dj-stripe's charge: 20.00 USD paying in_fake...0001, 0.88 fee, available 2019-05-23."""
    payment = parse_charge(
        load_fixture("pre_basil_charge.json"), load_fixture("pre_basil_balance_transaction.json")
    )
    assert payment.source_id == "ch_fakefakefakefakefake0001"
    assert payment.invoice_ref == "in_fakefakefakefakefake0001"  # charge.invoice (old shape)
    assert payment.customer_ref == "cus_6lsBvm5rJ0zyHc"
    assert (payment.currency, payment.amount_minor) == ("USD", 2000)  # amount_captured 0 ignored
    assert (payment.settlement_currency, payment.settlement_amount_minor) == ("USD", 2000)
    assert payment.fee_minor == 88
    assert payment.net_settlement_minor == 1912  # the txn's own net
    assert payment.exchange_rate == ""
    assert payment.settled_at == utc(2019, 5, 23)
    assert payment.status == "succeeded"
    assert payment.payment_intent_ref == "pi_fakefakefakefakefake0001"
    assert payment.balance_transaction_ref == "txn_fake_ch_fakefakefakefakefake0001"
    assert payment.created == utc(2019, 5, 16, 8, 26, 17)
    assert payment.metadata == {"djstripe_test_fake_id": "ch_fakefakefakefakefake0001"}


def test_pre_basil_invoice_names_its_charge(load_fixture):
    links = invoice_payment_links(load_fixture("pre_basil_invoice.json"))
    assert links == (
        BillingInvoicePayment(
            source_id="",
            invoice_ref="in_fakefakefakefakefake0001",
            currency="USD",
            amount_requested_minor=2000,
            amount_paid_minor=2000,
            status="paid",
            payment_intent_ref="pi_fakefakefakefakefake0001",
            charge_ref="ch_fakefakefakefakefake0001",
            paid_at=utc(2020, 6, 27, 2, 46, 23),  # status_transitions.paid_at
            created=utc(2019, 5, 16, 8, 26, 16),
        ),
    )


def test_invoice_ref_through_expanded_old_payment_intent(load_fixture):
    charge = load_fixture("pre_basil_charge.json")
    del charge["invoice"]
    charge["payment_intent"] = load_fixture("pre_basil_payment_intent.json")
    payment = parse_charge(charge)
    assert payment.invoice_ref == "in_fakefakefakefakefake0001"  # payment_intent.invoice
    assert payment.payment_intent_ref == "pi_fakefakefakefakefake0001"


def test_reference_invoice_payment_docs_example(load_fixture):
    """The example object on docs.stripe.com/api/invoice-payment/object."""
    link = parse_invoice_payment(load_fixture("current_invoice_payment_docs.json"))
    assert link == BillingInvoicePayment(
        source_id="inpay_1M3USa2eZvKYlo2CBjuwbq0N",
        invoice_ref="in_103Q0w2eZvKYlo2C5PYwf6Wf",
        currency="USD",
        amount_requested_minor=2000,
        amount_paid_minor=2000,
        status="paid",
        payment_intent_ref="pi_103Q0w2eZvKYlo2C364X582Z",
        charge_ref="",
        paid_at=utc(2014, 2, 1, 21, 2, 34),
        is_default=True,
        created=utc(2014, 2, 1, 21, 2, 34),
    )


def test_reference_invoice_payment_openapi_fixture(load_fixture):
    """OpenAPI fixture: placeholders ("invoice", "status") pass through as text; the currency
    placeholder is not an ISO-4217 code and is refused with a clear error (a currency column
    holds three letters, and a longer value must not reach it)."""
    fixture = load_fixture("current_invoice_payment.json")
    with pytest.raises(PermanentError, match="'currency' must be an ISO-4217 code"):
        parse_invoice_payment(fixture)
    link = parse_invoice_payment({**fixture, "currency": "usd"})
    assert (link.source_id, link.invoice_ref) == ("obj_123", "invoice")
    assert (link.amount_requested_minor, link.amount_paid_minor) == (1112626247, 0)  # paid: null
    assert (link.payment_intent_ref, link.charge_ref, link.paid_at) == ("", "", None)


def test_invoice_payment_preview_shape_with_top_level_charge():
    """docs.stripe.com/api/invoice-payment/object?api-version=2025-11-17.preview example."""
    link = parse_invoice_payment(
        {
            "id": "inpay_1M3USa2eZvKYlo2CBjuwbq0N",
            "object": "invoice_payment",
            "amount_overpaid": 0,
            "amount_paid": 2000,
            "amount_requested": 2000,
            "charge": "ch_103Q0w2eZvKYlo2CbMCI3q1h",
            "created": 1391288554,
            "currency": "usd",
            "invoice": "in_103Q0w2eZvKYlo2C5PYwf6Wf",
            "is_default": True,
            "livemode": False,
            "payment_intent": None,
            "status": "paid",
            "status_transitions": {"canceled_at": None, "paid_at": 1391288554},
        }
    )
    assert (link.charge_ref, link.payment_intent_ref) == ("ch_103Q0w2eZvKYlo2CbMCI3q1h", "")


# --- builders round-trip: charges and invoice links ----------------------------------------------


def _paid_invoice(currency="eur", amount=10_000, *, pre_basil=False, tax=None, rng=None):
    rng = rng or random.Random(7)
    build = em.make_invoice_pre_basil if pre_basil else em.make_invoice
    line = {"amount_minor": amount}
    if tax is not None:
        line["tax"] = tax
    return build("cus_TEST", [line], currency=currency, status="paid", created=T0, rng=rng)


def test_current_charge_links_to_its_invoice_through_the_invoice_payment():
    rng = random.Random(1)
    invoice = _paid_invoice(rng=rng)
    charge = em.make_charge(invoice, fee=320, rng=rng)
    assert "invoice" not in charge  # basil removed it
    payment = parse_charge(wire(charge))
    assert payment.invoice_ref == ""
    assert (payment.currency, payment.amount_minor, payment.fee_minor) == ("EUR", 10_000, 320)
    assert payment.customer_ref == "cus_TEST"
    assert payment.created == utc(2026, 1, 1)  # the invoice's paid_at
    assert payment.settled_at == utc(2026, 1, 3)  # available two days later

    link = parse_invoice_payment(wire(em.make_invoice_payment(invoice, charge, rng=rng)))
    assert link.payment_intent_ref == payment.payment_intent_ref
    assert link.amount_paid_minor == 10_000
    linked = link_invoice(payment, [link])
    assert linked.invoice_ref == invoice["id"]
    assert link_invoice(linked, []) is linked  # already linked: unchanged


def test_current_invoice_with_included_payments_list():
    rng = random.Random(2)
    invoice = _paid_invoice(rng=rng)
    charge = em.make_charge(invoice, rng=rng)
    ip = em.make_invoice_payment(invoice, charge, rng=rng)
    invoice["payments"] = {"object": "list", "data": [ip], "has_more": False, "url": "/v1/x"}
    (link,) = invoice_payment_links(invoice)
    assert link_invoice(parse_charge(charge), [link]).invoice_ref == invoice["id"]
    invoice["payments"]["has_more"] = True
    with pytest.raises(IncompletePayload, match="payments"):
        invoice_payment_links(invoice)
    del invoice["payments"]
    assert invoice_payment_links(invoice) == ()  # current shape: nothing on the invoice itself


def test_pre_basil_charge_names_its_invoice():
    rng = random.Random(3)
    invoice = _paid_invoice("usd", 2000, pre_basil=True, rng=rng)
    charge = em.make_charge(invoice, rng=rng)
    assert charge["id"] == invoice["charge"]
    assert charge["payment_intent"] == invoice["payment_intent"]
    payment = parse_charge(wire(charge))
    assert payment.invoice_ref == invoice["id"]
    assert payment.fee_minor == 88  # default fee: 2.9 % of 2000 + 30
    (link,) = invoice_payment_links(invoice)
    assert link.charge_ref == payment.charge_ref


def test_link_through_charge_when_invoice_payment_names_the_charge():
    rng = random.Random(4)
    invoice = _paid_invoice(rng=rng)
    charge = em.make_charge(invoice, rng=rng)
    charge["payment_intent"] = None  # a bare charge: Stripe then names the charge
    ip = parse_invoice_payment(em.make_invoice_payment(invoice, charge, rng=rng))
    assert (ip.charge_ref, ip.payment_intent_ref) == (charge["id"], "")
    assert link_invoice(parse_charge(charge), [ip]).invoice_ref == invoice["id"]


def test_one_payment_intent_paying_two_invoices_is_ambiguous():
    rng = random.Random(5)
    first, second = _paid_invoice(rng=rng), _paid_invoice(rng=rng)
    charge = em.make_charge(first, rng=rng)
    links = [
        parse_invoice_payment(em.make_invoice_payment(first, charge, amount=6000, rng=rng)),
        parse_invoice_payment(em.make_invoice_payment(second, charge, amount=4000, rng=rng)),
    ]
    with pytest.raises(PermanentError) as exc_info:
        link_invoice(parse_charge(charge), links)
    assert exc_info.value.code == "ambiguous_invoice"
    assert exc_info.value.details == {"invoices": sorted([first["id"], second["id"]])}


def test_canceled_invoice_payment_does_not_link():
    rng = random.Random(6)
    invoice = _paid_invoice(rng=rng)
    charge = em.make_charge(invoice, rng=rng)
    link = parse_invoice_payment(em.make_invoice_payment(invoice, charge, status="canceled"))
    assert link.amount_paid_minor == 0 and link.paid_at is None
    assert link_invoice(parse_charge(charge), [link]).invoice_ref == ""


def test_invoice_ref_from_metadata_convention():
    rng = random.Random(8)
    invoice = _paid_invoice(rng=rng)
    charge = em.make_charge(invoice, metadata={"invoice_id": invoice["id"]}, rng=rng)
    assert parse_charge(charge).invoice_ref == invoice["id"]
    other = em.make_charge(invoice, metadata={"invoice": "INV-2026-001"}, rng=rng)
    assert parse_charge(other).invoice_ref == ""  # not a Stripe invoice id: ignored


def test_balance_transaction_given_separately_must_be_the_charges_own():
    rng = random.Random(9)
    charge = em.make_charge(_paid_invoice(rng=rng), rng=rng)
    txn = charge["balance_transaction"]
    collapsed = {**charge, "balance_transaction": txn["id"]}
    assert parse_charge(collapsed, txn) == parse_charge(charge)
    with pytest.raises(PermanentError, match="'balance_transaction'"):
        parse_charge(collapsed, {**txn, "id": "txn_other"})
    with pytest.raises(PermanentError, match=r"'balance_transaction\.source'"):
        parse_charge(collapsed, {**txn, "source": "ch_other"})


def test_uncaptured_and_failed_charges_have_no_settlement():
    rng = random.Random(10)
    invoice = _paid_invoice(rng=rng)
    held = parse_charge(em.make_charge(invoice, captured=False, rng=rng))
    assert held.status == "uncaptured" and held.settlement_currency == ""
    failed = parse_charge(em.make_charge(invoice, status="failed", rng=rng))
    assert failed.status == "failed" and failed.balance_transaction_ref == ""


def test_partially_captured_charge_uses_amount_captured():
    rng = random.Random(11)
    charge = em.make_charge(_paid_invoice(rng=rng), rng=rng)
    charge["amount_captured"] = 7_500
    assert parse_charge(charge).amount_minor == 7_500


# --- currencies ---------------------------------------------------------------------------------


def test_eur_charge_settled_in_usd():
    """100.00 EUR + 19 % VAT = 119.00 EUR charged; at 1.0843 that is 129.03 USD on the balance,
    minus a 4.04 USD fee (2.9 % of 129.03 = 3.74, + 0.30) = 124.99 USD net."""
    rng = random.Random(12)
    invoice = _paid_invoice("eur", 10_000, tax={"percentage": 19}, rng=rng)
    assert invoice["total"] == 11_900
    charge = em.make_charge(
        invoice, exchange_rate=Decimal("1.0843"), settlement_currency="usd", rng=rng
    )
    payment = parse_charge(wire(charge))
    assert (payment.currency, payment.amount_minor) == ("EUR", 11_900)
    assert (payment.settlement_currency, payment.settlement_amount_minor) == ("USD", 12_903)
    assert payment.fee_minor == 404
    assert payment.net_settlement_minor == 12_499
    assert payment.exchange_rate == "1.0843"


def test_exchange_rate_survives_a_plain_float_json_load():
    rng = random.Random(13)
    charge = em.make_charge(
        _paid_invoice(rng=rng), exchange_rate="1.0843", settlement_currency="usd", rng=rng
    )
    plain = json.loads(em.serialize(charge))  # floats as float
    assert isinstance(plain["balance_transaction"]["exchange_rate"], float)
    assert parse_charge(plain).exchange_rate == "1.0843"


def test_partial_refund_of_a_eur_charge_settled_in_usd():
    """25.00 of 119.00 EUR back at the charge's rate: 27.1075 -> 27.11 USD leaves the balance."""
    rng = random.Random(14)
    invoice = _paid_invoice("eur", 10_000, tax={"percentage": 19}, rng=rng)
    charge = em.make_charge(
        invoice, fee=404, exchange_rate=Decimal("1.0843"), settlement_currency="usd", rng=rng
    )
    refund_obj = em.make_refund(charge, 2_500, created=T0 + 86_400, rng=rng)
    assert refund_obj["balance_transaction"]["amount"] == -2_711  # Stripe's sign
    refund = parse_refund(wire(refund_obj, "charge.refund.updated"))
    assert refund.kind == "refund"
    assert (refund.currency, refund.amount_minor) == ("EUR", 2_500)
    assert (refund.settlement_currency, refund.settlement_amount_minor) == ("USD", 2_711)
    assert refund.fee_minor == 0
    assert refund.net_settlement_minor == 2_711
    assert refund.exchange_rate == "1.0843"
    assert refund.charge_ref == charge["id"]
    assert refund.payment_intent_ref == charge["payment_intent"]
    assert refund.customer_ref == "cus_TEST"
    assert refund.settled_at == utc(2026, 1, 2)

    # linked to the invoice the same way as its charge
    link = parse_invoice_payment(em.make_invoice_payment(invoice, charge, rng=rng))
    assert link_invoice(refund, [link]).invoice_ref == invoice["id"]

    # the rest of the charge can still be refunded, and no more
    after = em.refunded_charge(charge, refund_obj)
    assert (after["amount_refunded"], after["refunded"]) == (2_500, False)
    rest = parse_refund(em.make_refund(after, rng=rng))
    assert rest.amount_minor == 9_400
    with pytest.raises(ValueError, match=r"1\.\.9400"):
        em.make_refund(after, 9_401, rng=rng)


def test_refund_with_fee_returned_and_expanded_old_charge():
    rng = random.Random(15)
    invoice = _paid_invoice("usd", 2000, pre_basil=True, rng=rng)
    charge = em.make_charge(invoice, rng=rng)
    raw = em.make_refund(charge, 2000, fee_refunded=88, rng=rng)
    assert "customer" not in raw  # older refunds do not name the customer
    raw["charge"] = charge  # expanded
    refund = parse_refund(raw)
    assert refund.invoice_ref == invoice["id"]  # through the old charge's invoice
    assert refund.customer_ref == "cus_TEST"
    assert (refund.settlement_amount_minor, refund.fee_minor) == (2000, 88)
    assert refund.net_settlement_minor == 1912  # what actually left the balance


def test_jpy_zero_decimal_charge():
    """JPY has no minor unit: 5000 means 5,000 yen; the default fee is 3.6 % = 180 yen."""
    rng = random.Random(16)
    invoice = _paid_invoice("jpy", 5_000, rng=rng)
    payment = parse_charge(wire(em.make_charge(invoice, rng=rng)))
    assert (payment.currency, payment.amount_minor) == ("JPY", 5_000)
    assert (payment.settlement_currency, payment.settlement_amount_minor) == ("JPY", 5_000)
    assert payment.fee_minor == 180
    assert payment.exchange_rate == ""


def test_jpy_charge_settled_in_usd_respects_both_exponents():
    """5,000 JPY * 0.0067 = 33.50 USD = 3350 cents (not 34: minor units differ by 10^2)."""
    rng = random.Random(17)
    invoice = _paid_invoice("jpy", 5_000, rng=rng)
    charge = em.make_charge(
        invoice, fee=127, exchange_rate="0.0067", settlement_currency="usd", rng=rng
    )
    payment = parse_charge(wire(charge))
    assert (payment.amount_minor, payment.settlement_amount_minor) == (5_000, 3_350)
    assert payment.fee_minor == 127
    assert payment.exchange_rate == "0.0067"
    refund = parse_refund(em.make_refund(charge, 1_000, rng=rng))
    assert (refund.amount_minor, refund.settlement_amount_minor) == (1_000, 670)


def test_balance_transaction_builder_rules():
    txn = em.make_balance_transaction(1000, "eur", 59, "1.1", "usd", created=T0)
    assert (txn["amount"], txn["currency"], txn["fee"], txn["net"]) == (1100, "usd", 59, 1041)
    assert txn["exchange_rate"] == Decimal("1.1")
    assert txn["fee_details"][0]["amount"] == 59
    assert txn["available_on"] == T0 + 2 * 86_400
    with pytest.raises(ValueError, match="exchange_rate"):
        em.make_balance_transaction(1000, "eur", 0, settlement_currency="usd")
    with pytest.raises(ValueError, match="same currency"):
        em.make_balance_transaction(1000, "eur", 0, "1.1")
    with pytest.raises(TypeError):
        em.make_balance_transaction(10.0, "eur")


# --- credit notes: builders round-trip -----------------------------------------------------------


def test_pre_payment_credit_note_on_an_open_invoice():
    rng = random.Random(20)
    invoice = em.make_invoice(
        "cus_TEST",
        [{"amount_minor": 10_000, "tax": {"percentage": 19}}, {"amount_minor": 5_000}],
        currency="eur",
        status="open",
        created=T0,
        rng=rng,
    )
    line_ids = [line["id"] for line in invoice["lines"]["data"]]
    raw = em.make_credit_note(
        invoice,
        [{"invoice_line_id": line_ids[0], "amount_minor": 4_000}],
        created=T0 + 3600,
        rng=rng,
    )
    assert (raw["type"], raw["pre_payment_amount"], raw["post_payment_amount"]) == (
        "pre_payment",
        4_760,
        0,
    )
    cn = parse_credit_note(wire(raw, "credit_note.created"))
    assert cn.timing == "pre_payment"
    assert (cn.subtotal_minor, cn.tax_minor, cn.total_minor) == (4_000, 760, 4_760)
    assert (cn.refunded_minor, cn.credited_to_balance_minor) == (0, 0)
    assert cn.invoice_ref == invoice["id"] and cn.customer_ref == "cus_TEST"
    assert cn.currency == "EUR"
    assert cn.issued_at == utc(2026, 1, 1, 1)
    (line,) = cn.lines
    assert line.invoice_line_ref == line_ids[0]
    assert (line.net_minor, line.tax_minor) == (4_000, 760)  # 19 % of the invoice tax, pro rata
    assert (
        line.taxes[0].rate_ref
        == invoice["lines"]["data"][0]["taxes"][0]["tax_rate_details"]["tax_rate"]
    )
    assert sum(ln.net_minor + ln.tax_minor for ln in cn.lines) == cn.total_minor


def test_post_payment_credit_note_refunded_in_full():
    rng = random.Random(21)
    invoice = _paid_invoice("eur", 10_000, tax={"percentage": 19}, rng=rng)
    charge = em.make_charge(invoice, rng=rng)
    refund = em.make_refund(charge, 11_900, rng=rng)
    raw = em.make_credit_note(invoice, refund=refund, reason="product_unsatisfactory", rng=rng)
    cn = parse_credit_note(wire(raw, "credit_note.created"))
    assert cn.timing == "post_payment"
    assert (cn.pre_payment_minor, cn.post_payment_minor) == (0, 11_900)
    assert (cn.subtotal_minor, cn.tax_minor, cn.total_minor) == (10_000, 1_900, 11_900)
    assert (cn.refunded_minor, cn.credited_to_balance_minor, cn.out_of_band_minor) == (
        11_900,
        0,
        0,
    )
    assert cn.refund_refs == (refund["id"],)
    assert cn.reason == "product_unsatisfactory"
    assert cn.lines[0].invoice_line_ref == invoice["lines"]["data"][0]["id"]


def test_post_payment_credit_note_split_three_ways():
    rng = random.Random(22)
    invoice = _paid_invoice("usd", 10_000, rng=rng)
    raw = em.make_credit_note(
        invoice, [6_000], refund_amount=3_000, credit_amount=2_000, out_of_band_amount=1_000
    )
    cn = parse_credit_note(raw)
    assert (cn.refunded_minor, cn.credited_to_balance_minor, cn.out_of_band_minor) == (
        3_000,
        2_000,
        1_000,
    )
    assert cn.total_minor == 6_000


def test_post_payment_credit_note_defaults_to_customer_balance():
    invoice = _paid_invoice("usd", 10_000)
    cn = parse_credit_note(em.make_credit_note(invoice, [2_500]))
    assert (cn.refunded_minor, cn.credited_to_balance_minor) == (0, 2_500)
    assert cn.customer_balance_transaction_ref.startswith("cbtxn_")


def test_mixed_credit_note_on_a_partially_paid_invoice():
    rng = random.Random(23)
    invoice = em.make_invoice(
        "cus_TEST", [{"amount_minor": 10_000}], currency="usd", status="open", rng=rng
    )
    invoice.update(amount_paid=7_000, amount_remaining=3_000)  # a partial payment (basil)
    raw = em.make_credit_note(invoice, [5_000], refund_amount=2_000, rng=rng)
    cn = parse_credit_note(raw)
    assert cn.timing == "mixed"
    assert (cn.pre_payment_minor, cn.post_payment_minor) == (3_000, 2_000)
    assert (cn.refunded_minor, cn.credited_to_balance_minor) == (2_000, 0)


def test_credit_note_with_inclusive_tax_and_a_custom_line():
    rng = random.Random(24)
    invoice = _paid_invoice("eur", 11_900, tax={"percentage": 19, "inclusive": True}, rng=rng)
    raw = em.make_credit_note(
        invoice,
        [
            {"invoice_line_id": invoice["lines"]["data"][0]["id"], "amount_minor": 5_950},
            {"description": "Goodwill", "amount_minor": 1_000, "tax": {"amount": 190}},
        ],
        refund_amount=7_140,
        rng=rng,
    )
    cn = parse_credit_note(raw)
    first, custom = cn.lines
    assert (first.net_minor, first.tax_minor) == (5_000, 950)  # 1900 inclusive tax, half
    assert first.taxes[0].inclusive is True
    assert (custom.invoice_line_ref, custom.description) == ("", "Goodwill")
    assert (custom.net_minor, custom.tax_minor) == (1_000, 190)  # exclusive by default
    assert cn.subtotal_minor == 6_950  # line amounts: inclusive tax in, exclusive out
    assert (cn.tax_minor, cn.total_minor) == (1_140, 7_140)
    assert cn.refunded_minor == 7_140


def test_pre_basil_credit_notes():
    rng = random.Random(25)
    invoice = _paid_invoice("usd", 2_000, pre_basil=True, tax={"percentage": 15, "inclusive": True})
    charge = em.make_charge(invoice, rng=rng)
    refund = em.make_refund(charge, 2_000, rng=rng)

    raw = em.make_credit_note(invoice, refund=refund, rng=rng)
    assert "refunds" not in raw and raw["refund"] == refund["id"]
    assert "total_taxes" not in raw and "pre_payment_amount" not in raw
    assert raw["lines"]["data"][0]["tax_amounts"][0]["amount"] == 261
    cn = parse_credit_note(raw)
    assert cn.timing == "post_payment"
    assert (cn.refunded_minor, cn.credited_to_balance_minor) == (2_000, 0)  # only a refund id
    assert (cn.subtotal_minor, cn.tax_minor, cn.total_minor) == (2_000, 261, 2_000)
    (line,) = cn.lines
    assert (line.net_minor, line.tax_minor) == (1_739, 261)
    assert line.taxes == (BillingTax(261, invoice["total_tax_amounts"][0]["tax_rate"], True),)

    # an expanded refund says how much it was; the balance credit is the rest
    partial = em.make_refund(charge, 1_500, rng=rng)
    expanded = em.make_credit_note(invoice, refund=partial, credit_amount=500, expand_refund=True)
    assert expanded["refund"]["id"] == partial["id"]
    assert isinstance(expanded["customer_balance_transaction"], str)
    cn = parse_credit_note(expanded)
    assert (cn.refunded_minor, cn.credited_to_balance_minor) == (1_500, 500)
    expanded["refund"]["amount"] = 2_500
    with pytest.raises(PermanentError, match="exceed"):
        parse_credit_note(expanded)
    with pytest.raises(ValueError, match="whole refund"):
        em.make_credit_note(invoice, refund=refund, refund_amount=1_500, credit_amount=500)

    open_invoice = em.make_invoice_pre_basil("cus_TEST", [{"amount_minor": 800}], status="open")
    cn = parse_credit_note(em.make_credit_note(open_invoice))
    assert (cn.timing, cn.pre_payment_minor, cn.post_payment_minor) == ("pre_payment", 800, 0)


def test_pre_basil_refund_and_balance_credit_both_as_ids_cannot_be_split():
    invoice = _paid_invoice("usd", 2_000, pre_basil=True)
    raw = em.make_credit_note(invoice, refund_amount=1_000, credit_amount=1_000)
    with pytest.raises(PermanentError) as exc_info:
        parse_credit_note(raw)
    assert exc_info.value.code == "needs_expansion"
    raw = em.make_credit_note(
        invoice, refund_amount=1_000, credit_amount=1_000, expand_customer_balance_transaction=True
    )
    cn = parse_credit_note(raw)
    assert (cn.refunded_minor, cn.credited_to_balance_minor) == (1_000, 1_000)


def test_credit_note_builder_refuses_inconsistent_requests():
    paid = _paid_invoice("usd", 10_000)
    with pytest.raises(ValueError, match="must equal the post-payment amount"):
        em.make_credit_note(paid, [5_000], refund_amount=4_000)
    open_invoice = em.make_invoice("cus_TEST", [{"amount_minor": 1_000}], status="open")
    with pytest.raises(ValueError, match="pre-payment"):
        em.make_credit_note(open_invoice, refund_amount=1_000)
    with pytest.raises(ValueError, match="cannot credit"):
        em.make_credit_note(open_invoice, [1_001])
    with pytest.raises(ValueError, match="no line"):
        em.make_credit_note(open_invoice, [{"invoice_line_id": "il_nope", "amount_minor": 1}])
    draft = em.make_invoice("cus_TEST", [{"amount_minor": 1_000}], status="draft")
    with pytest.raises(ValueError, match="finalized"):
        em.make_credit_note(draft)


def test_credit_note_lines_match_the_invoice_they_credit():
    """A full credit note mirrors its invoice: same lines, same tax, same total."""
    rng = random.Random(26)
    invoice = em.make_invoice(
        "cus_TEST",
        [
            {"amount_minor": 3_333, "tax": {"percentage": "8.25"}},
            {"amount_minor": 1_190, "tax": {"percentage": 19, "inclusive": True}},
        ],
        currency="usd",
        status="open",
        rng=rng,
    )
    parsed_invoice = parse_invoice(invoice)
    cn = parse_credit_note(em.make_credit_note(invoice, rng=rng))
    assert cn.total_minor == parsed_invoice.total_minor
    assert cn.tax_minor == parsed_invoice.tax_minor
    assert cn.subtotal_minor == parsed_invoice.subtotal_minor
    for cn_line, inv_line in zip(cn.lines, parsed_invoice.lines, strict=True):
        assert cn_line.invoice_line_ref == inv_line.source_id
        assert (cn_line.net_minor, cn_line.tax_minor) == (inv_line.net_minor, inv_line.tax_minor)


# --- refusals -----------------------------------------------------------------------------------


@pytest.fixture
def credit_note():
    return em.make_credit_note(_paid_invoice("usd", 10_000), [4_000], refund_amount=4_000)


@pytest.mark.parametrize(
    "field_name",
    ["id", "invoice", "customer", "currency", "type", "subtotal", "total", "created", "lines"],
)
def test_missing_required_credit_note_field(credit_note, field_name):
    del credit_note[field_name]
    with pytest.raises(PermanentError) as exc_info:
        parse_credit_note(credit_note)
    assert f"'{field_name}'" in exc_info.value.message
    assert exc_info.value.code == "missing_field"


def test_credit_note_lines_has_more(credit_note):
    credit_note["lines"]["has_more"] = True
    credit_note["lines"]["total_count"] = 30
    with pytest.raises(IncompletePayload) as exc_info:
        parse_credit_note(credit_note)
    assert (exc_info.value.included, exc_info.value.total_count) == (1, 30)
    assert exc_info.value.object_id == credit_note["id"]


@pytest.mark.parametrize(
    ("path", "value", "field_name"),
    [
        (("total",), 4000.0, "total"),
        (("type",), "sometimes", "type"),
        (("refunds",), {"amount_refunded": 1}, "refunds"),
        (("refunds", 0, "amount_refunded"), None, "refunds[0].amount_refunded"),
        (("lines", "data", 0, "amount"), "4000", "amount"),
        (("lines", "data", 0, "id"), None, "id"),
        (("lines", "data", 0, "taxes"), {"amount": 1}, "taxes"),
        (("out_of_band_amount",), -1, "out_of_band_amount"),
    ],
)
def test_invalid_credit_note_fields(credit_note, path, value, field_name):
    target = credit_note
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(PermanentError) as exc_info:
        parse_credit_note(credit_note)
    assert f"'{field_name}'" in exc_info.value.message


def test_credit_note_type_must_agree_with_split(credit_note):
    credit_note["type"] = "pre_payment"
    with pytest.raises(PermanentError, match="contradicts"):
        parse_credit_note(credit_note)


def test_refunds_exceeding_the_credit_note_are_refused(credit_note):
    credit_note["refunds"][0]["amount_refunded"] = 4_001
    with pytest.raises(PermanentError, match="exceed") as exc_info:
        parse_credit_note(credit_note)
    assert exc_info.value.code == "inconsistent_amounts"


@pytest.fixture
def charge():
    return em.make_charge(_paid_invoice(), rng=random.Random(30))


@pytest.mark.parametrize("field_name", ["id", "amount", "currency", "created"])
def test_missing_required_charge_field(charge, field_name):
    charge[field_name] = None
    with pytest.raises(PermanentError) as exc_info:
        parse_charge(charge)
    assert f"'{field_name}'" in exc_info.value.message


@pytest.mark.parametrize("field_name", ["amount", "currency", "fee"])
def test_missing_balance_transaction_field(charge, field_name):
    del charge["balance_transaction"][field_name]
    with pytest.raises(PermanentError, match=rf"'balance_transaction\.{field_name}'"):
        parse_charge(charge)


@pytest.mark.parametrize(
    ("field_name", "value"),
    [("amount", 100.5), ("amount", -1), ("created", "today"), ("amount_captured", 1.0)],
)
def test_invalid_charge_field(charge, field_name, value):
    charge[field_name] = value
    with pytest.raises(PermanentError, match=f"'{field_name}'"):
        parse_charge(charge)


def test_float_fee_is_refused(charge):
    charge["balance_transaction"]["fee"] = 3.2
    with pytest.raises(PermanentError, match=r"'balance_transaction\.fee'"):
        parse_charge(charge)


@pytest.mark.parametrize("field_name", ["id", "amount", "currency", "created"])
def test_missing_required_refund_field(charge, field_name):
    refund = em.make_refund(charge, 100)
    del refund[field_name]
    with pytest.raises(PermanentError, match=f"'{field_name}'"):
        parse_refund(refund)


@pytest.mark.parametrize("field_name", ["id", "invoice", "currency", "amount_requested"])
def test_missing_required_invoice_payment_field(load_fixture, field_name):
    raw = load_fixture("current_invoice_payment_docs.json")
    del raw[field_name]
    with pytest.raises(PermanentError, match=f"'{field_name}'"):
        parse_invoice_payment(raw)


def test_parsers_do_not_mutate_their_input(load_fixture):
    raw = _consistent_reference_credit_note(load_fixture)
    before = copy.deepcopy(raw)
    parse_credit_note(raw)
    assert raw == before


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=5_000_000),  # invoice line amount
            st.sampled_from([None, ("19", False), ("19", True), ("8.25", False), ("7.7", True)]),
            st.integers(min_value=1, max_value=100),  # percent of the line credited
        ),
        min_size=1,
        max_size=5,
    ),
    paid=st.booleans(),
    pre_basil=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_credit_note_arithmetic_round_trips(lines, paid, pre_basil, seed):
    rng = random.Random(seed)
    specs = []
    for amount, tax, _ in lines:
        spec = {"amount_minor": amount}
        if tax is not None:
            spec["tax"] = {"percentage": tax[0], "inclusive": tax[1]}
        specs.append(spec)
    build = em.make_invoice_pre_basil if pre_basil else em.make_invoice
    invoice = build("cus_P", specs, "usd", status="paid" if paid else "open", rng=rng)
    credited = [max(1, amount * pct // 100) for amount, _, pct in lines]
    raw = em.make_credit_note(invoice, credited, rng=rng)
    cn = parse_credit_note(wire(raw, "credit_note.created"))
    assert cn.total_minor == sum(ln.net_minor + ln.tax_minor for ln in cn.lines)
    assert cn.tax_minor == sum(ln.tax_minor for ln in cn.lines)
    assert cn.subtotal_minor == sum(credited)
    assert cn.timing == ("post_payment" if paid else "pre_payment")
    assert cn.pre_payment_minor + cn.post_payment_minor == cn.total_minor
    assert cn.refunded_minor + cn.credited_to_balance_minor == cn.post_payment_minor
    invoice_lines = {line.source_id: line for line in parse_invoice(invoice).lines}
    for line, amount in zip(cn.lines, credited, strict=True):
        source = invoice_lines[line.invoice_line_ref]
        assert abs(line.tax_minor * source.amount_minor - source.tax_minor * amount) <= (
            source.amount_minor  # pro rata, within half a minor unit per tax
        ) * len(source.taxes)


@settings(max_examples=60, deadline=None)
@given(
    amount=st.integers(min_value=1, max_value=10**9),
    rate=st.decimals(min_value="0.0001", max_value="1000", places=4),
    refund_pct=st.integers(min_value=1, max_value=100),
    currencies=st.sampled_from([("eur", "usd"), ("jpy", "usd"), ("usd", "jpy"), ("kwd", "eur")]),
)
def test_fx_charge_and_refund_round_trip(amount, rate, refund_pct, currencies):
    cur, settle = currencies
    invoice = _paid_invoice(cur, amount)
    charge = em.make_charge(invoice, fee=0, exchange_rate=rate, settlement_currency=settle)
    payment = parse_charge(wire(charge))
    assert payment.settlement_amount_minor == em.convert_minor(amount, cur, rate, settle)
    assert Decimal(payment.exchange_rate) == rate
    refund = parse_refund(wire(em.make_refund(charge, max(1, amount * refund_pct // 100))))
    assert refund.settlement_amount_minor >= 0
    assert refund.settlement_amount_minor <= payment.settlement_amount_minor
