"""amendment: a subscription's price or quantity changed mid-cycle.

Trigger: ``customer.subscription.updated`` whose ``previous_attributes`` show a different set
of (price, quantity) than the subscription now has (``items``; ``plan``/``quantity`` on
subscriptions of the old single-plan API). Every renewal also changes ``items`` (the item
periods), and metadata or status changes are master data only: dispatch applies them and no
journey starts (``accepts``).

One step, ``record_amendment``: lock the ``Subscription`` row; an event older than the version
we hold is stale and the journey ends skipped with the reason (the figures it would have
recorded are kept in the context, marked not applied); else bring the row to this version and
record MRR before and after (integer minor units per month, ``sync.accounting.mrr``), audited
on the subscription. An amendment that also schedules or lifts a cancellation records that
too, so one event never needs two journeys.

What it deliberately does not do:

* **Post anything.** Stripe invoices the proration itself: "unused time" (negative) and
  "remaining time" (positive) lines, ``proration: true``, with the service period from the
  change to the period end, on the next invoice (or at once with ``always_invoice``).
  invoice_to_ledger posts them and gives each its own ratable schedule over that period.
* **Move revenue schedules.** A schedule belongs to the invoice line that billed it. The old
  price's schedule stays right for what was billed; the proration lines' schedules offset the
  unused part and add the new price's part for the rest of the period; later periods are
  billed, and scheduled, at the new price. With ``proration_behavior=none`` nothing is
  credited or charged, so the billed amount is still what is earned. Either way the months
  ahead already recognize what they should.
* **Wait for the proration invoice.** It may come a month later, or never (no proration);
  keeping the journey open for it would only breach its SLA.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from connectors.base import PermanentError, WebhookEnvelope
from connectors.stripe import mapping as stripe_mapping
from connectors.stripe.mapping import SubscriptionUpdate
from sync.errors import DataDefect, StepSkipped
from sync.journeys import JourneyType, StepContext, StepDef
from sync.models import ExceptionCase
from sync.services.subscriptions import (
    subscription_amendment_record,
    subscription_apply_version,
    subscription_scheduled_end_record,
)

Cat = ExceptionCase.Category

_PRICE_KEYS = ("items", "plan", "quantity")
_CANCEL_KEYS = ("cancel_at_period_end", "cancel_at")


def subscription_update_of(ctx: StepContext) -> SubscriptionUpdate:
    """The journey's event as a ``SubscriptionUpdate``; an unreadable one is a data defect."""
    payload = ctx.journey.source_event.payload
    try:
        return stripe_mapping.parse_subscription_update(payload["data"])
    except PermanentError as exc:
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"The subscription update could not be read: {exc.message}",
            context={"event_id": ctx.journey.source_event.source_event_id},
        ) from exc


def stale_reason(ctx: StepContext, held) -> str:
    return (
        f"stale: this update is from {ctx.journey.business_at:%Y-%m-%d %H:%M:%S}, we hold "
        f"subscription {ctx.journey.source_event.payload['data']['object']['id']} as of "
        f"{held:%Y-%m-%d %H:%M:%S}"
    )


def record_amendment(ctx: StepContext) -> dict[str, Any]:
    """Bring the subscription to this version and record MRR before and after."""
    update = subscription_update_of(ctx)
    if not update.amended:  # dispatch's trigger should not have started us; say so, not fail
        raise StepSkipped("not an amendment: neither price nor quantity changed")
    obj = ctx.journey.source_event.payload["data"]["object"]
    correlation_id = str(ctx.journey.correlation_id)
    event_id = ctx.journey.source_event.source_event_id
    with transaction.atomic():
        row, newer = subscription_apply_version(
            sub=stripe_mapping.parse_subscription(obj), event_at=ctx.journey.business_at
        )
        if newer is not None:
            raise StepSkipped(stale_reason(ctx, newer), result={"applied": False})
        result = subscription_amendment_record(
            subscription=row,
            currency=update.currency,
            before=update.previous_items or (),
            after=update.items,
            event_id=event_id,
            correlation_id=correlation_id,
        )
        if update.cancellation_changed:
            result.update(
                subscription_scheduled_end_record(
                    subscription=row,
                    scheduled_end=update.scheduled_end,
                    requested_at=update.canceled_at,
                    cancel_at_period_end=update.cancel_at_period_end,
                    journey_id=ctx.journey.pk,
                    event_id=event_id,
                    correlation_id=correlation_id,
                )
            )
    return {**result, "applied": True, "revenue_schedules": "unchanged (see amendment.py)"}


def _update(env: WebhookEnvelope) -> SubscriptionUpdate | None:
    try:
        return stripe_mapping.parse_subscription_update(env.payload.get("data") or {})
    except PermanentError:
        return None


def _previous(env: WebhookEnvelope) -> dict[str, Any]:
    return (env.payload.get("data") or {}).get("previous_attributes") or {}


def is_amendment(env: WebhookEnvelope) -> bool:
    """Price or quantity changed. An unreadable payload that names them is accepted, so its
    journey stops as a visible data defect rather than being dropped."""
    update = _update(env)
    if update is None:
        return any(k in _previous(env) for k in _PRICE_KEYS)
    return update.amended


def is_cancellation_change(env: WebhookEnvelope) -> bool:
    """The scheduled end was set, moved or lifted, and nothing else an amendment records."""
    update = _update(env)
    if update is None:
        return any(k in _previous(env) for k in _CANCEL_KEYS) and not is_amendment(env)
    return update.cancellation_changed and not update.amended


def business_key(env: WebhookEnvelope) -> str:
    return f"{env.object_id}:{env.event_id}"


def aggregate_key(env: WebhookEnvelope) -> str:
    return f"stripe:{env.object_id}"


JOURNEY = JourneyType(
    name="amendment",
    source_system="stripe",
    event_types=frozenset({"customer.subscription.updated"}),
    steps=(
        StepDef(
            "record_amendment",
            record_amendment,
            "Bring the subscription to this version; record MRR before and after",
        ),
    ),
    business_key=business_key,
    aggregate_key=aggregate_key,
    default_sla_minutes=60,
    accepts=is_amendment,
)
