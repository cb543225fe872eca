"""Cancellations: a scheduled end (cancel_at_period_end / cancel_at) is recorded without ledger
effect and lifted on reactivation; the actual end (customer.subscription.deleted) stops future
recognition, at period end or immediately (with the unused time credited by a credit note).
Through the real webhook, dispatch, engine and NetSuite emulator (engine inline)."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.stripe import emulator as se
from sync.models import (
    AuditEntry,
    JournalEntry,
    Journey,
    RevenueScheduleLine,
    Subscription,
)
from sync.services.recognition import recognition_run
from sync.services.subscriptions import subscription_scheduled_end_find
from tests.conftest import drain
from tests.factories import add_cash_accounts, link_customer, make_ledger, map_product
from tests.stripe_events import post_signed

pytestmark = pytest.mark.django_db
D = dt.date


def ts(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def ledger(db):
    ledger = make_ledger()
    add_cash_accounts(ledger)
    map_product("price_annual")
    map_product("price_monthly")
    link_customer(ledger, "cus_acme")
    return ledger


def subscription(price: str, start: dt.date, end: dt.date) -> dict:
    sub = se.make_subscription(
        "cus_acme",
        [se.ItemSpec(price_id=price, unit_amount=12_000_00, interval="year")],
        currency="usd",
        current_period_start=ts(start),
        current_period_end=ts(end),
        subscription_id="sub_acme",
        created=ts(start),
    )
    return sub


def send(client, event: dict) -> None:
    assert post_signed(client, event).status_code == 200


def invoice(client, invoice_id: str, price: str, amount: int, start: dt.date, end: dt.date):
    obj = se.make_invoice(
        "cus_acme",
        [
            se.LineSpec(
                amount_minor=amount, price_id=price, period_start=ts(start), period_end=ts(end)
            )
        ],
        currency="usd",
        invoice_id=invoice_id,
        subscription_id="sub_acme",
        created=ts(start),
        finalized_at=ts(start),
    )
    send(client, se.make_event("invoice.finalized", obj, created=ts(start)))
    return obj


def schedule() -> list[tuple[dt.date, int, str]]:
    return [
        (ln.period, ln.amount_minor, ln.state)
        for ln in RevenueScheduleLine.objects.order_by("period", "pk")
    ]


def months_recognized(ledger) -> dict[dt.date, int]:
    out: dict[dt.date, int] = {}
    for entry in JournalEntry.objects.filter(kind=JournalEntry.Kind.RECOGNITION):
        revenue = sum(
            ln.credit_minor - ln.debit_minor
            for ln in entry.lines.all()
            if ln.account_id == ledger.revenue.pk
        )
        out[entry.posting_date.replace(day=1)] = out.get(entry.posting_date.replace(day=1), 0) + (
            revenue
        )
    return dict(sorted(out.items()))


def test_cancel_at_period_end_records_the_scheduled_end_with_no_ledger_effect(
    client, ledger, netsuite
):
    invoice(client, "in_m", "price_monthly", 90_00, D(2026, 4, 1), D(2026, 5, 1))
    sub = subscription("price_monthly", D(2026, 4, 1), D(2026, 5, 1))
    send(client, se.make_event("customer.subscription.created", sub, created=ts(D(2026, 4, 1))))
    drain()
    before = schedule()
    entries = JournalEntry.objects.count()

    scheduled = se.subscription_changed(sub, cancel_at_period_end=True, at=ts(D(2026, 4, 10)))
    event = se.make_subscription_updated_event(sub, scheduled, ts(D(2026, 4, 10)))
    assert set(event["data"]["previous_attributes"]) == {
        "cancel_at",
        "cancel_at_period_end",
        "canceled_at",
    }
    send(client, event)
    drain()

    journey = Journey.objects.get(journey_type="cancellation_scheduled")
    assert journey.state == Journey.State.COMPLETED
    assert journey.business_key == f"sub_acme:{event['id']}"
    ctx = journey.context
    assert ctx["scheduled_end"] == "2026-05-01" and ctx["cancel_at_period_end"] is True
    assert ctx["cancellation"] == "scheduled"
    assert ctx["requested_at"] == "2026-04-10T00:00:00+00:00"
    assert ctx["previous_scheduled_end"] is None
    audit = AuditEntry.objects.get(action="subscription.end_scheduled")
    assert audit.object_id == str(Subscription.objects.get().pk)
    assert audit.after["scheduled_end"] == "2026-05-01"
    found = subscription_scheduled_end_find("sub_acme")
    assert found.end == D(2026, 5, 1) and found.journey_id == journey.pk
    # No ledger effect: the service continues until it actually ends.
    assert schedule() == before == [(D(2026, 4, 1), 90_00, "planned")]
    assert JournalEntry.objects.count() == entries
    assert not Journey.objects.filter(journey_type="amendment").exists()


def test_reactivation_lifts_the_scheduled_end(client, ledger, netsuite):
    sub = subscription("price_monthly", D(2026, 4, 1), D(2026, 5, 1))
    send(client, se.make_event("customer.subscription.created", sub, created=ts(D(2026, 4, 1))))
    scheduled = se.subscription_changed(sub, cancel_at_period_end=True, at=ts(D(2026, 4, 10)))
    send(client, se.make_subscription_updated_event(sub, scheduled, ts(D(2026, 4, 10))))
    drain()
    reactivated = se.subscription_changed(scheduled, cancel_at_period_end=False)
    send(client, se.make_subscription_updated_event(scheduled, reactivated, ts(D(2026, 4, 15))))
    drain()

    latest = Journey.objects.filter(journey_type="cancellation_scheduled").latest("business_at")
    assert latest.state == Journey.State.COMPLETED
    assert latest.context["scheduled_end"] is None
    assert latest.context["cancellation"] == "reactivated"
    assert latest.context["previous_scheduled_end"] == "2026-05-01"
    assert subscription_scheduled_end_find("sub_acme").end is None
    unscheduled = AuditEntry.objects.get(action="subscription.end_unscheduled")
    assert unscheduled.before == {"scheduled_end": "2026-05-01"}


def test_a_stale_schedule_is_skipped_with_its_reason_and_the_newer_state_stands(
    client, ledger, netsuite
):
    sub = subscription("price_monthly", D(2026, 4, 1), D(2026, 5, 1))
    send(client, se.make_event("customer.subscription.created", sub, created=ts(D(2026, 4, 1))))
    scheduled = se.subscription_changed(sub, cancel_at_period_end=True, at=ts(D(2026, 4, 10)))
    reactivated = se.subscription_changed(scheduled, cancel_at_period_end=False)
    # Delivered out of order: the reactivation first, then the request it undid.
    send(client, se.make_subscription_updated_event(scheduled, reactivated, ts(D(2026, 4, 15))))
    drain()
    send(client, se.make_subscription_updated_event(sub, scheduled, ts(D(2026, 4, 10))))
    drain()

    stale = Journey.objects.get(journey_type="cancellation_scheduled", state=Journey.State.SKIPPED)
    assert stale.business_at == dt.datetime(2026, 4, 10, tzinfo=dt.UTC)
    assert stale.context["skipped"] == (
        "stale: this update is from 2026-04-10 00:00:00, we hold subscription sub_acme as of "
        "2026-04-15 00:00:00"
    )
    assert stale.steps.get().state == "skipped"
    assert subscription_scheduled_end_find("sub_acme").end is None
    assert not AuditEntry.objects.filter(action="subscription.end_scheduled").exists()


def test_a_period_end_cancellation_ends_as_scheduled_and_moves_nothing(client, ledger, netsuite):
    invoice(client, "in_year", "price_annual", 12_000_00, D(2026, 1, 1), D(2027, 1, 1))
    sub = subscription("price_annual", D(2026, 1, 1), D(2027, 1, 1))
    send(client, se.make_event("customer.subscription.created", sub, created=ts(D(2026, 1, 1))))
    scheduled = se.subscription_changed(sub, cancel_at_period_end=True, at=ts(D(2026, 6, 3)))
    send(client, se.make_subscription_updated_event(sub, scheduled, ts(D(2026, 6, 3))))
    drain()
    before = schedule()

    ended = se.subscription_ended(scheduled)  # at its cancel_at: the period end
    deleted = se.make_event("customer.subscription.deleted", ended, ts(D(2027, 1, 1)))
    send(client, deleted)
    send(client, deleted)  # redelivered
    drain()

    [journey] = Journey.objects.filter(journey_type="subscription_cancellation")
    assert journey.state == Journey.State.COMPLETED
    assert journey.context["cancellation"] == "at_period_end"
    assert journey.context["ended_on"] == "2027-01-01"
    assert journey.context["last_service_day"] == "2026-12-31"
    assert journey.context["scheduled_end"] == "2027-01-01"
    assert journey.context["schedule_lines_moved"] == 0
    assert schedule() == before and len(before) == 12
    assert Subscription.objects.get().status == "canceled"


def test_a_scheduled_end_on_the_first_of_a_month_stops_recognition_the_month_before(
    client, ledger, netsuite
):
    invoice(client, "in_year", "price_annual", 12_000_00, D(2026, 1, 1), D(2027, 1, 1))
    drain()
    sub = subscription("price_annual", D(2026, 1, 1), D(2027, 1, 1))
    ends = se.subscription_changed(sub, cancel_at=ts(D(2026, 6, 1)), at=ts(D(2026, 5, 4)))
    ended = se.subscription_ended(ends)
    send(client, se.make_event("customer.subscription.deleted", ended, ts(D(2026, 6, 1))))
    drain()

    ctx = Journey.objects.get(journey_type="subscription_cancellation").context
    assert (ctx["cancellation"], ctx["last_service_day"]) == ("scheduled", "2026-05-31")
    assert ctx["schedule_lines_moved"] == 7  # June .. December into May
    periods = sorted({ln.period for ln in RevenueScheduleLine.objects.all()})
    assert periods == [D(2026, m, 1) for m in range(1, 6)]
    assert sum(ln.amount_minor for ln in RevenueScheduleLine.objects.all()) == 12_000_00


@pytest.mark.parametrize("order", ["cancel_then_credit", "credit_then_cancel"])
def test_an_immediate_cancellation_stops_recognition_and_the_credit_note_takes_back_unused_time(
    client, ledger, netsuite, order
):
    """12,000.00 for 2026, cancelled at once on Mar 10 with proration: Stripe credits the
    297 unused days, 9,764.38, as a credit note; 2,235.62 stays revenue, all by March."""
    year = invoice(client, "in_year", "price_annual", 12_000_00, D(2026, 1, 1), D(2027, 1, 1))
    sub = subscription("price_annual", D(2026, 1, 1), D(2027, 1, 1))
    drain()
    ended = se.subscription_ended(sub, at=ts(D(2026, 3, 10)))
    deleted = se.make_event("customer.subscription.deleted", ended, ts(D(2026, 3, 10)))
    note = se.make_credit_note(
        year,
        [9_764_38],
        timing="pre_payment",
        credit_note_id="cn_unused",
        created=ts(D(2026, 3, 10)),
    )
    credit = se.make_event("credit_note.created", note, ts(D(2026, 3, 10)))
    for event in (deleted, credit) if order == "cancel_then_credit" else (credit, deleted):
        send(client, event)
        drain()

    ctx = Journey.objects.get(journey_type="subscription_cancellation").context
    assert ctx["cancellation"] == "immediate" and ctx["ended_on"] == "2026-03-10"
    assert ctx["scheduled_end"] is None
    credit_entry = JournalEntry.objects.get(kind=JournalEntry.Kind.CREDIT_NOTE)
    assert credit_entry.state == JournalEntry.State.POSTED
    assert sorted(
        (ln.account.number, ln.debit_minor, ln.credit_minor) for ln in credit_entry.lines.all()
    ) == [("1200", 0, 9_764_38), ("2400", 9_764_38, 0)]
    lines = RevenueScheduleLine.objects.all()
    assert {ln.period for ln in lines} <= {D(2026, 1, 1), D(2026, 2, 1), D(2026, 3, 1)}
    assert sum(ln.amount_minor for ln in lines) == 2_235_62

    recognition_run(entity=ledger.entity, period=D(2026, 11, 1))
    drain()
    by_month = months_recognized(ledger)
    assert sum(by_month.values()) == 2_235_62
    assert max(by_month) == D(2026, 3, 1)
    assert all(
        ln.state == RevenueScheduleLine.State.RECOGNIZED for ln in RevenueScheduleLine.objects.all()
    )


def test_an_invoice_arriving_after_its_subscription_ended_stops_at_the_end_too(
    client, ledger, netsuite
):
    # The end is applied first (webhooks come in any order): no schedule exists to cut yet.
    sub = subscription("price_annual", D(2026, 1, 1), D(2027, 1, 1))
    ends = se.subscription_changed(sub, cancel_at=ts(D(2026, 6, 1)), at=ts(D(2026, 5, 4)))
    send(client, se.make_event("customer.subscription.deleted", se.subscription_ended(ends)))
    drain()
    assert Subscription.objects.get(source_id="sub_acme").service_ended_on == D(2026, 5, 31)
    assert not RevenueScheduleLine.objects.exists()
    # Then the year's invoice: its schedule must not recognize anything after May.
    invoice(client, "in_late_year", "price_annual", 12_000_00, D(2026, 1, 1), D(2027, 1, 1))
    drain()
    periods = sorted({ln.period for ln in RevenueScheduleLine.objects.all()})
    assert periods == [D(2026, m, 1) for m in range(1, 6)]
    assert sum(ln.amount_minor for ln in RevenueScheduleLine.objects.all()) == 12_000_00
    stop = AuditEntry.objects.get(action="schedule.stop")
    assert stop.after == {"ended_on": "2026-05-31", "moved_to": "2026-05-01"}
