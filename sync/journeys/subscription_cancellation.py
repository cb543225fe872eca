"""Cancellations: scheduled (cancellation_scheduled) and actual (subscription_cancellation).

cancellation_scheduled (``customer.subscription.updated`` whose ``cancel_at_period_end`` or
``cancel_at`` changed, and nothing an amendment records): ``record_scheduled_end`` records
when the subscription is now set to end (``cancel_at``, else the current period end), or that
the schedule was lifted (reactivated). No ledger effect: the service continues, and is
recognized, until it actually ends. A stale update (older than the subscription version we
hold) ends skipped with the reason.

subscription_cancellation (``customer.subscription.deleted``): ``stop_future_recognition``
moves the planned months after the last day of service into that day's month, so nothing is
recognized after the end. It serves both kinds of end:

* **at period end** (scheduled earlier): the end is the period end, where the billed
  schedules end anyway, so usually nothing moves;
* **immediate** (mid-period): the rest of the billed period is earned in the end month; a
  credit for the unused time (Stripe's ``prorate``) arrives as a credit note and the
  credit_note journey takes it back off the schedule (unearned part) or revenue (earned part).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction

from connectors.stripe import mapping as stripe_mapping
from sync.errors import StepSkipped
from sync.journeys import JourneyType, StepContext, StepDef
from sync.journeys.amendment import (
    aggregate_key,
    business_key,
    is_cancellation_change,
    stale_reason,
    subscription_update_of,
)
from sync.services.schedules_change import schedules_stop_for_subscription
from sync.services.subscriptions import (
    subscription_apply_version,
    subscription_scheduled_end_find,
    subscription_scheduled_end_record,
)


def _at(value: Any) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(value), tz=dt.UTC) if value else None


def stop_future_recognition(ctx: StepContext) -> dict[str, Any]:
    """Nothing is recognized after the last day of service."""
    sub = ctx.journey.source_event.payload["data"]["object"]
    # ended_at is when service stopped. Without it, a scheduled end (cancel_at) comes before
    # canceled_at, which for an end at period end is when it was *requested*, not the end.
    ended = (
        _at(sub.get("ended_at"))
        or _at(sub.get("cancel_at"))
        or _at(sub.get("canceled_at"))
        or ctx.journey.business_at
    )
    # The end is exclusive (a period ending May 1 00:00 serves through April 30).
    last_day = (ended - dt.timedelta(seconds=1)).date()
    if sub.get("cancel_at_period_end") is True:
        kind = "at_period_end"
    elif sub.get("cancel_at"):
        kind = "scheduled"
    else:
        kind = "immediate"
    scheduled = subscription_scheduled_end_find(sub["id"])
    moved = schedules_stop_for_subscription(
        subscription_ref=sub["id"],
        ended_on=last_day,
        correlation_id=str(ctx.journey.correlation_id),
    )
    return {
        "ended_at": ended.isoformat(),
        "ended_on": ended.date().isoformat(),
        "last_service_day": last_day.isoformat(),
        "cancellation": kind,
        "scheduled_end": scheduled.end.isoformat() if scheduled and scheduled.end else None,
        "schedule_lines_moved": moved,
    }


def record_scheduled_end(ctx: StepContext) -> dict[str, Any]:
    """Record the end the subscription is now set to (or that it was reactivated)."""
    update = subscription_update_of(ctx)
    obj = ctx.journey.source_event.payload["data"]["object"]
    with transaction.atomic():
        row, newer = subscription_apply_version(
            sub=stripe_mapping.parse_subscription(obj), event_at=ctx.journey.business_at
        )
        if newer is not None:
            raise StepSkipped(stale_reason(ctx, newer), result={"applied": False})
        result = subscription_scheduled_end_record(
            subscription=row,
            scheduled_end=update.scheduled_end,
            requested_at=update.canceled_at,
            cancel_at_period_end=update.cancel_at_period_end,
            journey_id=ctx.journey.pk,
            event_id=ctx.journey.source_event.source_event_id,
            correlation_id=str(ctx.journey.correlation_id),
        )
    return {**result, "applied": True}


JOURNEY = JourneyType(
    name="subscription_cancellation",
    source_system="stripe",
    event_types=frozenset({"customer.subscription.deleted"}),
    steps=(
        StepDef(
            "stop_future_recognition",
            stop_future_recognition,
            "Move planned months after the end into the end month",
        ),
    ),
    business_key=lambda env: f"{env.object_id}:cancel",
    aggregate_key=lambda env: f"stripe:{env.object_id}",
)

SCHEDULED_JOURNEY = JourneyType(
    name="cancellation_scheduled",
    source_system="stripe",
    event_types=frozenset({"customer.subscription.updated"}),
    steps=(
        StepDef(
            "record_scheduled_end",
            record_scheduled_end,
            "Record the end the subscription is set to, or its reactivation",
        ),
    ),
    business_key=business_key,
    aggregate_key=aggregate_key,
    default_sla_minutes=60,
    accepts=is_cancellation_change,
)
