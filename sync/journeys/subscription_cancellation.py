"""subscription_cancellation: a subscription that ended stops recognizing future months."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sync.journeys import JourneyType, StepContext, StepDef
from sync.services.schedules_change import schedules_stop_for_subscription


def stop_future_recognition(ctx: StepContext) -> dict[str, Any]:
    sub = ctx.journey.source_event.payload["data"]["object"]
    ended = (
        sub.get("ended_at")
        or sub.get("canceled_at")
        or ctx.journey.source_event.payload.get("created")
    )
    ended_on = dt.datetime.fromtimestamp(int(ended), tz=dt.UTC).date()
    moved = schedules_stop_for_subscription(
        subscription_ref=sub["id"],
        ended_on=ended_on,
        correlation_id=str(ctx.journey.correlation_id),
    )
    return {"ended_on": ended_on.isoformat(), "schedule_lines_moved": moved}


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
