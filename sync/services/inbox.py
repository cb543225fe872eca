"""Accepting inbound events into the inbox, exactly once per source event id."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
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


# --- reading the inbox by what a payload names --------------------------------------------------

_PATH_PART = re.compile(r"^[a-z_]+$")


def inbox_events_naming(
    event_type: str,
    paths: dict[tuple[str, ...], Sequence[str]],
    *,
    source_system: str = "stripe",
    newest_first: bool = False,
) -> Iterable[InboundEvent]:
    """Events of ``event_type`` (or, ending in ``.``, of every type it starts) whose payload
    holds, at any of ``paths``, one of that path's values; oldest business time first (or
    newest). Journeys use it to find the events that name an object they wait for.

    On PostgreSQL the paths and the type are written into the SQL as literals, so each
    (type, path) pair the journeys ask for can have a partial expression index over just
    those events (migrations 0015, 0016): a lookup stays an index scan however big the inbox
    grows. Paths are the journeys' constants, checked here, never input."""
    paths = {path: sorted(set(values)) for path, values in paths.items() if values}
    if not paths:
        return []
    for path in paths:
        if not all(_PATH_PART.match(part) for part in path):
            raise ValueError(f"not a payload path: {path!r}")
    if not _PATH_PART.match(event_type.replace(".", "_")):
        raise ValueError(f"not an event type: {event_type!r}")
    prefix = event_type.endswith(".")
    if connection.vendor == "postgresql":
        kind = f"event_type LIKE '{event_type}%%'" if prefix else f"event_type = '{event_type}'"
        # One index probe per value and path: a LATERAL subquery behind OFFSET 0 (a fence
        # the planner does not flatten). With the values as = ANY(array) the planner, for a
        # claim's thousands of values, chose to read every event of the type and filter
        # (0.5-0.8 s a batch at 1M events, plus JIT compiling the plan).
        probes = " UNION ALL ".join(
            f"SELECT e.* FROM unnest(%(p{n})b::text[]) AS v(ref) CROSS JOIN LATERAL ("  # noqa: S608
            f"SELECT * FROM sync_inboundevent WHERE (payload #>> '{{{','.join(path)}}}') = v.ref"
            f" AND {kind} AND source_system = %(source)s OFFSET 0) AS e"
            for n, path in enumerate(paths)
        )
        direction = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT * FROM (SELECT DISTINCT ON (x.id) x.* FROM ({probes}) AS x ORDER BY x.id)"  # noqa: S608 (checked literals)
            f" AS y ORDER BY occurred_at {direction}, id {direction}"
        )
        params: dict[str, Any] = {"source": source_system}
        params.update({f"p{n}": values for n, values in enumerate(paths.values())})
        return InboundEvent.objects.raw(sql, params)
    q = Q()
    for path, values in paths.items():
        q |= Q(**{f"payload__{'__'.join(path)}__in": values})
    kind_q = Q(event_type__startswith=event_type) if prefix else Q(event_type=event_type)
    order = ("-occurred_at", "-pk") if newest_first else ("occurred_at", "pk")
    return InboundEvent.objects.filter(kind_q, q, source_system=source_system).order_by(*order)
