"""From inbox to journey: each accepted event starts at most one journey (or updates master
data), exactly once, however often it is dispatched."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction

from connectors.base import PermanentError, WebhookEnvelope
from connectors.stripe import mapping as stripe_mapping
from sync.journeys import JourneyType, journey_type_for_event
from sync.models import Customer, InboundEvent, Journey, SlaPolicy, Step, Subscription
from sync.services.bulk import objs_insert
from sync.services.subscriptions import subscription_fields

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


def _sla_minutes(jt: JourneyType, policies: dict[str, SlaPolicy] | None = None) -> tuple[int, int]:
    """(warning, target) minutes: the admins' policy, else the type's default. ``policies``:
    every policy by journey type, read once by a caller starting many journeys."""
    if policies is None:
        policy = SlaPolicy.objects.filter(journey_type=jt.name).first()
    else:
        policy = policies.get(jt.name)
    if policy:
        return policy.warning_minutes, policy.target_minutes
    return int(jt.default_sla_minutes * 0.75), jt.default_sla_minutes


def _journey_row(
    jt: JourneyType,
    *,
    business_key: str,
    aggregate_key: str,
    business_at: dt.datetime,
    event: InboundEvent | None,
    source_system: str,
    context: dict | None,
    legal_entity_id: int | None,
    sla: tuple[int, int],
) -> dict:
    warning, target = sla
    return {
        "aggregate_key": aggregate_key,
        "source_event": event,
        "source_system": event.source_system if event else source_system,
        "business_at": business_at,
        "context": context or {},
        "legal_entity_id": legal_entity_id,
        "sla_warning_at": business_at + dt.timedelta(minutes=warning),
        "sla_due_at": business_at + dt.timedelta(minutes=target),
    }


def _steps_for(jt: JourneyType, journey: Journey) -> list[Step]:
    return [
        Step(
            journey=journey,
            name=s.name,
            position=i,
            idempotency_key=f"{journey.journey_type}:{journey.business_key}:{s.name}",
        )
        for i, s in enumerate(jt.steps, start=1)
    ]


# New journeys' steps in one statement over arrays (PostgreSQL): building a model object per
# step for bulk_create was a tenth of a worker's time while the inbox filled.
_STEPS_INSERT_SQL = """
INSERT INTO sync_step (journey_id, name, position, state, attempts, idempotency_key,
                       error_class, error_message)
SELECT v.jid, v.name, v.pos, 'pending', 0, v.ikey, '', ''
FROM unnest(%(jids)b::bigint[], %(names)b::text[], %(positions)b::int[], %(keys)b::text[])
    AS v(jid, name, pos, ikey)
"""


def _steps_insert(journeys: list[tuple[Journey, JourneyType]]) -> None:
    """Every step of these new journeys, pending (``_steps_for``'s rows)."""
    if connection.vendor != "postgresql":
        Step.objects.bulk_create(
            [step for journey, jt in journeys for step in _steps_for(jt, journey)]
        )
        return
    rows = [
        (journey.pk, s.name, i, f"{journey.journey_type}:{journey.business_key}:{s.name}")
        for journey, jt in journeys
        for i, s in enumerate(jt.steps, start=1)
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            _STEPS_INSERT_SQL,
            {
                "jids": [r[0] for r in rows],
                "names": [r[1] for r in rows],
                "positions": [r[2] for r in rows],
                "keys": [r[3] for r in rows],
            },
        )


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

    journey, created = Journey.objects.get_or_create(
        journey_type=jt.name,
        business_key=business_key,
        defaults=_journey_row(
            jt,
            business_key=business_key,
            aggregate_key=aggregate_key,
            business_at=business_at,
            event=event,
            source_system=source_system,
            context=context,
            legal_entity_id=legal_entity_id,
            sla=_sla_minutes(jt),
        ),
    )
    if created:
        Step.objects.bulk_create(_steps_for(jt, journey))
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


_UNSET = object()


def _master_row(event: InboundEvent) -> tuple[type, str, dict[str, Any]] | None:
    """``(model, source id, field values)`` of the master data an event carries, or None.
    Raises ``PermanentError`` for a payload that cannot be read."""
    obj = event.payload.get("data", {}).get("object", {})
    kind = obj.get("object")
    if kind == "customer":
        c = stripe_mapping.parse_customer(obj)
        return (
            Customer,
            c.source_id,
            {
                "name": c.name,
                "email": c.email,
                "country": c.country,
                "currency": c.currency,
                "metadata": c.metadata,
            },
        )
    if kind == "subscription":
        sub = stripe_mapping.parse_subscription(obj)
        return Subscription, sub.source_id, subscription_fields(sub)
    return None


def master_data_apply(events: list[InboundEvent]) -> list[str | PermanentError | None]:
    """Keep Customer and Subscription at the newest source version, for events in source
    order: the versions we hold read in one
    query per model, each event compared with the newest version so far (ours or an earlier
    event's of the batch), and the newest of each object written in one upsert per model
    whose update only applies over an older version (``WHERE source_updated_at <= ...``), so
    two dispatchers can never put an older version over a newer one. Outcome per event:
    ``"applied"``, ``"stale: ..."``, None (no master data) or the ``PermanentError``."""
    outcomes: list[str | PermanentError | None] = [None] * len(events)
    parsed: dict[int, tuple[type, tuple[str, str], dict[str, Any]]] = {}
    for i, event in enumerate(events):
        try:
            row = _master_row(event)
        except PermanentError as exc:
            outcomes[i] = exc
            continue
        if row is not None:
            model, source_id, values = row
            parsed[i] = (model, (event.source_system, source_id), values)
    held: dict[tuple[type, tuple[str, str]], Any] = {}
    for model in {m for m, _, _ in parsed.values()}:
        keys = {k for m, k, _ in parsed.values() if m is model}
        for system, source_id, version in model.objects.filter(
            source_system__in={k[0] for k in keys}, source_id__in={k[1] for k in keys}
        ).values_list("source_system", "source_id", "source_updated_at"):
            held[(model, (system, source_id))] = version
    newest: dict[tuple[type, tuple[str, str]], dict[str, Any]] = {}
    for i, (model, key, values) in parsed.items():
        event = events[i]
        version = held.get((model, key))
        if version and version > event.occurred_at:
            outcomes[i] = f"stale: we hold a newer version ({version:%Y-%m-%d %H:%M:%S})"
            continue
        held[(model, key)] = event.occurred_at
        newest[(model, key)] = {**values, "source_updated_at": event.occurred_at}
        outcomes[i] = "applied"
    for model in {m for m, _ in newest}:
        _upsert_newer(model, {k: v for (m, k), v in newest.items() if m is model})
    return outcomes


def _upsert_newer(model: type, rows: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Insert, or update where what we hold is not newer, one row per (system, source id)."""
    names = ["source_system", "source_id", *next(iter(rows.values()))]
    fields = [model._meta.get_field(name) for name in names]
    table = model._meta.db_table
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    updates = ", ".join(f"{quote(f.column)} = EXCLUDED.{quote(f.column)}" for f in fields[2:])
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params: list[Any] = []
    for (system, source_id), values in rows.items():
        row = {"source_system": system, "source_id": source_id, **values}
        params += [f.get_db_prep_save(row[f.name], connection) for f in fields]
    updated_at = quote("source_updated_at")
    sql = (
        f"INSERT INTO {quote(table)} ({columns}) VALUES {', '.join([one] * len(rows))} "  # noqa: S608
        f"ON CONFLICT ({quote('source_system')}, {quote('source_id')}) DO UPDATE SET {updates} "
        f"WHERE {quote(table)}.{updated_at} IS NULL "
        f"OR {quote(table)}.{updated_at} <= EXCLUDED.{updated_at}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _route(event: InboundEvent, master: Any = _UNSET) -> JourneyType | None:
    """Apply the event's master data (``master``: its outcome, when the caller applied a
    batch's at once) and settle its state, except for an event that starts a journey: that
    one is returned, for the caller to start the journey and say which."""
    jt = journey_type_for_event(event.source_system, event.event_type, envelope_of(event))
    # Customer and subscription payloads keep master data current, journey or not.
    outcome = master_data_apply([event])[0] if master is _UNSET else master
    if isinstance(outcome, PermanentError):
        event.state = InboundEvent.State.FAILED
        event.state_reason = outcome.message[:500]
        return None
    if jt is not None:
        return jt
    if event.event_type == "invoice_payment.paid":
        event.state = InboundEvent.State.APPLIED
        event.state_reason = "payment-to-invoice link kept for payment_to_ledger"
    elif outcome is None:
        event.state = InboundEvent.State.IGNORED
        event.state_reason = "no journey handles this event type yet"
    else:
        event.state = InboundEvent.State.APPLIED
        event.state_reason = outcome[:500]
    return None


def _started(event: InboundEvent, journey: Journey, created: bool) -> None:
    event.state = InboundEvent.State.DISPATCHED
    event.state_reason = (
        f"started journey {journey.pk}"
        if created
        else f"journey {journey.pk} already exists for {journey.business_key}"
    )


def inbound_event_dispatch(*, event_id: int) -> str:
    """Route one inbox event. Idempotent: only an event still in ``received`` is acted on."""
    with transaction.atomic():
        # A row another worker is dispatching is left to it.
        event = InboundEvent.objects.select_for_update(skip_locked=True).filter(pk=event_id).first()
        if event is None or event.state != InboundEvent.State.RECEIVED:
            return "already_dispatched"
        jt = _route(event)
        if jt is not None:
            journey, created = journey_start_for_event(jt=jt, event=event)
            _started(event, journey, created)
        event.save(update_fields=["state", "state_reason"])
    log.info("event %s -> %s (%s)", event_id, event.state, event.state_reason)
    return event.state


def _dispatch_batch(events: list[InboundEvent]) -> None:
    """Route locked ``received`` events (in source order) in the caller's transaction, as
    ``inbound_event_dispatch`` would one by one, with the journeys and their steps written in
    bulk: one read of the journeys that already exist, one insert of the new journeys, one of
    their steps, one update of the events."""
    policies = {p.journey_type: p for p in SlaPolicy.objects.all()}
    starting: list[tuple[InboundEvent, JourneyType, str, str]] = []
    for event, master in zip(events, master_data_apply(events), strict=True):
        jt = _route(event, master)
        if jt is not None:
            env = envelope_of(event)
            starting.append((event, jt, jt.business_key(env), jt.aggregate_key(env)))
    known: dict[tuple[str, str], Journey] = {}
    if starting:
        for journey in Journey.objects.filter(
            journey_type__in={jt.name for _, jt, _, _ in starting},
            business_key__in={key for _, _, key, _ in starting},
        ).only("pk", "journey_type", "business_key"):
            known[(journey.journey_type, journey.business_key)] = journey
    new: dict[tuple[str, str], tuple[Journey, JourneyType]] = {}
    for event, jt, key, aggregate in starting:
        if (jt.name, key) in known or (jt.name, key) in new:
            continue
        row = _journey_row(
            jt,
            business_key=key,
            aggregate_key=aggregate,
            business_at=event.occurred_at,
            event=event,
            source_system="",
            context=None,
            legal_entity_id=None,
            sla=_sla_minutes(jt, policies),
        )
        new[(jt.name, key)] = (Journey(journey_type=jt.name, business_key=key, **row), jt)
    if new:
        objs_insert([journey for journey, _ in new.values()])
        _steps_insert([(journey, jt) for journey, jt in new.values()])
    first_seen: set[tuple[str, str]] = set()
    for event, jt, key, _ in starting:
        if (jt.name, key) in new and (jt.name, key) not in first_seen:
            first_seen.add((jt.name, key))
            _started(event, new[(jt.name, key)][0], True)
        else:
            journey = known.get((jt.name, key)) or new[(jt.name, key)][0]
            _started(event, journey, False)
    _states_save(events)


# The batch's outcomes in one statement over arrays (PostgreSQL): Django's bulk_update writes
# a CASE per field with a branch per row, which PostgreSQL parses anew for every batch.
_STATES_SQL = """
UPDATE sync_inboundevent AS e SET state = v.state, state_reason = v.reason
FROM unnest(%(ids)b::bigint[], %(states)b::text[], %(reasons)b::text[]) AS v(id, state, reason)
WHERE e.id = v.id
"""


def _states_save(events: list[InboundEvent]) -> None:
    if connection.vendor != "postgresql":
        InboundEvent.objects.bulk_update(events, ["state", "state_reason"])
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _STATES_SQL,
            {
                "ids": [e.pk for e in events],
                "states": [str(e.state) for e in events],
                "reasons": [e.state_reason[:500] for e in events],
            },
        )


def _dispatch_alone(event_id: int) -> str:
    """Dispatch one event of a failed batch. An event that cannot be dispatched because of
    what it holds (a value the database refuses, a payload the code did not expect) is marked
    ``failed`` with the reason, kept for a person to look at, instead of failing every later
    dispatch: the inbox is taken oldest first, so one bad event would hold up all behind it.
    A database that is unavailable is not the event's fault: that error goes up, the event
    stays ``received`` and is taken again."""
    try:
        return inbound_event_dispatch(event_id=event_id)
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:
        log.exception("event %s could not be dispatched", event_id)
        reason = f"Could not be dispatched ({type(exc).__name__}: {exc})"
        InboundEvent.objects.filter(pk=event_id, state=InboundEvent.State.RECEIVED).update(
            state=InboundEvent.State.FAILED, state_reason=reason[:500]
        )
        return InboundEvent.State.FAILED


def inbound_events_dispatch_received(*, limit: int = 500, follow_up: bool = True) -> int:
    """Dispatch inbox events still ``received``, oldest business time first (source order):
    up to ``limit`` locked (``SKIP LOCKED``) and routed in one transaction with bulk writes.
    If the batch fails as a whole (a journey created at the same moment by someone else, an
    unexpected error), nothing of it is kept and its events are dispatched one by one, each in
    its own transaction, as ``inbound_event_dispatch`` does. Returns how many this call
    moved. With ``follow_up``, a full batch queues another dispatch task, so a bulk load
    drains without the sweeper."""
    from sync import tasks

    ids: list[int] = []
    try:
        with transaction.atomic():
            events = list(
                InboundEvent.objects.select_for_update(skip_locked=True)
                .filter(state=InboundEvent.State.RECEIVED)
                .order_by("occurred_at", "pk")[:limit]
            )
            ids = [event.pk for event in events]
            if events:
                _dispatch_batch(events)
                transaction.on_commit(tasks.kick_advance)
        done = len(ids)
        for event in events:
            log.info("event %s -> %s (%s)", event.pk, event.state, event.state_reason)
    except Exception:
        log.warning(
            "batch dispatch of %d events failed; one by one instead", len(ids), exc_info=True
        )
        done = sum(_dispatch_alone(event_id) != "already_dispatched" for event_id in ids)
    if follow_up and len(ids) == limit:
        tasks.kick_dispatch()
    return done
