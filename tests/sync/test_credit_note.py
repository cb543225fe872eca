"""credit_note.created through the engine: the worked example of a partial credit of a
3-month invoice after its first month was recognized, before and after payment."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.stripe import emulator as se
from connectors.stripe.webhooks import event_parse
from sync.engine import journeys_advance_claimed, steps_claim_batch
from sync.models import ExceptionCase, GLAccount, JournalEntry, Journey, RevenueScheduleLine
from sync.services.dispatch import inbound_events_dispatch_received
from sync.services.inbox import inbound_events_receive_bulk
from sync.services.recognition import recognition_run
from tests.conftest import drain, emulator_records
from tests.factories import add_cash_accounts, link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import post_signed

pytestmark = pytest.mark.django_db
D = dt.date


def ts(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def ledger(db):
    ledger = make_ledger()
    add_cash_accounts(ledger)
    contra = GLAccount.objects.create(
        legal_entity=ledger.entity, number="4900", name="Credits (contra revenue)", kind="revenue"
    )
    ledger.ratable_rule.contra_revenue_account = contra
    ledger.ratable_rule.save()
    map_product("price_quarter")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger


def _quarter(invoice_id: str = "in_q") -> dict:
    return se.make_invoice(
        "cus_acme",
        [
            se.LineSpec(
                amount_minor=300_00,
                price_id="price_quarter",
                product_id="prod_q",
                period_start=ts(D(2026, 4, 1)),
                period_end=ts(D(2026, 7, 1)),
                taxes=(se.TaxSpec(rate_id="txr_us_8", percentage="8"),),
            )
        ],
        currency="usd",
        invoice_id=invoice_id,
        created=ts(D(2026, 4, 1)),
        finalized_at=ts(D(2026, 4, 1)),
    )


@pytest.fixture
def quarter_invoice(client, ledger, netsuite):
    """300.00 + 8% for Apr 1 .. Jul 1 2026 (30/31/30 of 91 days: 98.90 / 102.20 / 98.90),
    with April recognized."""
    obj = _quarter()
    post_signed(client, se.make_event("invoice.finalized", obj))
    drain()
    recognition_run(entity=ledger.entity, period=D(2026, 4, 1))
    drain()
    return obj


def _lines(entry):
    return [(ln.account.number, ln.debit_minor, ln.credit_minor) for ln in entry.lines.all()]


def _planned():
    return [
        (r.period, r.amount_minor, r.state) for r in RevenueScheduleLine.objects.order_by("period")
    ]


@pytest.mark.parametrize(
    ("timing", "counter_account"), [("pre_payment", "1200"), ("post_payment", "2300")]
)
def test_partial_credit_splits_earned_and_unearned_and_cuts_the_schedule(
    client, ledger, netsuite, quarter_invoice, timing, counter_account
):
    note = se.make_credit_note(quarter_invoice, [100_00], timing=timing, credit_note_id="cn_1")
    post_signed(client, se.make_event("credit_note.created", note))
    drain()

    entry = JournalEntry.objects.get(kind=JournalEntry.Kind.CREDIT_NOTE)
    # Credit shares Apr 32.97 / May 34.07 / Jun 32.96: April's is earned (contra revenue).
    assert sorted(_lines(entry)) == sorted(
        [
            ("2400", 67_03, 0),
            ("4900", 32_97, 0),
            ("2200", 8_00, 0),
            (counter_account, 0, 108_00),
        ]
    )
    assert entry.state == JournalEntry.State.POSTED and entry.document_ref == "in_q"
    assert _planned() == [
        (D(2026, 4, 1), 98_90, "recognized"),
        (D(2026, 5, 1), 68_13, "planned"),
        (D(2026, 6, 1), 65_94, "planned"),
    ]
    assert RevenueScheduleLine.objects.get(period=D(2026, 4, 1)).credited_minor == 32_97
    assert "RCT-STRIPE-cn_1" in {r["externalId"] for r in emulator_records(netsuite)}


def test_crediting_more_than_remains_is_an_amount_mismatch(
    client, ledger, netsuite, quarter_invoice
):
    first = se.make_credit_note(
        quarter_invoice, [250_00], timing="pre_payment", credit_note_id="cn_a"
    )
    post_signed(client, se.make_event("credit_note.created", first))
    drain()
    second = se.make_credit_note(
        quarter_invoice, [100_00], timing="pre_payment", credit_note_id="cn_b"
    )
    post_signed(client, se.make_event("credit_note.created", second))
    drain()
    case = ExceptionCase.objects.get(journey__business_key="cn_b")
    assert case.category == ExceptionCase.Category.AMOUNT_MISMATCH
    assert JournalEntry.objects.filter(kind=JournalEntry.Kind.CREDIT_NOTE).count() == 1


def test_remaining_schedule_after_credit_recognizes_to_the_reduced_total(
    client, ledger, netsuite, quarter_invoice
):
    note = se.make_credit_note(
        quarter_invoice, [100_00], timing="pre_payment", credit_note_id="cn_r"
    )
    post_signed(client, se.make_event("credit_note.created", note))
    drain()
    recognition_run(entity=ledger.entity, period=D(2026, 6, 1))
    drain()
    lines = [ln for e in JournalEntry.objects.filter(state="posted") for ln in e.lines.all()]
    deferred = sum(ln.credit_minor - ln.debit_minor for ln in lines if ln.account.number == "2400")
    revenue = sum(
        ln.credit_minor - ln.debit_minor for ln in lines if ln.account.number in ("4000", "4900")
    )
    assert deferred == 0 and revenue == 200_00  # 300.00 billed - 100.00 credited


def test_credit_notes_in_one_batch_each_get_their_own_outcome(client, ledger, netsuite, caplog):
    """Validate and build_entry through their batch forms: a good note posts the entry one by
    one would and cuts its schedule; one crediting more than remains stops alone with its
    schedule untouched; one whose invoice is not in the ledger waits for it."""
    invoices = [_quarter("in_b1"), _quarter("in_b2")]
    for obj in invoices:
        post_signed(client, se.make_event("invoice.finalized", obj))
    drain()
    recognition_run(entity=ledger.entity, period=D(2026, 4, 1))
    drain()
    first = se.make_credit_note(
        invoices[1], [250_00], timing="pre_payment", credit_note_id="cn_first"
    )
    post_signed(client, se.make_event("credit_note.created", first))
    drain()
    before = _planned_of("in_b2")
    absent = _quarter("in_absent")  # never delivered
    notes = [
        se.make_credit_note(invoices[0], [100_00], timing="post_payment", credit_note_id="cn_ok"),
        se.make_credit_note(invoices[1], [100_00], timing="pre_payment", credit_note_id="cn_over"),
        se.make_credit_note(absent, [10_00], timing="pre_payment", credit_note_id="cn_early"),
    ]
    inbound_events_receive_bulk(
        source_system="stripe",
        envelopes=[event_parse(se.make_event("credit_note.created", n)) for n in notes],
    )
    inbound_events_dispatch_received()
    claims = steps_claim_batch(50)
    assert len(claims) == 3  # three invoices, three aggregates: one batch
    journeys_advance_claimed(claims)
    # Both stages ran through their batch forms (a batch form failing falls back, logged).
    assert not [r.message for r in caplog.records if "batch form" in r.message]

    ok, over, early = (
        Journey.objects.get(business_key=k) for k in ("cn_ok", "cn_over", "cn_early")
    )
    assert ok.state == Journey.State.COMPLETED
    entry = JournalEntry.objects.get(
        kind=JournalEntry.Kind.CREDIT_NOTE, journey__business_key="cn_ok"
    )
    assert not JournalEntry.objects.filter(journey__in=[over, early]).exists()
    assert entry.journey == ok and entry.state == JournalEntry.State.POSTED
    assert sorted(_lines(entry)) == sorted(
        [("2400", 67_03, 0), ("4900", 32_97, 0), ("2200", 8_00, 0), ("2300", 0, 108_00)]
    )
    assert _planned_of("in_b1") == [
        (D(2026, 4, 1), 98_90, "recognized", 32_97),
        (D(2026, 5, 1), 68_13, "planned", 0),
        (D(2026, 6, 1), 65_94, "planned", 0),
    ]
    assert over.state == Journey.State.EXCEPTION
    assert ExceptionCase.objects.get(journey=over).category == "amount_mismatch"
    assert _planned_of("in_b2") == before  # nothing cut for the refused note
    assert early.state == Journey.State.WAITING
    assert early.steps.get(name="validate").state == "pending"
    assert ok.context["credit_note_id"] and ok.context["entry_id"] == entry.pk
    assert ok.context["unearned_minor"] == 67_03 and ok.context["earned_minor"] == 32_97


def _planned_of(invoice_id: str) -> list[tuple]:
    return [
        (r.period, r.amount_minor, r.state, r.credited_minor)
        for r in RevenueScheduleLine.objects.filter(
            schedule__invoice_line__invoice__source_id=invoice_id
        ).order_by("period")
    ]
