"""Subscriptions after billing changed them: the row at the event's version, the MRR an
amendment moves, and the end a cancellation schedules.

Where things are kept (no schema of their own yet): the ``Subscription`` row holds items,
status and period as dispatch and these services last applied them; MRR before and after an
amendment and the scheduled end live in the journey's context and in an ``AuditEntry`` on the
subscription (``subscription.amend``, ``subscription.end_scheduled``,
``subscription.end_unscheduled``). ``subscription_scheduled_end_find`` reads the newest one
back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from connectors.base import BillingSubscription
from connectors.stripe.mapping import SubscriptionItemPrice
from sync.accounting.mrr import Mrr, PricedItem, mrr
from sync.models import Journey, Subscription
from sync.services.audit import audit_record

# Journey types whose context may carry ``scheduled_end`` (an amendment that also changes the
# cancellation records it too, so one event never needs two journeys).
SCHEDULE_JOURNEY_TYPES = ("amendment", "cancellation_scheduled")


def subscription_mrr(items: Iterable[SubscriptionItemPrice]) -> Mrr:
    """MRR (minor units per month) of billing's priced items; see ``sync.accounting.mrr``."""
    return mrr(
        PricedItem(
            price_ref=i.price_ref,
            quantity=i.quantity,
            unit_amount=Decimal(i.unit_amount_decimal) if i.unit_amount_decimal else None,
            interval=i.interval,
            interval_count=i.interval_count,
            metered=i.metered,
            divide_by=i.divide_by,
            round_up=i.round_up,
        )
        for i in items
    )


def items_summary(items: Iterable[SubscriptionItemPrice]) -> list[dict[str, Any]]:
    return [
        {
            "price": i.price_ref,
            "product": i.product_ref,
            "quantity": i.quantity,
            "unit_amount": i.unit_amount_decimal,
            "interval": f"{i.interval_count} {i.interval}" if i.interval_count > 1 else i.interval,
            "usage_type": i.usage_type,
        }
        for i in items
    ]


def subscription_fields(sub: BillingSubscription) -> dict[str, Any]:
    """The ``Subscription`` row's values from the billing subscription (its master data)."""
    return {
        "customer_ref": sub.customer_ref,
        "status": sub.status,
        "currency": sub.currency,
        "current_period_start": sub.current_period_start,
        "current_period_end": sub.current_period_end,
        "items": [list(i) for i in sub.items],
    }


def subscription_apply_version(
    *, sub: BillingSubscription, event_at: dt.datetime
) -> tuple[Subscription, dt.datetime | None]:
    """Lock the subscription row and bring it to the event's version.

    Returns the row and, when we already hold a newer version, that version's time (the row
    is then left as it is: the event is stale). A row older than the event, or none, is
    written from the event (dispatch normally did so already). Call inside a transaction; the
    lock holds until it ends, so dispatch cannot move the row on meanwhile.
    """
    row = (
        Subscription.objects.select_for_update()
        .filter(source_system="stripe", source_id=sub.source_id)
        .first()
    )
    if row is not None and row.source_updated_at and row.source_updated_at > event_at:
        return row, row.source_updated_at
    fields = {**subscription_fields(sub), "source_updated_at": event_at}
    if row is None:
        row = Subscription.objects.create(source_system="stripe", source_id=sub.source_id, **fields)
    elif row.source_updated_at != event_at:
        for name, value in fields.items():
            setattr(row, name, value)
        row.save(update_fields=list(fields))
    return row, None


def subscription_amendment_record(
    *,
    subscription: Subscription,
    currency: str,
    before: Iterable[SubscriptionItemPrice],
    after: Iterable[SubscriptionItemPrice],
    event_id: str,
    correlation_id: str,
) -> dict[str, Any]:
    """Record a change of price or quantity: MRR before and after (minor units per month),
    audited on the subscription. Returns the figures for the journey's context.

    No revenue schedule changes: a schedule belongs to the invoice line that billed it, and a
    mid-cycle change reaches the ledger as proration lines on a later invoice, each with its
    own service period and schedule (invoice_to_ledger), so the months ahead already net to
    what the new price earns. Call inside the transaction that locked the row.
    """
    before, after = list(before), list(after)
    old, new = subscription_mrr(before), subscription_mrr(after)
    change = new.minor - old.minor
    figures = {
        "subscription": subscription.source_id,
        "currency": currency,
        "mrr_before_minor": old.minor,
        "mrr_after_minor": new.minor,
        "mrr_change_minor": change,
        "change": "upgrade" if change > 0 else "downgrade" if change < 0 else "no_mrr_change",
        "items_before": items_summary(before),
        "items_after": items_summary(after),
        "metered_prices": sorted(set(old.metered) | set(new.metered)),
        "unpriced_prices": sorted(set(old.unpriced) | set(new.unpriced)),
        "mrr_complete": old.complete and new.complete,
    }
    audit_record(
        actor=None,
        action="subscription.amend",
        obj=subscription,
        before={"mrr_minor": old.minor, "items": figures["items_before"]},
        after={"mrr_minor": new.minor, "items": figures["items_after"], "event": event_id},
        correlation_id=correlation_id,
    )
    return figures


@dataclass(frozen=True)
class ScheduledEnd:
    """The newest scheduled end we recorded for a subscription (``end`` None: lifted)."""

    end: dt.date | None
    recorded_at: dt.datetime  # the business time of the event that set it
    journey_id: int


def subscription_scheduled_end_find(
    subscription_ref: str, *, exclude_journey_id: int | None = None
) -> ScheduledEnd | None:
    """The scheduled end as the newest completed journey that recorded one left it."""
    journeys = Journey.objects.filter(
        journey_type__in=SCHEDULE_JOURNEY_TYPES,
        aggregate_key=f"stripe:{subscription_ref}",
        state=Journey.State.COMPLETED,
    ).order_by("-business_at", "-pk")
    if exclude_journey_id is not None:
        journeys = journeys.exclude(pk=exclude_journey_id)
    for journey in journeys.only("pk", "business_at", "context"):
        if "scheduled_end" in journey.context:
            value = journey.context["scheduled_end"]
            return ScheduledEnd(
                end=dt.date.fromisoformat(value) if value else None,
                recorded_at=journey.business_at,
                journey_id=journey.pk,
            )
    return None


def subscription_scheduled_end_record(
    *,
    subscription: Subscription,
    scheduled_end: dt.datetime | None,
    requested_at: dt.datetime | None,
    cancel_at_period_end: bool,
    journey_id: int,
    event_id: str,
    correlation_id: str,
) -> dict[str, Any]:
    """Record that the subscription is now set to end at ``scheduled_end`` (None: the schedule
    was lifted, i.e. reactivated). No ledger effect: revenue stops only when the subscription
    actually ends (``customer.subscription.deleted``). Audited on the subscription; returns
    what the journey's context keeps. Call inside the transaction that locked the row."""
    previous = subscription_scheduled_end_find(
        subscription.source_id, exclude_journey_id=journey_id
    )
    end_day = scheduled_end.date() if scheduled_end else None
    result = {
        "subscription": subscription.source_id,
        "scheduled_end": end_day.isoformat() if end_day else None,
        "scheduled_end_at": scheduled_end.isoformat() if scheduled_end else None,
        "cancel_at_period_end": cancel_at_period_end,
        "cancellation": "scheduled" if end_day or cancel_at_period_end else "reactivated",
        "requested_at": requested_at.isoformat() if requested_at and end_day else None,
        "previous_scheduled_end": previous.end.isoformat() if previous and previous.end else None,
    }
    audit_record(
        actor=None,
        action="subscription.end_scheduled" if end_day else "subscription.end_unscheduled",
        obj=subscription,
        before={"scheduled_end": result["previous_scheduled_end"]},
        after={
            "scheduled_end": result["scheduled_end"],
            "cancel_at_period_end": cancel_at_period_end,
            "event": event_id,
        },
        correlation_id=correlation_id,
    )
    return result
