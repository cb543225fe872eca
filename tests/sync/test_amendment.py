"""amendment: price or quantity changed mid-cycle -> MRR before/after recorded, the subscription
brought to the new version; the proration itself posts through invoice_to_ledger. Through the
real webhook, dispatch, engine and NetSuite emulator (engine inline)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connectors.stripe import emulator as se
from sync.accounting.mrr import PricedItem, mrr
from sync.journeys import journey_type_for_event
from sync.models import (
    AuditEntry,
    InboundEvent,
    JournalEntry,
    Journey,
    RevenueSchedule,
    RevenueScheduleLine,
    Step,
    Subscription,
)
from sync.services.dispatch import envelope_of, journey_start_for_event
from sync.services.recognition import recognition_run
from tests.conftest import drain
from tests.factories import link_customer, make_ledger, map_product
from tests.stripe_events import post_signed

pytestmark = pytest.mark.django_db
D = dt.date


def ts(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def at(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@pytest.fixture
def ledger(db):
    ledger = make_ledger()
    map_product("price_basic")
    map_product("price_pro")
    map_product("price_annual")
    map_product("price_annual_plus")
    link_customer(ledger, "cus_acme")
    return ledger


def basic_subscription(**kwargs) -> dict:
    return se.make_subscription(
        "cus_acme",
        kwargs.pop(
            "items",
            [se.ItemSpec(price_id="price_basic", product_id="prod_platform", unit_amount=90_00)],
        ),
        currency="usd",
        current_period_start=ts(D(2026, 4, 1)),
        current_period_end=ts(D(2026, 5, 1)),
        subscription_id="sub_acme",
        created=ts(D(2026, 4, 1)),
        **kwargs,
    )


def created(client, sub: dict) -> None:
    event = se.make_event("customer.subscription.created", sub, created=sub["created"])
    assert post_signed(client, event).status_code == 200


def updated(client, before: dict, after: dict, day: dt.date, **kwargs) -> dict:
    event = se.make_subscription_updated_event(before, after, created=ts(day), **kwargs)
    assert post_signed(client, event).status_code == 200
    return event


def upgrade(sub: dict, day: dt.date) -> dict:
    item = sub["items"]["data"][0]["id"]
    return se.subscription_changed(
        sub,
        items=[
            se.ItemSpec(
                price_id="price_pro", product_id="prod_platform", unit_amount=120_00, item_id=item
            )
        ],
        at=ts(day),
    )


def test_an_upgrade_records_mrr_before_and_after_and_brings_the_subscription_up_to_date(
    client, ledger, netsuite
):
    sub = basic_subscription()
    created(client, sub)
    after = upgrade(sub, D(2026, 4, 21))
    event = updated(client, sub, after, D(2026, 4, 21))
    drain()

    journey = Journey.objects.get(journey_type="amendment")
    assert journey.state == Journey.State.COMPLETED
    assert journey.business_key == f"sub_acme:{event['id']}"
    assert journey.aggregate_key == "stripe:sub_acme"
    ctx = journey.context
    assert (ctx["mrr_before_minor"], ctx["mrr_after_minor"], ctx["mrr_change_minor"]) == (
        90_00,
        120_00,
        30_00,
    )
    assert ctx["change"] == "upgrade" and ctx["currency"] == "USD" and ctx["mrr_complete"]
    assert [(i["price"], i["quantity"]) for i in ctx["items_before"]] == [("price_basic", 1)]
    assert [(i["price"], i["quantity"]) for i in ctx["items_after"]] == [("price_pro", 1)]
    row = Subscription.objects.get(source_id="sub_acme")
    assert row.items == [["price_pro", "prod_platform", 1]]
    assert row.source_updated_at == at(D(2026, 4, 21))
    audit = AuditEntry.objects.get(action="subscription.amend")
    assert audit.object_id == str(row.pk)
    assert (audit.before["mrr_minor"], audit.after["mrr_minor"]) == (90_00, 120_00)
    assert audit.correlation_id == str(journey.correlation_id)
    # Recording the change posts nothing and moves no schedule: the proration is invoiced.
    assert not JournalEntry.objects.exists() and not RevenueSchedule.objects.exists()


def test_mrr_normalises_intervals_and_quantities_and_leaves_metered_usage_out(
    client, ledger, netsuite
):
    items = [
        se.ItemSpec(price_id="price_seat", unit_amount=25_00, quantity=10, item_id="si_seat"),
        se.ItemSpec(price_id="price_annual", unit_amount=1_200_00, interval="year", item_id="si_y"),
        se.ItemSpec(price_id="price_api", unit_amount=2, item_id="si_api"),
    ]
    sub = se.metered(basic_subscription(items=items), "price_api")
    created(client, sub)
    fewer = [
        se.ItemSpec(price_id="price_seat", unit_amount=25_00, quantity=6, item_id="si_seat"),
        *items[1:],
    ]
    after = se.metered(
        se.subscription_changed(sub, items=fewer, at=ts(D(2026, 4, 10))), "price_api"
    )
    updated(client, sub, after, D(2026, 4, 10))
    drain()

    ctx = Journey.objects.get(journey_type="amendment").context
    # 10 seats x 25.00 + 1,200.00 a year / 12 = 350.00 -> 6 seats: 250.00; usage is not MRR.
    assert (ctx["mrr_before_minor"], ctx["mrr_after_minor"]) == (350_00, 250_00)
    assert (ctx["mrr_change_minor"], ctx["change"]) == (-100_00, "downgrade")
    assert ctx["metered_prices"] == ["price_api"] and ctx["unpriced_prices"] == []
    row = Subscription.objects.get()
    assert [(price, qty) for price, _, qty in row.items] == [
        ("price_seat", 6),
        ("price_annual", 1),
        ("price_api", 1),
    ]


def test_mrr_rules_week_day_interval_count_package_pricing_and_rounding():
    def item(**kw) -> PricedItem:
        base = {
            "price_ref": "p",
            "quantity": 1,
            "unit_amount": Decimal(100_00),
            "interval": "month",
        }
        return PricedItem(**{**base, **kw})

    assert mrr([item(interval="week")]).minor == 433_33  # 100.00 x 52 / 12 = 433.333...
    assert mrr([item(interval="day", unit_amount=Decimal(1_00))]).minor == 30_42  # 365/12
    assert mrr([item(interval="month", interval_count=3)]).minor == 33_33
    assert mrr([item(interval="year", unit_amount=Decimal(1_000))]).minor == 83  # 83.33
    # Package pricing: 25 units sold in packs of 10, rounded up -> 3 packs.
    assert mrr([item(quantity=25, divide_by=10)]).minor == 300_00
    assert mrr([item(quantity=25, divide_by=10, round_up=False)]).minor == 200_00
    # Fractional unit amounts sum exactly before one half-even rounding.
    half = Decimal("0.5")
    assert mrr([item(unit_amount=half), item(unit_amount=half)]).minor == 1
    assert mrr([item(unit_amount=half)]).minor == 0
    tiered = mrr([item(), item(price_ref="tiered", unit_amount=None)])
    assert (tiered.minor, tiered.unpriced, tiered.complete) == (100_00, ("tiered",), False)
    assert mrr([item(interval="")]).minor == 0  # a one-time price recurs never


def test_the_same_update_delivered_and_dispatched_twice_gives_one_journey(client, ledger, netsuite):
    sub = basic_subscription()
    created(client, sub)
    event = se.make_subscription_updated_event(
        sub, upgrade(sub, D(2026, 4, 21)), ts(D(2026, 4, 21))
    )
    answers = [post_signed(client, event).json()["duplicate"] for _ in range(2)]
    drain()
    inbound = InboundEvent.objects.get(source_event_id=event["id"])
    again, started = journey_start_for_event(
        jt=journey_type_for_event("stripe", inbound.event_type, envelope_of(inbound)),
        event=inbound,
    )
    assert answers == [False, True] and started is False
    assert Journey.objects.filter(journey_type="amendment").count() == 1
    assert again.state == Journey.State.COMPLETED
    assert AuditEntry.objects.filter(action="subscription.amend").count() == 1


def test_a_stale_amendment_is_skipped_with_its_reason_and_changes_nothing(client, ledger, netsuite):
    sub = basic_subscription()
    created(client, sub)
    amended = upgrade(sub, D(2026, 4, 21))
    newer = se.subscription_changed(amended, metadata={"po": "PO-7"})
    # Stripe delivers in no set order: the later (metadata) update arrives first.
    updated(client, amended, newer, D(2026, 4, 25))
    updated(client, sub, amended, D(2026, 4, 21))
    drain()

    journey = Journey.objects.get(journey_type="amendment")
    assert journey.state == Journey.State.SKIPPED
    reason = journey.context["skipped"]
    assert reason == (
        "stale: this update is from 2026-04-21 00:00:00, we hold subscription sub_acme as of "
        "2026-04-25 00:00:00"
    )
    assert journey.context["applied"] is False
    [step] = journey.steps.all()
    assert step.state == Step.State.SKIPPED and step.response_snapshot["skipped"] == reason
    assert AuditEntry.objects.get(action="journey.skip", object_id=str(journey.pk)).reason == reason
    row = Subscription.objects.get()
    assert row.source_updated_at == at(D(2026, 4, 25))
    assert not AuditEntry.objects.filter(action="subscription.amend").exists()


def test_metadata_status_and_renewal_updates_start_no_journey(client, ledger, netsuite):
    sub = basic_subscription()
    created(client, sub)
    tagged = se.subscription_changed(sub, metadata={"po": "PO-7"})
    past_due = se.subscription_changed(tagged, status="past_due")
    renewed = se.make_subscription(
        "cus_acme",
        [se.ItemSpec(price_id="price_basic", product_id="prod_platform", unit_amount=90_00)],
        currency="usd",
        current_period_start=ts(D(2026, 5, 1)),
        current_period_end=ts(D(2026, 6, 1)),
        subscription_id="sub_acme",
        created=ts(D(2026, 4, 1)),
    )
    renewed["items"]["data"][0]["id"] = sub["items"]["data"][0]["id"]
    events = [
        updated(client, sub, tagged, D(2026, 4, 5)),
        updated(client, tagged, past_due, D(2026, 4, 6)),
        updated(client, past_due, renewed, D(2026, 5, 1)),
    ]
    assert "items" in events[2]["data"]["previous_attributes"]  # a renewal changes item periods
    drain()

    assert not Journey.objects.exists()
    states = InboundEvent.objects.filter(event_type="customer.subscription.updated")
    assert sorted(states.values_list("state", flat=True)) == [InboundEvent.State.APPLIED] * 3
    row = Subscription.objects.get()
    assert row.status == "active" and row.source_updated_at == at(D(2026, 5, 1))
    assert row.current_period_end == at(D(2026, 6, 1))


def test_the_registry_picks_the_journey_by_what_changed():
    sub = basic_subscription()

    def env(after):
        event = se.make_subscription_updated_event(sub, after, ts(D(2026, 4, 9)))
        return InboundEvent(
            source_system="stripe",
            source_event_id=event["id"],
            event_type=event["type"],
            occurred_at=at(D(2026, 4, 9)),
            payload=event,
        )

    def picked(after) -> str | None:
        e = env(after)
        jt = journey_type_for_event("stripe", e.event_type, envelope_of(e))
        return jt.name if jt else None

    upgraded = upgrade(sub, D(2026, 4, 9))
    assert picked(upgraded) == "amendment"
    assert picked(se.subscription_changed(sub, cancel_at_period_end=True)) == (
        "cancellation_scheduled"
    )
    both = se.subscription_changed(upgraded, cancel_at_period_end=True)
    assert picked(both) == "amendment"  # it records the scheduled end as well
    assert picked(se.subscription_changed(sub, metadata={"x": "1"})) is None
    more_seats = se.subscription_changed(
        sub,
        items=[
            se.ItemSpec(price_id="price_basic", quantity=3, item_id=sub["items"]["data"][0]["id"])
        ],
    )
    assert picked(more_seats) == "amendment"
    # Without the envelope nothing proves a predicate holds: master data only.
    assert journey_type_for_event("stripe", "customer.subscription.updated") is None
    assert journey_type_for_event("stripe", "invoice.finalized").name == "invoice_to_ledger"


def test_a_legacy_single_plan_quantity_change_is_an_amendment(client, ledger, netsuite):
    sub = basic_subscription()
    plan = {
        "id": "price_basic",
        "object": "plan",
        "amount": 90_00,
        "amount_decimal": "9000",
        "currency": "usd",
        "interval": "month",
        "interval_count": 1,
        "usage_type": "licensed",
        "product": "prod_platform",
    }
    sub.update(plan=plan, quantity=1)
    created(client, sub)
    after = se.subscription_changed(
        sub,
        items=[
            se.ItemSpec(
                price_id="price_basic",
                product_id="prod_platform",
                unit_amount=90_00,
                quantity=2,
                item_id=sub["items"]["data"][0]["id"],
            )
        ],
    )
    after["quantity"] = 2
    event = se.make_event(
        "customer.subscription.updated",
        after,
        ts(D(2026, 4, 12)),
        previous_attributes={"quantity": 1},  # an old API version names only what it knew
    )
    post_signed(client, event)
    drain()
    ctx = Journey.objects.get(journey_type="amendment").context
    assert (ctx["mrr_before_minor"], ctx["mrr_after_minor"]) == (90_00, 180_00)


def _revenue(entry: JournalEntry) -> int:
    return sum(
        ln.credit_minor - ln.debit_minor for ln in entry.lines.all() if ln.account.number == "4000"
    )


def test_proration_lines_post_and_their_schedules_cover_the_rest_of_the_period(
    client, ledger, netsuite
):
    """12,000.00 a year from Jan 1, upgraded to 18,000.00 on Jul 15: Stripe invoices -5,589.04
    unused time and +8,383.56 remaining time, both for Jul 15 - Jan 1 (170 days)."""
    year = se.make_invoice(
        "cus_acme",
        [
            se.LineSpec(
                amount_minor=12_000_00,
                price_id="price_annual",
                period_start=ts(D(2026, 1, 1)),
                period_end=ts(D(2027, 1, 1)),
            )
        ],
        currency="usd",
        invoice_id="in_year",
        subscription_id="sub_acme",
        created=ts(D(2026, 1, 1)),
        finalized_at=ts(D(2026, 1, 1)),
    )
    post_signed(client, se.make_event("invoice.finalized", year, created=ts(D(2026, 1, 1))))
    rest = {"period_start": ts(D(2026, 7, 15)), "period_end": ts(D(2027, 1, 1)), "proration": True}
    proration = se.make_invoice(
        "cus_acme",
        [
            se.LineSpec(
                amount_minor=-5_589_04,
                price_id="price_annual",
                description="Unused time on Annual after 15 Jul 2026",
                **rest,
            ),
            se.LineSpec(
                amount_minor=8_383_56,
                price_id="price_annual_plus",
                description="Remaining time on Annual Plus after 15 Jul 2026",
                **rest,
            ),
        ],
        currency="usd",
        invoice_id="in_prorate",
        subscription_id="sub_acme",
        billing_reason="subscription_update",
        created=ts(D(2026, 7, 15)),
        finalized_at=ts(D(2026, 7, 15)),
    )
    post_signed(client, se.make_event("invoice.finalized", proration, created=ts(D(2026, 7, 15))))
    drain()

    entry = JournalEntry.objects.get(journey__business_key="in_prorate")
    assert entry.state == JournalEntry.State.POSTED
    assert [(ln.account.number, ln.debit_minor, ln.credit_minor) for ln in entry.lines.all()] == [
        ("1200", 2_794_52, 0),
        ("2400", 5_589_04, 0),
        ("2400", 0, 8_383_56),
    ]
    for source, total in (("price_annual", -5_589_04), ("price_annual_plus", 8_383_56)):
        schedule = RevenueSchedule.objects.get(
            invoice_line__invoice__source_id="in_prorate", invoice_line__price_ref=source
        )
        assert (schedule.service_start, schedule.service_end) == (D(2026, 7, 15), D(2027, 1, 1))
        assert schedule.invoice_line.proration is True
        lines = list(schedule.lines.order_by("period"))
        assert [ln.period.month for ln in lines] == [7, 8, 9, 10, 11, 12]
        assert sum(ln.amount_minor for ln in lines) == total
        assert all(ln.state == RevenueScheduleLine.State.PLANNED for ln in lines)
    # By day: July has 17 of the 170 days, August 31.
    plus = RevenueScheduleLine.objects.filter(schedule__invoice_line__price_ref="price_annual_plus")
    assert [ln.amount_minor for ln in plus.order_by("period")][:2] == [838_356 * 17 // 170, 152_877]

    # From August on each month earns the new price: 18,000.00 x 31/365 = 1,528.77.
    recognition_run(entity=ledger.entity, period=D(2026, 7, 1))
    drain()
    recognition_run(entity=ledger.entity, period=D(2026, 8, 1))
    drain()
    august = JournalEntry.objects.get(kind="recognition", posting_date=D(2026, 8, 31))
    assert _revenue(august) == 1_528_77
