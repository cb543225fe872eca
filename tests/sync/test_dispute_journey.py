"""dispute_opened and dispute_closed through signed webhooks, the engine (inline) and the real
NetSuite emulator. Figures in minor units, next to what they mean.

The set-up: invoice in_dp of 1,000.00 + 8% tax = 1,080.00 USD (Apr 1), paid in full by ch_dp
(Apr 10). The customer disputes all of it on Apr 20; Stripe withdraws 1,080.00 and a 15.00
dispute fee (available Apr 22).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.stripe import emulator as se
from sync.errors import DomainError
from sync.journeys.payment import open_balance
from sync.models import (
    ExceptionCase,
    FxRate,
    InboundEvent,
    JournalEntry,
    Journey,
    Step,
)
from sync.services.journeys import journey_replay
from tests.conftest import drain, emulator_records
from tests.factories import add_cash_accounts, link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import post_signed
from tests.sync.billing_support import (
    APR_1,
    APR_10,
    APR_20,
    GIVE_UP_AT_ONCE,
    WAITING,
    D,
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
APR_22, APR_30, MAY_2 = D(2026, 4, 22), D(2026, 4, 30), D(2026, 5, 2)


@pytest.fixture
def ledger(db):
    ledger = make_ledger()
    add_cash_accounts(ledger)
    add_dispute_accounts(ledger)
    map_product("price_platform")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger


@pytest.fixture
def paid(client, ledger, netsuite):
    """(invoice, charge): 1,080.00 USD paid in full by ch_dp, posted."""
    invoice = post_invoice(client, invoice_id="in_dp", amount=1000_00)
    charge = pay(client, invoice, charge_id="ch_dp")
    drain()
    assert JournalEntry.objects.get(external_id="RCT-STRIPE-ch_dp").state == "posted"
    return invoice, charge


def _dispute(charge: dict, **kw) -> dict:
    kw.setdefault("dispute_id", "dp_1")
    kw.setdefault("created", ts(APR_20))
    return se.make_dispute(charge, **kw)


def _claim(ledger, invoice_id: str = "in_dp") -> tuple[int, int]:
    """The disputed payments balance the invoice carries (transaction, functional)."""
    return open_balance(ledger.entity, invoice_id, ledger.accounts["disputes"].pk)


# --- opening ------------------------------------------------------------------------------------


def test_dispute_opened_moves_amount_and_fee_out_of_cash(client, ledger, netsuite, paid):
    _, charge = paid
    post_signed(client, se.make_event("charge.dispute.created", _dispute(charge)))
    drain()

    journey = Journey.objects.get(journey_type="dispute_opened")
    assert (journey.state, journey.business_key) == (Journey.State.COMPLETED, "dp_1:opened")
    assert journey.aggregate_key == "stripe:ch_dp" and journey.legal_entity == ledger.entity
    entry = JournalEntry.objects.get(journey=journey)
    assert (entry.kind, entry.state) == (JournalEntry.Kind.DISPUTE, JournalEntry.State.POSTED)
    assert entry.external_id == "RCT-STRIPE-dp_1-OPENED" and entry.document_ref == "in_dp"
    assert entry.posting_date == APR_22  # the withdrawal's available_on
    # Dr disputed payments 1,080.00 + Dr fees 15.00 / Cr cash 1,095.00 (Stripe's net -1,095.00)
    assert lines(entry) == [
        ("1150", 1080_00, 0, 1080_00, 0),
        ("6100", 15_00, 0, 15_00, 0),
        ("1100", 0, 1095_00, 0, 1095_00),
    ]
    assert _claim(ledger) == (1080_00, 1080_00)
    assert open_balance(ledger.entity, "in_dp", ledger.ar.pk) == (0, 0)  # the invoice stays paid
    record, erp = erp_lines(netsuite, "RCT-STRIPE-dp_1-OPENED")
    assert str(record["id"]) == entry.erp_document_id and record["write_count"] == 1
    assert erp == [
        ("1150", Decimal("1080.00"), 0),
        ("6100", Decimal("15.00"), 0),
        ("1100", 0, Decimal("1095.00")),
    ]
    assert entry.rule_versions["dispute_account"] == ledger.accounts["disputes"].pk
    assert journey.context["withdrawal"]["fee_minor"] == 15_00


def test_dispute_before_its_payment_is_posted_waits_for_it(client, ledger, netsuite):
    invoice = post_invoice(client, invoice_id="in_dp", amount=1000_00)
    charge = se.make_charge(invoice, charge_id="ch_dp", created=ts(APR_10))
    post_signed(client, se.make_event("charge.dispute.created", _dispute(charge)))
    drain()
    validate = Step.objects.get(journey__business_key="dp_1:opened", name="validate")
    assert validate.state in WAITING and validate.next_attempt_at is not None
    assert "charge ch_dp, whose payment is not in the ledger yet" in validate.error_message
    assert not JournalEntry.objects.filter(kind=JournalEntry.Kind.DISPUTE).exists()
    assert not ExceptionCase.objects.exists()

    post_signed(
        client, se.make_event("invoice_payment.paid", se.make_invoice_payment(invoice, charge))
    )
    post_signed(client, se.make_event("charge.succeeded", charge))
    drain()
    release(validate)
    drain()
    assert Journey.objects.get(business_key="dp_1:opened").state == Journey.State.COMPLETED
    assert _claim(ledger) == (1080_00, 1080_00)


def test_dispute_waiting_too_long_for_its_payment_becomes_document_not_posted(
    client, ledger, netsuite, settings
):
    settings.RCT = {**settings.RCT, **GIVE_UP_AT_ONCE}
    invoice = post_invoice(client, invoice_id="in_dp", amount=1000_00)
    charge = se.make_charge(invoice, charge_id="ch_never", created=ts(APR_10))
    post_signed(client, se.make_event("charge.dispute.created", _dispute(charge)))
    drain()
    release(Step.objects.get(journey__business_key="dp_1:opened", name="validate"))
    drain()
    case = ExceptionCase.objects.get(journey__business_key="dp_1:opened")
    assert case.category == ExceptionCase.Category.DOCUMENT_NOT_POSTED
    assert "Dispute dp_1 of 1,080.00 USD is on charge ch_never" in case.summary
    assert case.context["charge"] == "ch_never"


def test_missing_dispute_account_is_a_missing_posting_rule_case(client, netsuite):
    ledger = make_ledger()
    add_cash_accounts(ledger)  # cash, fees, FX, credit -- but no disputed payments account
    map_product("price_platform")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    invoice = post_invoice(client, invoice_id="in_dp", amount=1000_00)
    charge = pay(client, invoice, charge_id="ch_dp")
    post_signed(client, se.make_event("charge.dispute.created", _dispute(charge)))
    drain_with_waits()
    case = ExceptionCase.objects.get(journey__business_key="dp_1:opened")
    assert case.category == ExceptionCase.Category.MISSING_POSTING_RULE
    assert case.step.name == "build_entry"
    assert "us-inc's entity accounts name no disputed payments account" in case.summary
    assert case.context["field"] == "dispute_account"
    assert not JournalEntry.objects.filter(kind=JournalEntry.Kind.DISPUTE).exists()
    assert not [r for r in emulator_records(netsuite) if "dp_1" in r["externalId"]]


# --- exactly once -------------------------------------------------------------------------------


def test_each_dispute_event_twice_and_a_replay_post_each_side_once(
    client, ledger, netsuite, paid, finance_ops
):
    _, charge = paid
    dispute = _dispute(charge)
    created = se.make_event("charge.dispute.created", dispute)
    withdrawn = se.make_event("charge.dispute.funds_withdrawn", dispute)
    lost = se.make_event("charge.dispute.closed", se.close_dispute(dispute, "lost"))
    answers = [post_signed(client, e).json()["duplicate"] for e in (created, created, withdrawn)]
    answers += [post_signed(client, e).json()["duplicate"] for e in (lost, lost)]
    drain_with_waits()
    assert answers == [False, True, False, False, True]
    # funds_withdrawn names the same opening: it starts no second journey.
    assert Journey.objects.filter(journey_type="dispute_opened").count() == 1
    reasons = sorted(
        InboundEvent.objects.filter(
            event_type__in=["charge.dispute.created", "charge.dispute.funds_withdrawn"]
        ).values_list("state_reason", flat=True)
    )
    assert reasons[0].endswith("already exists for dp_1:opened")
    assert reasons[1].startswith("started journey")
    assert Journey.objects.filter(journey_type="dispute_closed").count() == 1

    # A person replays the completed close from its build step: refused, nothing re-sent.
    closed = Journey.objects.get(journey_type="dispute_closed")
    assert closed.state == Journey.State.COMPLETED
    with pytest.raises(DomainError, match="post a correction instead"):
        journey_replay(
            journey_id=closed.pk, actor=finance_ops, reason="again", from_step="build_entry"
        )
    # Running the build and post steps again by hand changes nothing either.
    for name in ("build_entry", "post_entry"):
        step = Step.objects.get(journey=closed, name=name)
        Step.objects.filter(pk=step.pk).update(state=Step.State.PENDING)
    Journey.objects.filter(pk=closed.pk).update(state=Journey.State.RUNNING)
    drain_with_waits()
    assert JournalEntry.objects.filter(kind=JournalEntry.Kind.DISPUTE).count() == 1
    assert JournalEntry.objects.filter(kind=JournalEntry.Kind.WRITE_OFF).count() == 1
    ids = [r["externalId"] for r in emulator_records(netsuite)]
    assert ids.count("RCT-STRIPE-dp_1-OPENED") == ids.count("RCT-STRIPE-dp_1-CLOSED") == 1
    assert erp_lines(netsuite, "RCT-STRIPE-dp_1-OPENED")[0]["write_count"] == 1
    assert erp_lines(netsuite, "RCT-STRIPE-dp_1-CLOSED")[0]["write_count"] == 1
    assert _claim(ledger) == (0, 0)


# --- outcomes -----------------------------------------------------------------------------------


def _open_then_close(client, charge, outcome: str, **close_kw) -> JournalEntry:
    dispute = _dispute(charge)
    post_signed(client, se.make_event("charge.dispute.created", dispute))
    drain()
    closed = se.close_dispute(dispute, outcome, closed_at=ts(APR_30), **close_kw)
    post_signed(client, se.make_event("charge.dispute.closed", closed, created=ts(APR_30)))
    drain()
    journey = Journey.objects.get(journey_type="dispute_closed", business_key="dp_1:closed")
    assert journey.state == Journey.State.COMPLETED
    assert journey.context["outcome"] == outcome
    return JournalEntry.objects.get(journey=journey)


def test_won_dispute_returns_the_amount_and_stripe_keeps_the_fee(client, ledger, netsuite, paid):
    _, charge = paid
    entry = _open_then_close(client, charge, "won")
    assert entry.kind == JournalEntry.Kind.DISPUTE and entry.external_id == "RCT-STRIPE-dp_1-CLOSED"
    assert entry.posting_date == MAY_2  # the reinstatement's available_on
    # Dr cash 1,080.00 / Cr disputed payments 1,080.00; the 15.00 fee stays an expense.
    assert lines(entry) == [("1100", 1080_00, 0, 1080_00, 0), ("1150", 0, 1080_00, 0, 1080_00)]
    assert _claim(ledger) == (0, 0)
    fees, _ = open_balance(ledger.entity, "in_dp", ledger.accounts["fees"].pk)
    assert fees == 31_62 + 15_00  # the payment's processing fee + the dispute fee
    _, erp = erp_lines(netsuite, "RCT-STRIPE-dp_1-CLOSED")
    assert erp == [("1100", Decimal("1080.00"), 0), ("1150", 0, Decimal("1080.00"))]


def test_won_dispute_with_the_fee_given_back_credits_processor_fees(client, ledger, netsuite, paid):
    _, charge = paid
    entry = _open_then_close(client, charge, "won", fee_returned=15_00)
    # Stripe's reinstatement: +1,080.00, fee -15.00, net +1,095.00
    assert lines(entry) == [
        ("1100", 1095_00, 0, 1095_00, 0),
        ("6100", 0, 15_00, 0, 15_00),
        ("1150", 0, 1080_00, 0, 1080_00),
    ]
    fees, _ = open_balance(ledger.entity, "in_dp", ledger.accounts["fees"].pk)
    assert fees == 31_62  # only the payment's processing fee is left


def test_lost_dispute_writes_the_claim_off_to_bad_debt(client, ledger, netsuite, paid):
    _, charge = paid
    entry = _open_then_close(client, charge, "lost")
    assert entry.kind == JournalEntry.Kind.WRITE_OFF and entry.posting_date == APR_30
    # Dr bad debt / dispute losses 1,080.00 / Cr disputed payments 1,080.00
    assert lines(entry) == [("6900", 1080_00, 0, 1080_00, 0), ("1150", 0, 1080_00, 0, 1080_00)]
    assert entry.rule_versions["bad_debt_account"] == ledger.accounts["bad_debt"].pk
    assert _claim(ledger) == (0, 0)
    cash, _ = open_balance(ledger.entity, "in_dp", ledger.accounts["cash"].pk)
    assert cash == 1048_38 - 1095_00  # paid in net of fee, then taken back with the dispute fee
    _, erp = erp_lines(netsuite, "RCT-STRIPE-dp_1-CLOSED")
    assert erp == [("6900", Decimal("1080.00"), 0), ("1150", 0, Decimal("1080.00"))]


def test_lost_dispute_without_a_bad_debt_account_names_the_account_to_set(
    client, ledger, netsuite, paid
):
    _, charge = paid
    ledger.entity.ledger_accounts.__class__.objects.filter(legal_entity=ledger.entity).update(
        bad_debt_account=None
    )
    dispute = _dispute(charge)
    post_signed(client, se.make_event("charge.dispute.created", dispute))
    post_signed(client, se.make_event("charge.dispute.closed", se.close_dispute(dispute, "lost")))
    drain_with_waits()
    case = ExceptionCase.objects.get(journey__business_key="dp_1:closed")
    assert case.category == ExceptionCase.Category.MISSING_POSTING_RULE
    assert "name no bad debt account" in case.summary and "Dispute dp_1 (lost)" in case.summary
    assert _claim(ledger) == (1080_00, 1080_00)  # the opening posted; the claim stays open


def test_close_that_arrives_first_starts_the_opening_from_its_own_payload(
    client, ledger, netsuite, paid
):
    _, charge = paid
    dispute = _dispute(charge)
    post_signed(client, se.make_event("charge.dispute.closed", se.close_dispute(dispute, "lost")))
    drain()
    opened = Journey.objects.get(journey_type="dispute_opened", business_key="dp_1:opened")
    assert opened.state == Journey.State.COMPLETED
    assert opened.source_event.event_type == "charge.dispute.closed"
    close_validate = Step.objects.get(journey__business_key="dp_1:closed", name="validate")
    assert close_validate.state in WAITING  # waited while the opening posted
    release(close_validate)
    drain()
    assert Journey.objects.get(business_key="dp_1:closed").state == Journey.State.COMPLETED
    assert _claim(ledger) == (0, 0)
    # The created event arriving late changes nothing.
    post_signed(client, se.make_event("charge.dispute.created", dispute))
    drain()
    assert JournalEntry.objects.filter(external_id__startswith="RCT-STRIPE-dp_1").count() == 2


def test_inquiry_moves_no_funds_and_ends_skipped_with_the_reason(client, ledger, netsuite, paid):
    _, charge = paid
    inquiry = _dispute(charge, status="warning_needs_response")
    assert inquiry["balance_transactions"] == []
    post_signed(client, se.make_event("charge.dispute.created", inquiry))
    post_signed(
        client,
        se.make_event("charge.dispute.closed", se.close_dispute(inquiry, "warning_closed")),
    )
    drain()
    opened = Journey.objects.get(journey_type="dispute_opened")
    closed = Journey.objects.get(journey_type="dispute_closed")
    assert (opened.business_key, opened.state) == ("dp_1:inquiry", Journey.State.SKIPPED)
    assert "is an inquiry (warning_needs_response)" in opened.context["skipped"]
    assert closed.state == Journey.State.SKIPPED
    assert "closed as warning_closed; no funds moved" in closed.context["skipped"]
    assert not JournalEntry.objects.filter(external_id__contains="dp_1").exists()
    assert not ExceptionCase.objects.exists()


# --- foreign currency ---------------------------------------------------------------------------


def test_eur_dispute_won_at_a_lower_rate_books_the_fx_loss_on_the_claim(client, ledger, netsuite):
    """EUR 1,000.00 invoice (no tax) for the USD entity at 1.08, paid at Stripe's 1.1 and settled
    in USD. Disputed at 1.1: Stripe takes 1,100.00 USD + a 15.00 USD fee (15.00 / 1.1 = 13.64
    EUR). Won at 1.05: 1,050.00 USD comes back, so the claim carried at 1,100.00 USD returns
    50.00 USD less: an FX loss."""
    FxRate.objects.create(
        rate_date=APR_1, base_currency="EUR", quote_currency="USD", rate=Decimal("1.0800")
    )
    invoice = post_invoice(
        client, invoice_id="in_eur", amount=1000_00, currency="eur", tax_rate=None
    )
    charge = pay(
        client,
        invoice,
        charge_id="ch_eur",
        fee=32_23,
        exchange_rate="1.1",
        settlement_currency="usd",
    )
    drain()
    dispute = _dispute(charge)
    post_signed(client, se.make_event("charge.dispute.created", dispute))
    drain()
    opened = JournalEntry.objects.get(external_id="RCT-STRIPE-dp_1-OPENED")
    assert (opened.currency, opened.fx_rate) == ("EUR", Decimal("1.1"))
    assert lines(opened) == [
        ("1150", 1000_00, 0, 1100_00, 0),
        ("6100", 13_64, 0, 15_00, 0),
        ("1100", 0, 1013_64, 0, 1115_00),
    ]
    won = se.close_dispute(dispute, "won", exchange_rate="1.05", closed_at=ts(APR_30))
    post_signed(client, se.make_event("charge.dispute.closed", won))
    drain()
    closed = JournalEntry.objects.get(external_id="RCT-STRIPE-dp_1-CLOSED")
    assert lines(closed) == [
        ("1100", 1000_00, 0, 1050_00, 0),
        ("1150", 0, 1000_00, 0, 1100_00),
        ("7900", 0, 0, 50_00, 0),
    ]
    assert _claim(ledger, "in_eur") == (0, 0)
    assert closed.rule_versions["settlement_rate_source"] == "stripe exchange_rate"
