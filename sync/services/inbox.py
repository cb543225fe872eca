"""Accepting inbound events into the inbox, exactly once per source event id."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from connectors.base import WebhookEnvelope
from sync.models import InboundEvent, WebhookRejection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    event: InboundEvent
    created: bool


def _aggregate_key(source_system: str, envelope: WebhookEnvelope) -> str:
    obj = envelope.payload.get("data", {}).get("object", {})
    if envelope.object_type == "invoice" and obj.get("customer"):
        return f"{source_system}:{obj['customer']}"
    return f"{source_system}:{envelope.object_id}"


def inbound_event_receive(*, source_system: str, envelope: WebhookEnvelope) -> Received:
    """Store a verified event in the inbox in one short transaction.

    A redelivery (same source and event id) changes nothing and reports ``created=False``.
    Dispatch to a journey happens after commit, in a background task.
    """
    from sync import tasks

    try:
        with transaction.atomic():
            event = InboundEvent.objects.create(
                source_system=source_system,
                source_event_id=envelope.event_id,
                event_type=envelope.event_type,
                api_version=envelope.api_version or "",
                occurred_at=envelope.created,
                aggregate_key=_aggregate_key(source_system, envelope),
                payload=envelope.payload,
                enqueued_at=timezone.now(),
            )
            transaction.on_commit(tasks.kick_dispatch)
    except IntegrityError:
        event = InboundEvent.objects.get(
            source_system=source_system, source_event_id=envelope.event_id
        )
        log.info("duplicate delivery of %s:%s ignored", source_system, envelope.event_id)
        return Received(event=event, created=False)
    log.info("accepted %s:%s %s", source_system, envelope.event_id, envelope.event_type)
    return Received(event=event, created=True)


def inbound_events_receive_bulk(
    *, source_system: str, envelopes: list[WebhookEnvelope], batch_size: int = 500
) -> int:
    """Store many verified events (a file drop, a poll, a backfill) in the inbox, in batches
    of ``batch_size`` per transaction. Events already held (same source and event id) are
    left untouched. Returns how many were new. Dispatch is kicked once per batch after
    commit; the sweeper picks up anything the kick misses.
    """
    from sync import tasks

    created = 0
    for start in range(0, len(envelopes), batch_size):
        chunk = envelopes[start : start + batch_size]
        now = timezone.now()
        with transaction.atomic():
            rows, seen = [], set()
            for env in chunk:
                if env.event_id in seen:
                    continue
                seen.add(env.event_id)
                rows.append(
                    InboundEvent(
                        source_system=source_system,
                        source_event_id=env.event_id,
                        event_type=env.event_type,
                        api_version=env.api_version or "",
                        occurred_at=env.created,
                        aggregate_key=_aggregate_key(source_system, env),
                        payload=env.payload,
                        enqueued_at=now,
                    )
                )
            held = InboundEvent.objects.filter(
                source_system=source_system, source_event_id__in=list(seen)
            )
            before = held.count()
            InboundEvent.objects.bulk_create(rows, ignore_conflicts=True)
            created += held.count() - before
            transaction.on_commit(tasks.kick_dispatch)
    log.info(
        "accepted %s new %s events in bulk (%s offered)", created, source_system, len(envelopes)
    )
    return created


def webhook_rejection_count(*, source_system: str, reason: str) -> None:
    """Count a rejected delivery (per source, reason and day). Stores nothing of the body."""
    now = timezone.now()
    with transaction.atomic():
        row, created = WebhookRejection.objects.select_for_update().get_or_create(
            source_system=source_system,
            reason=reason,
            day=now.date(),
            defaults={"count": 1, "last_at": now},
        )
        if not created:
            WebhookRejection.objects.filter(pk=row.pk).update(count=F("count") + 1, last_at=now)
