"""payment_to_ledger and refund_to_ledger through signed webhooks, the engine (inline) and the
real NetSuite emulator. Every figure is stated in minor units next to its meaning."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from connectors.stripe import emulator as se
from sync.engine import step_run
from sync.errors import DataDefect, DependencyPending
from sync.journeys.payment import open_balance
from sync.models import (
    AccountingPeriod,
    ExceptionCase,
    FxRate,
    InboundEvent,
    JournalEntry,
    Journey,
    Payment,
    Step,
)
from sync.services.dispatch import inbound_event_dispatch
from sync.services.journeys import journey_replay
from tests.conftest import drain, emulator_records
from tests.factories import link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import invoice_event, post_signed

pytestmark = pytest.mark.django_db
D = dt.date
APR_1, APR_10, APR_12 = D(2026, 4, 1), D(2026, 4, 10), D(2026, 4, 12)


def ts(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def _post_invoice(client, **kw) -> dict:
    """Post an invoice.finalized event, drain, and return the invoice object."""
    event = invoice_event(**kw)
    post_signed(client, event)
    drain()
    return event["data"]["object"]


def _pay(client, invoice: dict, *, link: bool = True, **charge_kw) -> dict:
    """A charge on ``invoice`` (created Apr 10, available Apr 12 unless told), delivered as
    Stripe would: the ``invoice_payment.paid`` link (current shape) and ``charge.succeeded``."""
    charge_kw.setdefault("created", ts(APR_10))
    charge = se.make_charge(invoice, **charge_kw)
    if link:
        post_signed(
            client, se.make_event("invoice_payment.paid", se.make_invoice_payment(invoice, charge))
        )
    post_signed(client, se.make_event("charge.succeeded", charge))
    return charge


def _lines(entry: JournalEntry) -> list[tuple[str, int, int, int, int]]:
    """(account, debit, credit, functional debit, functional credit) per line."""
    return [
        (
            ln.account.number,
            ln.debit_minor,
            ln.credit_minor,
            ln.functional_debit_minor,
            ln.functional_credit_minor,
        )
        for ln in entry.lines.all()
    ]


def _ar(ledger, invoice_id: str) -> tuple[int, int]:
    return open_balance(ledger.entity, invoice_id, ledger.ar.pk)


def _credit(ledger, invoice_id: str) -> tuple[int, int]:
    tx, fn = open_balance(ledger.entity, invoice_id, ledger.accounts["credit"].pk)
    return -tx, -fn


def _release(step: Step, *, waited: float = 60) -> None:
    """Make a waiting step due now, as if it had been waiting ``waited`` seconds."""
    now = timezone.now()
    Step.objects.filter(pk=step.pk).update(
        next_attempt_at=now, started_at=now - dt.timedelta(seconds=waited)
    )


def _record(netsuite: str, external_id: str) -> dict:
    return next(r for r in emulator_records(netsuite) if r["externalId"] == external_id)


# --- payments -----------------------------------------------------------------------------------


def test_full_usd_payment_books_cash_and_fee_and_clears_the_invoice_ar(client, ledger, netsuite):
    # Invoice 1,000.00 + 8% tax = 1,080.00 USD. Stripe keeps 2.9% + 0.30 = 31.32 + 0.30 = 31.62.
    invoice = _post_invoice(client, invoice_id="in_full", amount=1000_00)
    _pay(client, invoice, charge_id="ch_full")
    drain()

    journey = Journey.objects.get(journey_type="payment_to_ledger", business_key="ch_full")
    assert journey.state == Journey.State.COMPLETED
    assert journey.legal_entity == ledger.entity
    entry = JournalEntry.objects.get(journey=journey)
    assert entry.kind == JournalEntry.Kind.PAYMENT and entry.state == JournalEntry.State.POSTED
    assert entry.external_id == "RCT-STRIPE-ch_full" and entry.document_ref == "in_full"
    assert entry.posting_date == APR_12  # the balance transaction's available_on
    # Dr cash 1,048.38 + Dr fees 31.62 / Cr AR 1,080.00 (one currency: functional = same)
    assert _lines(entry) == [
        ("1100", 1048_38, 0, 1048_38, 0),
        ("6100", 31_62, 0, 31_62, 0),
        ("1200", 0, 1080_00, 0, 1080_00),
    ]
    assert _ar(ledger, "in_full") == (0, 0)  # the invoice's AR nets to zero
    payment = Payment.objects.get(source_id="ch_full")
    assert (payment.kind, payment.invoice_ref, payment.amount_minor, payment.fee_minor) == (
        "payment",
        "in_full",
        1080_00,
        31_62,
    )
    record = _record(netsuite, "RCT-STRIPE-ch_full")
    assert str(record["id"]) == entry.erp_document_id and record["write_count"] == 1
    assert [(i["account"], i["debit"] or 0, i["credit"] or 0) for i in record["lines"]] == [
        ("1100", Decimal("1048.38"), 0),
        ("6100", Decimal("31.62"), 0),
        ("1200", 0, Decimal("1080.00")),
    ]
    # The link came from the invoice_payment.paid event the inbox kept.
    assert InboundEvent.objects.get(event_type="invoice_payment.paid").state == "applied"


def test_partial_then_final_payment_leaves_then_clears_open_ar(client, ledger, netsuite):
    # An invoice in the older API shape: its charges name it in ``charge.invoice``.
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
        invoice_id="in_part",
        created=ts(APR_1),
        finalized_at=ts(APR_1),
    )
    post_signed(
        client,
        se.make_event("invoice.finalized", invoice, api_version=se.PRE_BASIL_API_VERSION),
    )
    drain()
    first = _pay(client, invoice, link=False, amount=500_00, charge_id="ch_p1")
    drain()
    assert first["invoice"] == "in_part"
    e1 = JournalEntry.objects.get(external_id="RCT-STRIPE-ch_p1")
    # 500.00 paid, fee 14.50 + 0.30 = 14.80: Dr cash 485.20 + Dr fees 14.80 / Cr AR 500.00
    assert _lines(e1) == [
        ("1100", 485_20, 0, 485_20, 0),
        ("6100", 14_80, 0, 14_80, 0),
        ("1200", 0, 500_00, 0, 500_00),
    ]
    assert _ar(ledger, "in_part") == (580_00, 580_00)  # 1,080.00 - 500.00 still open

    _pay(client, invoice, link=False, amount=580_00, charge_id="ch_p2", created=ts(APR_12))
    drain()
    e2 = JournalEntry.objects.get(external_id="RCT-STRIPE-ch_p2")
    # 580.00 paid, fee 16.82 + 0.30 = 17.12: Dr cash 562.88 + Dr fees 17.12 / Cr AR 580.00
    assert _lines(e2) == [
        ("1100", 562_88, 0, 562_88, 0),
        ("6100", 17_12, 0, 17_12, 0),
        ("1200", 0, 580_00, 0, 580_00),
    ]
    assert _ar(ledger, "in_part") == (0, 0)
    assert {r["externalId"] for r in emulator_records(netsuite)} >= {
        "RCT-STRIPE-ch_p1",
        "RCT-STRIPE-ch_p2",
    }


def test_overpayment_goes_to_customer_credit(client, ledger, netsuite):
    # 1,100.00 paid on a 1,080.00 invoice; linked through our metadata.invoice_id convention.
    invoice = _post_invoice(client, invoice_id="in_over", amount=1000_00)
    _pay(
        client,
        invoice,
        link=False,
        amount=1100_00,
        charge_id="ch_over",
        metadata={"invoice_id": "in_over"},
    )
    drain()
    entry = JournalEntry.objects.get(external_id="RCT-STRIPE-ch_over")
    # fee 31.90 + 0.30 = 32.20: Dr cash 1,067.80 + Dr fees 32.20 / Cr AR 1,080.00 + Cr credit 20.00
    assert _lines(entry) == [
        ("1100", 1067_80, 0, 1067_80, 0),
        ("6100", 32_20, 0, 32_20, 0),
        ("1200", 0, 1080_00, 0, 1080_00),
        ("2300", 0, 20_00, 0, 20_00),
    ]
    assert _ar(ledger, "in_over") == (0, 0)
    assert _credit(ledger, "in_over") == (20_00, 20_00)
    step = Step.objects.get(journey__business_key="ch_over", name="build_entry")
    assert step.response_snapshot["applied_minor"] == 1080_00
    assert step.response_snapshot["overpaid_minor"] == 20_00


@pytest.fixture
def eur_invoice(client, ledger, netsuite):
    """The worked example: EUR 1,000.00 (no tax) for the USD entity, invoiced Apr 1 at 1.0800
    -> AR 1,000.00 EUR carried at 1,080.00 USD."""
    FxRate.objects.create(
        rate_date=APR_1, base_currency="EUR", quote_currency="USD", rate=Decimal("1.0800")
    )
    invoice = _post_invoice(
        client, invoice_id="in_eur", amount=1000_00, currency="eur", tax_rate=None
    )
    assert _ar(ledger, "in_eur") == (1000_00, 1080_00)
    return invoice


@pytest.mark.parametrize("settled_in", ["usd", "eur"])
def test_worked_example_eur_invoice_paid_at_a_higher_rate_books_fx_gain(
    client, ledger, netsuite, eur_invoice, settled_in
):
    """Paid Apr 10 at 1.1000 with a 29.30 EUR fee.

    * settled in USD: Stripe converts at its exchange_rate 1.1 (1,100.00 USD) and keeps its fee
      in USD, 32.23; the fee is 32.23 / 1.1 = 29.30 EUR in the entry's currency.
    * settled in EUR: Stripe keeps 29.30 EUR; cash is valued at the FxRate of Apr 10, 1.1000.

    Either way: Dr cash 970.70 EUR = 1,067.77 USD, Dr fees 29.30 EUR = 32.23 USD
    (1,100.00 USD in), Cr AR 1,000.00 EUR = 1,080.00 USD (its carrying amount),
    Cr FX gain 20.00 USD (1,100.00 - 1,080.00). Both sides 1,100.00 USD.
    """
    if settled_in == "usd":
        kw = {"fee": 32_23, "exchange_rate": "1.1", "settlement_currency": "usd"}
    else:
        kw = {"fee": 29_30}
        FxRate.objects.create(
            rate_date=APR_10, base_currency="EUR", quote_currency="USD", rate=Decimal("1.1000")
        )
    _pay(client, eur_invoice, charge_id="ch_eur", available_on=ts(APR_10), **kw)
    drain()

    entry = JournalEntry.objects.get(external_id="RCT-STRIPE-ch_eur")
    assert entry.state == JournalEntry.State.POSTED
    assert (entry.currency, entry.functional_currency) == ("EUR", "USD")
    assert entry.fx_rate == Decimal("1.1")
    assert entry.posting_date == APR_10
    assert _lines(entry) == [
        ("1100", 970_70, 0, 1067_77, 0),
        ("6100", 29_30, 0, 32_23, 0),
        ("1200", 0, 1000_00, 0, 1080_00),
        ("7900", 0, 0, 0, 20_00),
    ]
    assert sum(ln[3] for ln in _lines(entry)) == sum(ln[4] for ln in _lines(entry)) == 1100_00
    assert _ar(ledger, "in_eur") == (0, 0)  # relieved in both currencies
    assert Payment.objects.get(source_id="ch_eur").fee_minor == 29_30
    assert entry.rule_versions["settlement_rate_source"] == (
        "stripe exchange_rate" if settled_in == "usd" else "fx rate table"
    )
    # The ERP path carries the transaction currency only: the FX line has no EUR amount.
    record = _record(netsuite, "RCT-STRIPE-ch_eur")
    assert [(i["account"], i["debit"] or 0, i["credit"] or 0) for i in record["lines"]] == [
        ("1100", Decimal("970.70"), 0),
        ("6100", Decimal("29.30"), 0),
        ("1200", 0, Decimal("1000.00")),
    ]


def test_fx_payment_settled_in_usd_takes_stripes_own_usd_figures(
    client, ledger, netsuite, eur_invoice
):
    """EUR 1,000.06 paid at Stripe's 1.0837 on the 1,000.00 EUR invoice (carried 1,080.00 USD).

    Stripe settles 1,000.06 * 1.0837 = 1,083.7650 -> 1,083.77 USD and keeps 2.9% + 0.30 =
    31.73 USD (31.73 / 1.0837 = 29.279 -> 29.28 EUR). Converting the 970.78 EUR of cash at
    1.0837 would give 1,052.03 USD, but Stripe's net is 1,052.04: the cash line takes Stripe's
    figure, so the clearing account reconciles to Stripe. AR 1,000.00 EUR is relieved at
    1,080.00 USD; its value at 1.0837 is 1,083.70, so FX gain 3.70; the 0.06 EUR overpaid is
    customer credit at 0.07 USD (0.0650 rounded). Both sides 1,083.77 USD, no rounding line."""
    _pay(
        client,
        eur_invoice,
        charge_id="ch_cent",
        amount=1000_06,
        exchange_rate="1.0837",
        settlement_currency="usd",
        available_on=ts(APR_10),
    )
    drain()
    entry = JournalEntry.objects.get(external_id="RCT-STRIPE-ch_cent")
    lines = _lines(entry)
    # Stripe: 1,000.06 EUR * 1.0837 = 1,083.7650... -> 1,083.77 USD; fee 2.9% + 0.30 = 31.73
    assert lines[0] == ("1100", 970_78, 0, 1052_04, 0)  # 1,083.77 - 31.73
    assert lines[1] == ("6100", 29_28, 0, 31_73, 0)
    assert lines[2] == ("1200", 0, 1000_00, 0, 1080_00)
    assert lines[3] == ("2300", 0, 6, 0, 7)
    assert lines[4] == ("7900", 0, 0, 0, 3_70)
    assert len(lines) == 5
    assert sum(ln[3] for ln in lines) == sum(ln[4] for ln in lines) == 1083_77


def test_missing_payment_date_rate_is_a_missing_fx_rate(client, ledger, netsuite, eur_invoice):
    _pay(client, eur_invoice, charge_id="ch_norate", fee=29_30, available_on=ts(APR_10))
    drain()
    case = ExceptionCase.objects.get(journey__business_key="ch_norate")
    assert case.category == ExceptionCase.Category.MISSING_FX_RATE
    assert "EUR/USD" in case.summary and "2026-04-10" in case.summary
    assert not JournalEntry.objects.filter(external_id="RCT-STRIPE-ch_norate").exists()


def test_payment_with_no_known_invoice_waits_then_becomes_payment_not_linked(
    client, ledger, netsuite, settings, finance_ops
):
    settings.RCT = {**settings.RCT, "DEPENDENCY_WAIT_SECONDS": 600}
    invoice = _post_invoice(client, invoice_id="in_lost", amount=1000_00)
    charge = _pay(client, invoice, link=False, charge_id="ch_lost")
    drain()
    step = Step.objects.get(journey__business_key="ch_lost", name="validate")
    # Its invoice_payment event may still be coming: it waits, spending no attempt.
    assert (step.state, step.attempts) == (Step.State.PENDING, 0)
    assert step.journey.state == Journey.State.WAITING
    assert "an exception if still missing at" in step.error_message
    assert not ExceptionCase.objects.exists()
    assert Payment.objects.get(source_id="ch_lost").invoice_ref == ""
    _release(step)
    drain()
    assert Step.objects.get(pk=step.pk).state == Step.State.PENDING  # 60 s of 600: still waits
    _release(step, waited=601)
    drain()
    case = ExceptionCase.objects.get(journey__business_key="ch_lost")
    assert case.category == ExceptionCase.Category.PAYMENT_NOT_LINKED
    assert "ch_lost" in case.summary and "names no invoice" in case.summary
    assert Journey.objects.get(business_key="ch_lost").state == Journey.State.EXCEPTION

    # The link arrives late; a replay posts the payment once.
    post_signed(
        client, se.make_event("invoice_payment.paid", se.make_invoice_payment(invoice, charge))
    )
    journey_replay(journey_id=case.journey_id, actor=finance_ops, reason="invoice payment arrived")
    drain()
    case.refresh_from_db()
    assert case.state == ExceptionCase.State.RESOLVED
    assert JournalEntry.objects.get(external_id="RCT-STRIPE-ch_lost").state == "posted"
    assert _ar(ledger, "in_lost") == (0, 0)


def test_payment_before_its_invoice_waits_for_the_invoice_entry(client, ledger, netsuite):
    event = invoice_event(invoice_id="in_late", amount=1000_00)
    invoice = event["data"]["object"]
    _pay(client, invoice, charge_id="ch_early")
    drain()
    step = Step.objects.get(journey__business_key="ch_early", name="validate")
    assert step.state == Step.State.PENDING and step.journey.state == Journey.State.WAITING
    assert "in_late, which is not in the ledger yet" in step.error_message
    post_signed(client, event)
    drain()
    _release(step)
    drain()
    assert Journey.objects.get(business_key="ch_early").state == Journey.State.COMPLETED
    assert _ar(ledger, "in_late") == (0, 0)


def test_same_charge_event_three_times_posts_once(client, ledger, netsuite):
    invoice = _post_invoice(client, invoice_id="in_dup", amount=1000_00)
    charge = se.make_charge(invoice, charge_id="ch_dup", created=ts(APR_10))
    post_signed(
        client, se.make_event("invoice_payment.paid", se.make_invoice_payment(invoice, charge))
    )
    event = se.make_event("charge.succeeded", charge)
    answers = [post_signed(client, event).json()["duplicate"] for _ in range(3)]
    drain()
    assert answers == [False, True, True]
    assert Journey.objects.filter(business_key="ch_dup").count() == 1
    assert JournalEntry.objects.filter(kind=JournalEntry.Kind.PAYMENT).count() == 1
    assert _record(netsuite, "RCT-STRIPE-ch_dup")["write_count"] == 1
    assert _ar(ledger, "in_dup") == (0, 0)


def test_payment_in_a_closed_month_posts_in_the_first_open_period(client, ledger, netsuite):
    invoice = _post_invoice(client, invoice_id="in_closed", amount=1000_00)
    AccountingPeriod.objects.create(
        legal_entity=ledger.entity, period=APR_1, state="closed", closed_at=timezone.now()
    )
    _pay(client, invoice, charge_id="ch_closed")
    drain()
    entry = JournalEntry.objects.get(external_id="RCT-STRIPE-ch_closed")
    assert entry.posting_date == D(2026, 5, 1)


def test_missing_entity_accounts_names_what_to_set(client, netsuite):
    ledger = make_ledger()
    map_product("price_platform")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    invoice = _post_invoice(client, invoice_id="in_noacc", amount=1000_00)
    _pay(client, invoice, charge_id="ch_noacc")
    drain()
    case = ExceptionCase.objects.get(journey__business_key="ch_noacc")
    assert case.category == ExceptionCase.Category.MISSING_POSTING_RULE
    assert "us-inc has no entity accounts" in case.summary
    assert "processor fee" in case.summary


# --- refunds ------------------------------------------------------------------------------------


@pytest.fixture
def paid_invoice(client, ledger, netsuite):
    """1,080.00 USD invoice (1,000.00 + 8%) paid in full by ch_paid."""
    invoice = _post_invoice(client, invoice_id="in_paid", amount=1000_00)
    charge = _pay(client, invoice, charge_id="ch_paid")
    drain()
    assert _ar(ledger, "in_paid") == (0, 0)
    return invoice, charge


def test_refund_after_a_post_payment_credit_note_pays_out_the_customer_credit(
    client, ledger, netsuite, paid_invoice
):
    invoice, charge = paid_invoice
    # Credit 100.00 + 8% = 108.00 after payment, refunded by re_cn.
    refund = se.make_refund(charge, 108_00, refund_id="re_cn", created=ts(D(2026, 4, 20)))
    note = se.make_credit_note(
        invoice, [100_00], timing="post_payment", refund=refund, credit_note_id="cn_ref"
    )
    post_signed(client, se.make_event("credit_note.created", note))
    drain()
    assert _credit(ledger, "in_paid") == (108_00, 108_00)  # owed to the customer

    post_signed(client, se.make_event("refund.created", refund))
    drain()
    entry = JournalEntry.objects.get(external_id="RCT-STRIPE-re_cn")
    assert entry.kind == JournalEntry.Kind.REFUND and entry.state == JournalEntry.State.POSTED
    assert entry.document_ref == "in_paid" and entry.posting_date == D(2026, 4, 20)
    # Dr customer credit 108.00 / Cr cash 108.00
    assert _lines(entry) == [
        ("2300", 108_00, 0, 108_00, 0),
        ("1100", 0, 108_00, 0, 108_00),
    ]
    assert _credit(ledger, "in_paid") == (0, 0)
    assert _ar(ledger, "in_paid") == (0, 0)
    refund_row = Payment.objects.get(source_id="re_cn")
    assert (refund_row.kind, refund_row.invoice_ref, refund_row.amount_minor) == (
        "refund",
        "in_paid",
        108_00,
    )
    assert _record(netsuite, "RCT-STRIPE-re_cn")["write_count"] == 1


def test_refund_seen_before_the_credit_note_naming_it_waits_for_it(
    client, ledger, netsuite, paid_invoice
):
    invoice, charge = paid_invoice
    refund = se.make_refund(charge, 108_00, refund_id="re_first", created=ts(D(2026, 4, 20)))
    note = se.make_credit_note(
        invoice, [100_00], timing="post_payment", refund=refund, credit_note_id="cn_second"
    )
    post_signed(client, se.make_event("refund.created", refund))
    post_signed(client, se.make_event("credit_note.created", note))
    for event_id in InboundEvent.objects.filter(state="received").values_list("pk", flat=True):
        inbound_event_dispatch(event_id=event_id)
    validate = Step.objects.get(journey__business_key="re_first", name="validate")
    assert step_run(validate.pk) == "waiting"  # before the credit note's journey has run
    validate.refresh_from_db()
    assert "pays out credit note cn_second" in validate.error_message
    drain()  # the credit note posts
    _release(validate)
    drain()
    entry = JournalEntry.objects.get(external_id="RCT-STRIPE-re_first")
    assert [ln[:3] for ln in _lines(entry)] == [("2300", 108_00, 0), ("1100", 0, 108_00)]
    assert _credit(ledger, "in_paid") == (0, 0)


def test_refund_with_no_credit_balance_waits_once_then_reopens_ar(
    client, ledger, netsuite, paid_invoice
):
    _, charge = paid_invoice
    refund = se.make_refund(charge, 50_00, refund_id="re_ar", created=ts(D(2026, 4, 20)))
    post_signed(client, se.make_event("refund.created", refund))
    drain()
    validate = Step.objects.get(journey__business_key="re_ar", name="validate")
    assert validate.state == Step.State.PENDING  # a credit note for it may still be coming
    assert validate.next_attempt_at >= timezone.now() + dt.timedelta(seconds=25)
    _release(validate, waited=10)
    drain()
    validate.refresh_from_db()
    assert validate.state == Step.State.PENDING  # 10 s of its 30 s grace: still waits
    _release(validate)
    drain()
    entry = JournalEntry.objects.get(external_id="RCT-STRIPE-re_ar")
    # No credit note: Dr AR 50.00 / Cr cash 50.00; the invoice is owed 50.00 again.
    assert _lines(entry) == [("1200", 50_00, 0, 50_00, 0), ("1100", 0, 50_00, 0, 50_00)]
    assert _ar(ledger, "in_paid") == (50_00, 50_00)


def test_refund_of_an_fx_payment_reopens_ar_at_the_invoice_rate_with_fx_loss(
    client, ledger, netsuite, eur_invoice
):
    charge = _pay(
        client,
        eur_invoice,
        charge_id="ch_eur_r",
        fee=32_23,
        exchange_rate="1.1",
        settlement_currency="usd",
        available_on=ts(APR_10),
    )
    drain()
    refund = se.make_refund(charge, 100_00, refund_id="re_eur", created=ts(D(2026, 4, 20)))
    post_signed(client, se.make_event("refund.created", refund))
    drain()
    _release(Step.objects.get(journey__business_key="re_eur", name="validate"))
    drain()
    entry = JournalEntry.objects.get(external_id="RCT-STRIPE-re_eur")
    # 100.00 EUR back at Stripe's 1.1 = 110.00 USD out; AR re-opened at its 1.08 carrying rate
    # (108.00 USD): Dr AR 100.00 EUR / 108.00 USD, Dr FX loss 2.00 USD / Cr cash 110.00 USD.
    assert _lines(entry) == [
        ("1200", 100_00, 0, 108_00, 0),
        ("1100", 0, 100_00, 0, 110_00),
        ("7900", 0, 0, 2_00, 0),
    ]
    assert _ar(ledger, "in_eur") == (100_00, 108_00)


def test_refund_larger_than_the_credit_balance_draws_it_then_reopens_ar(client, ledger, netsuite):
    # 1,100.00 paid on a 1,080.00 invoice leaves 20.00 of customer credit; 50.00 is refunded.
    invoice = _post_invoice(client, invoice_id="in_split", amount=1000_00)
    charge = _pay(client, invoice, amount=1100_00, charge_id="ch_split")
    drain()
    assert _credit(ledger, "in_split") == (20_00, 20_00)
    refund = se.make_refund(charge, 50_00, refund_id="re_split", created=ts(D(2026, 4, 20)))
    post_signed(client, se.make_event("refund.created", refund))
    drain()
    _release(Step.objects.get(journey__business_key="re_split", name="validate"))
    drain()
    entry = JournalEntry.objects.get(external_id="RCT-STRIPE-re_split")
    # Dr customer credit 20.00 / Cr cash 20.00, then Dr AR 30.00 / Cr cash 30.00
    assert [ln[:3] for ln in _lines(entry)] == [
        ("2300", 20_00, 0),
        ("1100", 0, 20_00),
        ("1200", 30_00, 0),
        ("1100", 0, 30_00),
    ]
    assert _credit(ledger, "in_split") == (0, 0)
    assert _ar(ledger, "in_split") == (30_00, 30_00)
    snapshot = Step.objects.get(journey__business_key="re_split", name="build_entry")
    assert snapshot.response_snapshot["from_customer_credit_minor"] == 20_00
    assert snapshot.response_snapshot["from_ar_minor"] == 30_00


def test_two_payments_of_one_invoice_in_one_batch_relieve_its_ar_in_turn(client, ledger, netsuite):
    """The claim keeps one journey per invoice in flight, but after a crash or a replay two
    payments of one invoice can reach the build step in one batch: the second is built in a
    later round, after the first's entry exists, so AR is never relieved twice."""
    from sync.journeys import StepContext
    from sync.journeys.payment import build_payment_entries, validate_payments

    invoice = se.make_invoice_pre_basil(
        "cus_acme",
        [se.LineSpec(amount_minor=1000_00, price_id="price_platform", product_id="prod_platform")],
        invoice_id="in_both",
        created=ts(APR_1),
        finalized_at=ts(APR_1),
    )
    post_signed(
        client, se.make_event("invoice.finalized", invoice, api_version=se.PRE_BASIL_API_VERSION)
    )
    drain()
    for charge_id, amount in (("ch_b1", 600_00), ("ch_b2", 600_00)):
        _pay(client, invoice, link=False, amount=amount, charge_id=charge_id)
    for event in InboundEvent.objects.filter(state=InboundEvent.State.RECEIVED):
        inbound_event_dispatch(event_id=event.pk)
    journeys = list(Journey.objects.filter(journey_type="payment_to_ledger").order_by("pk"))
    validated = validate_payments(
        [StepContext(journey=j, step=j.steps.get(name="validate"), data={}) for j in journeys]
    )
    ctxs = [
        StepContext(journey=j, step=j.steps.get(name="build_entry"), data=data)
        for j, data in zip(journeys, validated, strict=True)
    ]
    first, second = build_payment_entries(ctxs)
    assert (first["open_ar_before_minor"], first["applied_minor"]) == (1000_00, 600_00)
    assert (second["open_ar_before_minor"], second["applied_minor"]) == (400_00, 400_00)
    assert second["overpaid_minor"] == 200_00
    assert _ar(ledger, "in_both") == (0, 0)


def test_refunds_in_one_batch_each_get_their_own_outcome(client, ledger, netsuite):
    """validate and build_entry through their batch forms. Two refunds of two charges on one
    invoice that carries 120.00 of customer credit: the first draws 100.00 of it, the second
    (built in the next round) the 20.00 left and 80.00 from AR. Beside them, in the same
    batch: a refund whose payment is not in the ledger waits, one that returns Stripe's fee
    stops alone, a failed one is skipped, and one a credit note names waits for the note."""
    from sync.journeys import StepContext
    from sync.journeys.payment import build_refund_entries, validate_refunds

    both = _post_invoice(client, invoice_id="in_two", amount=1000_00)  # 1,080.00
    ch_a = _pay(client, both, amount=600_00, charge_id="ch_two_a")
    ch_b = _pay(client, both, amount=600_00, charge_id="ch_two_b")
    noted = _post_invoice(client, invoice_id="in_noted", amount=1000_00)
    ch_n = _pay(client, noted, charge_id="ch_noted")
    drain()
    assert _credit(ledger, "in_two") == (120_00, 120_00)
    absent = invoice_event(invoice_id="in_absent")["data"]["object"]  # never delivered
    apr_20 = ts(D(2026, 4, 20))
    re_note = se.make_refund(ch_n, 108_00, refund_id="re_b_note", created=apr_20)
    refunds = [
        se.make_refund(ch_a, 100_00, refund_id="re_b_a", created=apr_20),
        se.make_refund(ch_b, 100_00, refund_id="re_b_b", created=apr_20),
        se.make_refund(se.make_charge(absent, charge_id="ch_absent"), 10_00, refund_id="re_b_wait"),
        se.make_refund(ch_a, 10_00, fee_refunded=30, refund_id="re_b_fee", created=apr_20),
        se.make_refund(ch_b, 10_00, status="failed", refund_id="re_b_failed", created=apr_20),
        re_note,
    ]
    note = se.make_credit_note(
        noted, [100_00], timing="post_payment", refund=re_note, credit_note_id="cn_b_note"
    )
    post_signed(client, se.make_event("credit_note.created", note))
    for refund in refunds:
        post_signed(client, se.make_event("refund.created", refund))
    for event in InboundEvent.objects.filter(state=InboundEvent.State.RECEIVED):
        inbound_event_dispatch(event_id=event.pk)
    journeys = [
        Journey.objects.get(journey_type="refund_to_ledger", business_key=r["id"]) for r in refunds
    ]
    validated = validate_refunds(
        [StepContext(journey=j, step=j.steps.get(name="validate"), data={}) for j in journeys]
    )
    a, b, wait, fee, failed, noted_out = validated
    assert a["invoice_ref"] == b["invoice_ref"] == "in_two"
    assert isinstance(wait, DependencyPending) and "ch_absent" in str(wait)
    assert isinstance(fee, DataDefect) and "of its fee with refund re_b_fee" in str(fee)
    assert failed == {"skipped": "refund re_b_failed is 'failed'; no money moved"}
    assert isinstance(noted_out, DependencyPending) and "cn_b_note" in str(noted_out)
    assert Journey.objects.get(business_key="re_b_a").legal_entity == ledger.entity
    assert Payment.objects.get(source_id="re_b_a").invoice_ref == "in_two"

    ctxs = [
        StepContext(journey=j, step=j.steps.get(name="build_entry"), data=data)
        for j, data in zip(journeys, validated, strict=True)
        if isinstance(data, dict) and "refund_id" in data
    ]
    first, second = build_refund_entries(ctxs)
    assert (first["from_customer_credit_minor"], first["from_ar_minor"]) == (100_00, 0)
    assert (second["from_customer_credit_minor"], second["from_ar_minor"]) == (20_00, 80_00)
    assert [ln[:3] for ln in _lines(JournalEntry.objects.get(pk=second["entry_id"]))] == [
        ("2300", 20_00, 0),
        ("1100", 0, 20_00),
        ("1200", 80_00, 0),
        ("1100", 0, 80_00),
    ]
    assert _credit(ledger, "in_two") == (0, 0)
    assert _ar(ledger, "in_two") == (80_00, 80_00)
    again = build_refund_entries(ctxs)  # a re-run finds the entries; nothing twice
    assert [o["entry_id"] for o in again] == [first["entry_id"], second["entry_id"]]
    assert JournalEntry.objects.filter(kind=JournalEntry.Kind.REFUND).count() == 2
