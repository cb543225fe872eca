"""From inbox to journey: each accepted event starts at most one journey (or updates master
data), exactly once, however often it is dispatched."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction

from connectors.base import PermanentError, WebhookEnvelope
from connectors.stripe import mapping as stripe_mapping
from sync.journeys import JourneyType, journey_type_for_event
from sync.models import Customer, InboundEvent, Journey, SlaPolicy, Step, Subscription

log = logging.getLogger(__name__)


def envelope_of(event: InboundEvent) -> WebhookEnvelope:
    obj = event.payload.get("data", {}).get("object", {})
    return WebhookEnvelope(
        event_id=event.source_event_id,
        event_type=event.event_type,
        created=event.occurred_at,
        api_version=event.api_version,
        object_type=str(obj.get("object", "")),
        object_id=str(obj.get("id", "")),
        payload=event.payload,
    )


def _sla_minutes(jt: JourneyType) -> tuple[int, int]:
    policy = SlaPolicy.objects.filter(journey_type=jt.name).first()
    if policy:
        return policy.warning_minutes, policy.target_minutes
    return int(jt.default_sla_minutes * 0.75), jt.default_sla_minutes


def journey_start(
    *,
    jt: JourneyType,
    business_key: str,
    aggregate_key: str,
    business_at: dt.datetime,
    event: InboundEvent | None = None,
    source_system: str = "",
    context: dict | None = None,
    legal_entity_id: int | None = None,
) -> tuple[Journey, bool]:
    """Create the journey and all its steps, or return the one that already exists for this
    business key (a second event about the same invoice never starts a second posting).
    Call inside a transaction: the first step is enqueued on commit."""
    from sync import tasks

    warning, target = _sla_minutes(jt)
    journey, created = Journey.objects.get_or_create(
        journey_type=jt.name,
        business_key=business_key,
        defaults={
            "aggregate_key": aggregate_key,
            "source_event": event,
            "source_system": event.source_system if event else source_system,
            "business_at": business_at,
            "context": context or {},
            "legal_entity_id": legal_entity_id,
            "sla_warning_at": business_at + dt.timedelta(minutes=warning),
            "sla_due_at": business_at + dt.timedelta(minutes=target),
        },
    )
    if created:
        Step.objects.bulk_create(
            Step(
                journey=journey,
                name=s.name,
                position=i,
                idempotency_key=f"{journey.journey_type}:{journey.business_key}:{s.name}",
            )
            for i, s in enumerate(jt.steps, start=1)
        )
        transaction.on_commit(tasks.kick_advance)
    return journey, created


def journey_start_for_event(*, jt: JourneyType, event: InboundEvent) -> tuple[Journey, bool]:
    env = envelope_of(event)
    return journey_start(
        jt=jt,
        business_key=jt.business_key(env),
        aggregate_key=jt.aggregate_key(env),
        business_at=event.occurred_at,
        event=event,
    )


def _apply_master_data(event: InboundEvent) -> str | None:
    """Keep Customer and Subscription at the newest source version; returns the outcome, or
    None when the event type carries no master data."""
    obj = event.payload.get("data", {}).get("object", {})
    kind = obj.get("object")
    if kind == "customer":
        c = stripe_mapping.parse_customer(obj)
        model, defaults = (
            Customer,
            {
                "name": c.name,
                "email": c.email,
                "country": c.country,
                "currency": c.currency,
                "metadata": c.metadata,
            },
        )
        source_id = c.source_id
    elif kind == "subscription":
        s = stripe_mapping.parse_subscription(obj)
        model, defaults = (
            Subscription,
            {
                "customer_ref": s.customer_ref,
                "status": s.status,
                "currency": s.currency,
                "current_period_start": s.current_period_start,
                "current_period_end": s.current_period_end,
                "items": [list(i) for i in s.items],
            },
        )
        source_id = s.source_id
    else:
        return None
    current = model.objects.filter(source_system=event.source_system, source_id=source_id).first()
    if current and current.source_updated_at and current.source_updated_at > event.occurred_at:
        return f"stale: we hold a newer version ({current.source_updated_at:%Y-%m-%d %H:%M:%S})"
    model.objects.update_or_create(
        source_system=event.source_system,
        source_id=source_id,
        defaults={**defaults, "source_updated_at": event.occurred_at},
    )
    return "applied"


def inbound_event_dispatch(*, event_id: int) -> str:
    """Route one inbox event. Idempotent: only an event still in ``received`` is acted on."""
    with transaction.atomic():
        # A row another worker is dispatching is left to it.
        event = InboundEvent.objects.select_for_update(skip_locked=True).filter(pk=event_id).first()
        if event is None or event.state != InboundEvent.State.RECEIVED:
            return "already_dispatched"
        jt = journey_type_for_event(event.source_system, event.event_type, envelope_of(event))
        try:
            # Customer and subscription payloads keep master data current, journey or not.
            outcome = _apply_master_data(event)
        except PermanentError as exc:
            event.state = InboundEvent.State.FAILED
            event.state_reason = exc.message[:500]
            event.save(update_fields=["state", "state_reason"])
            return event.state
        if jt is not None:
            journey, created = journey_start_for_event(jt=jt, event=event)
            event.state = InboundEvent.State.DISPATCHED
            event.state_reason = (
                f"started journey {journey.pk}"
                if created
                else f"journey {journey.pk} already exists for {journey.business_key}"
            )
        elif event.event_type == "invoice_payment.paid":
            event.state = InboundEvent.State.APPLIED
            event.state_reason = "payment-to-invoice link kept for payment_to_ledger"
        elif outcome is None:
            event.state = InboundEvent.State.IGNORED
            event.state_reason = "no journey handles this event type yet"
        else:
            event.state = InboundEvent.State.APPLIED
            event.state_reason = outcome[:500]
        event.save(update_fields=["state", "state_reason"])
    log.info("event %s -> %s (%s)", event_id, event.state, event.state_reason)
    return event.state


def inbound_events_dispatch_received(*, limit: int = 500, follow_up: bool = True) -> int:
    """Dispatch inbox events still ``received``, oldest business time first (source order),
    each in its own short transaction. Returns how many this call moved. With ``follow_up``,
    a full batch queues another dispatch task, so a bulk load drains without the sweeper."""
    from sync import tasks

    ids = list(
        InboundEvent.objects.filter(state=InboundEvent.State.RECEIVED)
        .order_by("occurred_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    done = 0
    for event_id in ids:
        if inbound_event_dispatch(event_id=event_id) != "already_dispatched":
            done += 1
    if follow_up and len(ids) == limit:
        tasks.kick_dispatch()
    return done
