"""The journey engine: claims a step, runs it, records the outcome, schedules what follows.

Guarantees (see docs/architecture.md):

* A step runs only after it is claimed by a conditional UPDATE; two workers never run the
  same step at once, and a claim older than ``CLAIM_TTL_SECONDS`` is taken again (a crashed
  worker costs latency, not work).
* The outcome is written only by the holder of the claim token.
* Transient connector errors are retried with exponential backoff and full jitter, never
  sooner than the remote's ``Retry-After``, at most ``MAX_STEP_ATTEMPTS`` times; then the
  journey goes to the exception queue. Data defects go there at once.
* django-q2 only carries ids; ``sweep`` re-enqueues anything due that is not moving.
* A step whose connector's circuit is open or which is paused is put back (``waiting``)
  without spending an attempt; see ``sync.services.connector_health``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from connectors import http
from connectors.base import AuthError, ConnectorError
from sync.errors import ConnectorHeldBack, DataDefect, DependencyPending, StepSkipped
from sync.journeys import StepContext, journey_type
from sync.models import (
    ConnectorHealth,
    ExceptionCase,
    InboundEvent,
    Journey,
    Notification,
    Step,
)
from sync.root_causes import root_cause_of
from sync.services.audit import audit_entry_build, audit_record
from sync.services.bulk import objs_insert
from sync.services.connector_health import (
    PAUSED_RECHECK,
    WAITING_ERROR_CLASS,
    ConnectorGuard,
    connector_gate,
    record_auth_failure,
    record_success,
    record_transient_failure,
)
from sync.services.connector_health import label as connector_label
from sync.services.memo import reference_memo

log = logging.getLogger(__name__)
Cat = ExceptionCase.Category


def _conf(key: str) -> Any:
    return settings.RCT[key]


def _earlier_unfinished() -> Exists:
    return Exists(
        Step.objects.filter(journey=OuterRef("journey"), position__lt=OuterRef("position")).exclude(
            state__in=Step.DONE
        )
    )


# Order per aggregate, at journey level. A journey "holds" its aggregate while it is running
# (a step in flight, or between two steps of one worker's run); an earlier one (source order:
# business time, then arrival) that is pending or retrying goes first. A waiting journey (on a
# dependency or a connector) holds nothing: what it waits for may be the very journey behind
# it (a void delivered before its invoice). A running journey is not held back by an earlier
# one that arrived after it started (it finishes first; otherwise the two would wait on each
# other); of two running ones, which only a crash can leave, the earlier goes on.
BLOCKING_STATES = {Journey.State.PENDING, Journey.State.RUNNING, Journey.State.RETRYING}


def _sql_list(values) -> str:
    return ", ".join(f"'{v}'" for v in sorted(values))


_EARLIER = "(e.business_at < j.business_at OR (e.business_at = j.business_at AND e.id < j.id))"
_BUSY_SQL = f"""EXISTS (
    SELECT 1 FROM sync_journey e WHERE e.aggregate_key = j.aggregate_key AND e.id <> j.id
      AND e.state IN ({_sql_list(BLOCKING_STATES)})
      AND ((e.state = 'running' AND (j.state <> 'running' OR {_EARLIER}))
           OR (j.state <> 'running' AND e.state <> 'running' AND {_EARLIER})))"""  # noqa: S608
_DUE_SQL = f"""((s.state IN ({_sql_list(Step.RUNNABLE)})
        AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= %(now)s))
       OR (s.state = 'running' AND s.claimed_at < %(ttl)s))"""
_FIRST_UNFINISHED_SQL = f"""s.position = (
    SELECT MIN(p.position) FROM sync_step p
    WHERE p.journey_id = j.id AND p.state NOT IN ({_sql_list(Step.DONE)}))"""  # noqa: S608

# The claim as one statement, written out once: it runs for every step, and composing it with
# the ORM each time cost more than executing it. The state lists are the models' constants.
_CLAIM_SQL = f"""
UPDATE sync_step SET state = 'running', claim_token = %(token)s, claimed_at = %(now)s,
    attempts = attempts + 1, started_at = COALESCE(started_at, %(now)s), next_attempt_at = NULL
WHERE id IN (
    SELECT s.id FROM sync_step s JOIN sync_journey j ON j.id = s.journey_id
    WHERE s.id = %(step_id)s AND j.state IN ({_sql_list(Journey.ACTIVE)})
      AND {_DUE_SQL} AND {_FIRST_UNFINISHED_SQL} AND NOT {_BUSY_SQL})
"""  # noqa: S608 (constants only; values are parameters)
_JOURNEY_RUNNING_SQL = f"""
UPDATE sync_journey SET state = 'running', updated_at = %(now)s
WHERE id = (SELECT journey_id FROM sync_step WHERE id = %(step_id)s)
  AND state IN ({_sql_list(Journey.ACTIVE)})
"""  # noqa: S608
# Claimable steps, oldest journey first (journey ids follow dispatch, which follows source
# order). Driven from the active journeys and their first unfinished step, so a backlog of
# later steps waiting behind the first costs nothing.
_CANDIDATES_SQL = f"""
SELECT s.id FROM sync_journey j JOIN sync_step s ON s.journey_id = j.id
WHERE j.state IN ({_sql_list(Journey.ACTIVE)})
  AND {_FIRST_UNFINISHED_SQL} AND {_DUE_SQL} AND NOT {_BUSY_SQL}
  {{aggregate}}
ORDER BY j.id
LIMIT %(limit)s {{lock}}
"""  # noqa: S608


def _params(now: dt.datetime) -> dict[str, Any]:
    ttl = now - dt.timedelta(seconds=_conf("CLAIM_TTL_SECONDS"))
    ops = connection.ops
    return {
        "now": ops.adapt_datetimefield_value(now),
        "ttl": ops.adapt_datetimefield_value(ttl),
    }


def _due_step_ids(
    now: dt.datetime, limit: int, *, aggregate_key: str | None = None, lock: bool = False
) -> list[int]:
    """Steps that could be claimed now. ``lock``: lock their journeys (on PostgreSQL; the
    steps, for one aggregate) ``FOR UPDATE SKIP LOCKED``, so two workers selecting at once
    get different ones."""
    if connection.vendor == "postgresql" and not aggregate_key:
        sql = _CANDIDATES_LATERAL_SQL.format(lock=_PG_LOCK if lock else "")
        with connection.cursor() as cursor:
            cursor.execute(sql, {**_params(now), "limit": limit})
            return [row[0] for row in cursor.fetchall()]
    sql = _CANDIDATES_SQL.format(
        aggregate="AND j.aggregate_key = %(aggregate)s" if aggregate_key else "",
        lock="FOR UPDATE OF s SKIP LOCKED" if lock and connection.vendor == "postgresql" else "",
    )
    params = {**_params(now), "limit": limit, "aggregate": aggregate_key}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def step_claim(step_id: int, *, now: dt.datetime | None = None) -> uuid.UUID | None:
    """Atomically take a step that is due, whose journey is active, whose predecessors are
    done and whose aggregate is free (one step in flight per aggregate, in source order).
    Returns the claim token, or ``None`` when there is nothing to do."""
    with transaction.atomic():
        return _claim(step_id, now or timezone.now(), wait=True)


def _claim(step_id: int, now: dt.datetime, *, wait: bool) -> uuid.UUID | None:
    """The claim itself; call inside a transaction. On PostgreSQL it first takes a
    transaction-scoped advisory lock on the step's aggregate — waiting for it (``wait``) or
    giving up at once — so claims on one aggregate are serialized and two workers can never
    both see it free (SQLite serializes writers on its own)."""
    if connection.vendor == "postgresql":
        lock = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {lock}(hashtextextended(j.aggregate_key, 0)) "  # noqa: S608 (fixed names)
                "FROM sync_step s JOIN sync_journey j ON j.id = s.journey_id WHERE s.id = %s",
                [step_id],
            )
            row = cursor.fetchone()
        if row is None or row[0] is False:
            return None
    token = uuid.uuid4()
    token_value = Step._meta.get_field("claim_token").get_db_prep_value(token, connection)
    params = {**_params(now), "token": token_value, "step_id": step_id}
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, params)
        claimed = cursor.rowcount
        if claimed:
            # In the claim's transaction, so the next claim on this aggregate sees it held.
            cursor.execute(_JOURNEY_RUNNING_SQL, params)
    return token if claimed else None


def steps_claim_batch(limit: int = 50, *, now: dt.datetime | None = None) -> list[tuple]:
    """Claim up to ``limit`` due steps in one transaction: ``[(step_id, token), ...]``.

    The candidate rows are locked with ``SKIP LOCKED``, so two workers claiming at once take
    different steps; each is then claimed exactly as ``step_claim`` does, except that an
    aggregate another worker is claiming is passed over instead of waited for."""
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        return _claim_batch_pg(limit, now)
    claimed = []
    with transaction.atomic():
        candidates = _due_step_ids(now, limit, lock=True)
        for step_id in candidates:
            token = _claim(step_id, now, wait=False)
            if token is not None:
                claimed.append((step_id, token))
    return claimed


# The batch claim on PostgreSQL, in four statements whatever the batch size: candidates (with
# their aggregates) locked SKIP LOCKED; one per aggregate kept, the first in candidate order,
# as claiming them one by one would; the aggregates try-locked together (one another worker
# is claiming is passed over); the steps claimed with the same checks as _CLAIM_SQL; their
# journeys marked running.
# Written so PostgreSQL walks the active journeys in id order (journey_active_idx) and stops
# at the limit: each journey's first unfinished step found by a LATERAL index probe
# (uniq_step_position). The join form (_CANDIDATES_SQL) let the planner hash-join every
# active journey with every unfinished step and sort: 1.2 s per claim with 36k journeys
# pending in the 100k burst, against 20 ms for this form, same rows. The journey rows are
# locked SKIP LOCKED, so two workers claiming at once take different ones.
_CANDIDATES_LATERAL_SQL = f"""
SELECT s.id, j.aggregate_key FROM sync_journey j
CROSS JOIN LATERAL (
    SELECT p.id, p.state, p.next_attempt_at, p.claimed_at FROM sync_step p
    WHERE p.journey_id = j.id AND p.state NOT IN ({_sql_list(Step.DONE)})
    ORDER BY p.position LIMIT 1) s
WHERE j.state IN ({_sql_list(Journey.ACTIVE)}) AND {_DUE_SQL} AND NOT {_BUSY_SQL}
ORDER BY j.id
LIMIT %(limit)s {{lock}}
"""  # noqa: S608
_PG_LOCK = "FOR UPDATE OF j SKIP LOCKED"
_CANDIDATES_AGG_SQL = _CANDIDATES_LATERAL_SQL.format(lock=_PG_LOCK)
_TRY_LOCK_MANY_SQL = """
SELECT k FROM unnest(%(keys)b::text[]) AS k WHERE pg_try_advisory_xact_lock(hashtextextended(k, 0))
"""
_CLAIM_MANY_CHECKED_SQL = f"""
UPDATE sync_step AS t SET state = 'running', claim_token = v.token, claimed_at = %(now)s,
    attempts = t.attempts + 1, started_at = COALESCE(t.started_at, %(now)s),
    next_attempt_at = NULL
FROM unnest(%(ids)b::bigint[], %(tokens)b::uuid[]) AS v(id, token)
WHERE t.id = v.id AND t.id IN (
    SELECT s.id FROM sync_step s JOIN sync_journey j ON j.id = s.journey_id
    WHERE s.id = ANY(%(ids)b::bigint[]) AND j.state IN ({_sql_list(Journey.ACTIVE)})
      AND {_DUE_SQL} AND {_FIRST_UNFINISHED_SQL} AND NOT {_BUSY_SQL})
RETURNING t.id, t.journey_id
"""  # noqa: S608
_JOURNEYS_RUNNING_SQL = f"""
UPDATE sync_journey SET state = 'running', updated_at = %(now)s
WHERE id = ANY(%(ids)b::bigint[]) AND state IN ({_sql_list(Journey.ACTIVE)})
"""  # noqa: S608


def _claim_batch_pg(limit: int, now: dt.datetime) -> list[tuple[int, uuid.UUID]]:
    params = _params(now)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CANDIDATES_AGG_SQL, {**params, "limit": limit})
        first: dict[str, int] = {}
        for step_id, key in cursor.fetchall():
            first.setdefault(key, step_id)
        if not first:
            return []
        cursor.execute(_TRY_LOCK_MANY_SQL, {"keys": list(first)})
        locked = {key for (key,) in cursor.fetchall()}
        ids = [step_id for key, step_id in first.items() if key in locked]
        if not ids:
            return []
        tokens = {step_id: uuid.uuid4() for step_id in ids}
        cursor.execute(
            _CLAIM_MANY_CHECKED_SQL,
            {**params, "ids": ids, "tokens": [tokens[i] for i in ids]},
        )
        rows = cursor.fetchall()
        if rows:
            cursor.execute(
                _JOURNEYS_RUNNING_SQL,
                {"now": params["now"], "ids": [journey_id for _, journey_id in rows]},
            )
    claimed = {step_id for step_id, _ in rows}
    return [(step_id, tokens[step_id]) for step_id in ids if step_id in claimed]


def journeys_advance_due(*, budget_seconds: float = 20.0, batch: int = 50) -> int:
    """A worker's pull loop: claim due steps in batches and carry each journey as far as it
    goes, until nothing is due or the time budget is spent (then a fresh task takes over).
    Tasks name no step, so a lost or duplicated task costs nothing. Returns steps started."""
    from sync import tasks

    deadline = time.monotonic() + budget_seconds
    started = 0
    while time.monotonic() < deadline:
        claims = steps_claim_batch(batch)
        if not claims:
            return started
        journeys_advance_claimed(claims)  # every claimed step is run, whatever the budget
        started += len(claims)
    tasks.kick_advance()
    return started


MAX_CHAIN = 20
# What a step run never reads of its own row: its snapshots and last error (written by the
# engine with updates). Left out when steps are loaded to run.
STEP_BULKY_FIELDS = ("request_snapshot", "response_snapshot", "error_message")


def journeys_advance_claimed(claims: list[tuple[int, uuid.UUID]]) -> None:
    """Carry a batch of claimed steps (at most one per aggregate, as ``steps_claim_batch``
    takes them) through their journeys stage by stage: the steps at the same journey type and
    step run one after the other, their successes are recorded together — on PostgreSQL in
    a few statements for the whole group, the following steps claimed in the same
    transaction — and the next stage goes on with what was claimed. Anything else (a retry,
    a wait, an exception, a skip) is recorded step by step as ``journey_advance`` does."""
    rows = (
        Step.objects.select_related("journey", "journey__source_event")
        .defer(*STEP_BULKY_FIELDS)
        # in_bulk keeps the model's ordering: PostgreSQL sorted the claimed steps with their
        # events' payloads by journey creation (74 ms a claim of 2,000 at 100k) for a dict.
        .order_by()
        .in_bulk([step_id for step_id, _ in claims])
    )
    work = [(rows[step_id], token) for step_id, token in claims if step_id in rows]
    with reference_memo():
        for _ in range(MAX_CHAIN):
            if not work:
                return
            groups: dict[tuple[str, str], list[tuple[Step, uuid.UUID]]] = {}
            for step, token in work:
                key = (step.journey.journey_type, step.name)
                groups.setdefault(key, []).append((step, token))
            work = []
            for (type_name, step_name), items in groups.items():
                work.extend(_run_group(journey_type(type_name).step(step_name), items))
    for step, token in work:  # a journey with more steps than MAX_CHAIN: go on one by one
        journey_advance(step.pk, token=token)


def _claims_kept(items: list[tuple[Step, uuid.UUID]]) -> list[tuple[Step, uuid.UUID]]:
    """The steps of a group whose claims this worker still holds, claims renewed where they
    have aged past half their time to live. A group may wait behind the batch's other groups
    (a long ERP stage before it): without renewal its claims could expire and another worker
    take the same steps while this one runs them. A step whose claim has been taken over is
    left to its new holder. Costs nothing while every claim is fresh."""
    now = timezone.now()
    limit = now - dt.timedelta(seconds=_conf("CLAIM_TTL_SECONDS") / 2)
    aged = {
        step.pk: token for step, token in items if not step.claimed_at or step.claimed_at < limit
    }
    if not aged:
        return items
    with transaction.atomic():
        held = set(
            Step.objects.select_for_update(of=("self",))
            .filter(
                pk__in=list(aged), state=Step.State.RUNNING, claim_token__in=list(aged.values())
            )
            .values_list("pk", flat=True)
        )
        Step.objects.filter(pk__in=list(held)).update(claimed_at=now)
    kept = []
    for step, token in items:
        if step.pk not in aged:
            kept.append((step, token))
        elif step.pk in held:
            step.claimed_at = now
            kept.append((step, token))
        else:
            log.warning("step %s lost its claim before it ran; left to its new holder", step.pk)
    return kept


# The claims of the group a worker is running, so a batch form's long loop of bulk calls
# can keep them alive between calls (``claims_renew_aged``).
_group_claims: ContextVar[list[tuple[Step, uuid.UUID]] | None] = ContextVar(
    "rct_group_claims", default=None
)


def claims_renew_aged() -> None:
    """Renew the running group's claims that have aged past half their time to live (a
    batch form calls it between bulk calls: a group of thousands of ERP records may take
    longer than a claim lives). A claim taken over meanwhile stays taken: the step's outcome
    is discarded when its success is recorded. Outside a group, nothing."""
    items = _group_claims.get()
    if items:
        _claims_kept(items)


def _run_group(sd: Any, items: list[tuple[Step, uuid.UUID]]) -> list[tuple[Step, uuid.UUID]]:
    """Run claimed steps of one kind; returns the following steps claimed for them."""
    items = _claims_kept(items)
    if not items:
        return []
    system = sd.connector
    if system:
        gate = connector_gate(system)
        held = items if not gate.allowed else items[1:] if gate.probe else []
        if held:
            # Closed, or half-open with this group's first step as the probe: the others
            # wait as a step one by one would (the gate, asked again, says until when).
            wait = gate if not gate.allowed else connector_gate(system)
            for step, token in held:
                _wait_for_connector(step, token, system, wait.state, wait.wait_until)
        items = items[: len(items) - len(held)]
        if not items:
            return []
    succeeded: list[tuple[Step, uuid.UUID, dict[str, Any]]] = []
    waiting: list[tuple[Step, uuid.UUID, DependencyPending]] = []
    running = _group_claims.set(items)
    try:
        outcomes = _call_group(sd, items)
    finally:
        _group_claims.reset(running)
    for (step, token), outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, DependencyPending) and connection.vendor == "postgresql":
            waiting.append((step, token, outcome))
            continue
        if isinstance(outcome, Exception):
            with http.correlation(str(step.journey.correlation_id)):
                _record_failure(step, token, system, outcome)
            continue
        succeeded.append((step, token, outcome or {}))
    if waiting:
        _wait_for_dependency_many(waiting)
    if not succeeded:
        return []
    if system:
        record_success(system, calls=len(succeeded))
    if connection.vendor != "postgresql" or len(succeeded) == 1:
        following = []
        for step, token, result in succeeded:
            with http.correlation(str(step.journey.correlation_id)):
                outcome = _succeed(step, token, result, enqueue_next=False, chain=True)
            if getattr(outcome, "next_token", None) is not None:
                following.append((outcome.next_step, outcome.next_token))
        return following
    return _succeed_many(succeeded)


def _call_group(sd: Any, items: list[tuple[Step, uuid.UUID]]) -> list[Any]:
    """Each step's outcome (its result, or the exception it raised): through the step's batch
    form when it has one and there is more than one step, else one by one. A batch form that
    fails as a whole (a bug, not a journey's outcome) is logged and the steps are run one by
    one instead; steps are idempotent, so what it did first is not done twice."""
    ctxs = [
        StepContext(journey=step.journey, step=step, data=dict(step.journey.context))
        for step, _ in items
    ]
    if sd.batch is not None and len(ctxs) > 1:
        try:
            outcomes = sd.batch(ctxs)
            if len(outcomes) == len(ctxs):
                return outcomes
            log.error(
                "batch form of %s returned %d outcomes for %d", sd.name, len(outcomes), len(ctxs)
            )
        except Exception:
            log.exception(
                "batch form of %s failed; running its %d steps one by one", sd.name, len(ctxs)
            )
    outcomes: list[Any] = []
    guard = ConnectorGuard()
    for ctx in ctxs:
        if sd.connector and not guard.allowed:
            outcomes.append(guard.held_back())
            continue
        with http.correlation(str(ctx.journey.correlation_id)):
            try:
                outcomes.append(sd.func(ctx))
            except Exception as exc:
                outcomes.append(exc)
        guard.record(outcomes[-1])
    return outcomes


# Bulk bookkeeping for a group of successes (PostgreSQL): fixed statements over arrays, so
# they are prepared once per connection whatever the group's size.
_FINISH_MANY_SQL = """
UPDATE sync_step AS s SET state = 'succeeded', claim_token = NULL, finished_at = %(now)s,
    response_snapshot = v.snap::jsonb, error_class = '', error_message = ''
FROM unnest(%(ids)b::bigint[], %(tokens)b::uuid[], %(snaps)b::text[]) AS v(id, token, snap)
WHERE s.id = v.id AND s.claim_token = v.token AND s.state = 'running'
RETURNING s.id
"""
# A journey's context is the merge of its steps' results: each statement sends only the
# step's result (already serialized for the step's own row) and PostgreSQL merges it (``||``
# on objects: the step's keys win, as in ``{**context, **result}`` in memory).
_CONTINUE_MANY_SQL = f"""
UPDATE sync_journey AS j SET context = j.context || v.snap::jsonb, state = 'running',
    updated_at = %(now)s
FROM unnest(%(ids)b::bigint[], %(snaps)b::text[]) AS v(id, snap)
WHERE j.id = v.id AND j.state IN ({_sql_list(Journey.ACTIVE)})
"""  # noqa: S608
# The first unfinished step of each journey whose step just succeeded, claimed if due (the
# journey already holds its aggregate); the claimed rows come back without their bulky fields.
_CLAIM_NEXT_MANY_SQL = f"""
UPDATE sync_step AS s SET state = 'running', claim_token = v.token, claimed_at = %(now)s,
    attempts = s.attempts + 1, started_at = COALESCE(s.started_at, %(now)s),
    next_attempt_at = NULL
FROM unnest(%(jids)b::bigint[], %(tokens)b::uuid[]) AS v(jid, token)
WHERE s.journey_id = v.jid
  AND s.position = (SELECT MIN(p.position) FROM sync_step p
                    WHERE p.journey_id = v.jid AND p.state NOT IN ({_sql_list(Step.DONE)}))
  AND s.claim_token IS NULL AND s.state IN ({_sql_list(Step.RUNNABLE)})
  AND (s.next_attempt_at IS NULL OR s.next_attempt_at <= %(now)s)
RETURNING s.id, s.journey_id, s.name, s.position, s.state, s.attempts, s.next_attempt_at,
    s.enqueued_at, s.claim_token, s.claimed_at, s.idempotency_key, s.error_class,
    s.started_at, s.finished_at
"""  # noqa: S608


_COMPLETE_MANY_SQL = f"""
UPDATE sync_journey AS j SET context = j.context || v.snap::jsonb, state = 'completed',
    completed_at = %(now)s, updated_at = %(now)s,
    sla_state = CASE WHEN %(now)s > j.sla_due_at THEN 'breached' ELSE j.sla_state END
FROM unnest(%(ids)b::bigint[], %(snaps)b::text[]) AS v(id, snap)
WHERE j.id = v.id AND j.state IN ({_sql_list(Journey.ACTIVE)})
RETURNING j.id, j.sla_state
"""  # noqa: S608
_RESOLVE_MANY_SQL = f"""
UPDATE sync_exceptioncase SET state = 'resolved', resolved_at = %(now)s,
    resolution_note = CASE WHEN resolution_note = '' THEN %(note)s
                           ELSE resolution_note || E'\\n' || %(note)s END
WHERE journey_id = ANY(%(ids)b::bigint[]) AND state IN ({_sql_list(ExceptionCase.ACTIVE)})
RETURNING id, journey_id, category, summary
"""  # noqa: S608
_WAKE_MANY_SQL = f"""
UPDATE sync_step AS s SET next_attempt_at = %(now)s
FROM sync_journey AS j
WHERE j.id = s.journey_id AND j.aggregate_key = ANY(%(keys)b::text[])
  AND j.state IN ({_sql_list(Journey.ACTIVE)})
  AND s.state = 'pending' AND s.error_class = %(waiting)s
"""  # noqa: S608


# The note on a case its journey's completion resolves: one wording for both ways of completing
# (``_complete`` one journey, ``_complete_many`` a batch on PostgreSQL).
COMPLETED_NOTE = "Resolved automatically: the journey completed."


def _complete_many(
    cursor: Any,
    ending: list[Step],
    snapshots: dict[int, Any],
    texts: dict[int, str],
    now: dt.datetime,
) -> None:
    """``_complete`` for many journeys in one transaction: contexts merged and states set in
    one statement, their open cases resolved in one, the audit entries written in one insert;
    after commit, what waited on their aggregates is woken in one update (the pull loop that
    completed them claims it next)."""
    for step in ending:
        journey = step.journey
        journey.context = {**journey.context, **snapshots[step.pk]}
    cursor.execute(
        _COMPLETE_MANY_SQL,
        {
            "now": now,
            "ids": [step.journey_id for step in ending],
            "snaps": [texts[step.pk] for step in ending],
        },
    )
    completed = dict(cursor.fetchall())
    note = COMPLETED_NOTE
    cursor.execute(_RESOLVE_MANY_SQL, {"now": now, "note": note, "ids": list(completed)})
    resolved = cursor.fetchall()
    journeys = {step.journey_id: step.journey for step in ending}
    entries = []
    for case_id, journey_id, category, summary in resolved:
        journey = journeys[journey_id]
        case = ExceptionCase(pk=case_id, journey_id=journey_id, category=category, summary=summary)
        entries.append(
            audit_entry_build(
                actor=None,
                action="exception.resolve",
                obj=case,
                after={"state": ExceptionCase.State.RESOLVED},
                correlation_id=str(journey.correlation_id),
            )
        )
    for journey_id, sla_state in completed.items():
        journey = journeys[journey_id]
        journey.state, journey.completed_at, journey.sla_state = (
            Journey.State.COMPLETED,
            now,
            sla_state,
        )
        entries.append(
            audit_entry_build(
                actor=None,
                action="journey.complete",
                obj=journey,
                after={"state": journey.state},
                correlation_id=str(journey.correlation_id),
            )
        )
    objs_insert(entries)
    keys = sorted({journeys[journey_id].aggregate_key for journey_id in completed})
    if keys:
        transaction.on_commit(lambda: _wake_many(keys))


def _wake_many(keys: list[str]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            _WAKE_MANY_SQL,
            {"now": timezone.now(), "keys": keys, "waiting": DEPENDENCY_WAIT_ERROR_CLASS},
        )


def _succeed_many(
    succeeded: list[tuple[Step, uuid.UUID, dict[str, Any]]],
) -> list[tuple[Step, uuid.UUID]]:
    """``_succeed(..., chain=True)`` for many steps at once, same outcome per step: each step
    is recorded only if this worker still holds its claim; a journey with more to do has its
    context merged and its next step claimed when due; a journey at its end is completed as
    ``_succeed`` completes one. Returns the claimed following steps, ready to run."""
    now = timezone.now()
    snapshots = {step.pk: _json_safe(result) for step, _, result in succeeded}
    texts = {pk: json.dumps(snapshot) for pk, snapshot in snapshots.items()}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _FINISH_MANY_SQL,
            {
                "now": now,
                "ids": [step.pk for step, _, _ in succeeded],
                "tokens": [token for _, token, _ in succeeded],
                "snaps": [texts[step.pk] for step, _, _ in succeeded],
            },
        )
        finished = {row[0] for row in cursor.fetchall()}
        for step, _, _ in succeeded:
            if step.pk not in finished:
                log.warning("step %s lost its claim before finishing; outcome discarded", step.pk)
        done = [step for step, _, _ in succeeded if step.pk in finished]
        if not done:
            return []
        # Each journey's first unfinished step, claimed where due, in one statement that
        # returns the claimed rows; for the journeys where nothing was claimed, whether a
        # step is left at all (not due yet, or held) or the journey has ended.
        tokens = {step.journey_id: uuid.uuid4() for step in done}
        cursor.execute(
            _CLAIM_NEXT_MANY_SQL,
            {"now": now, "jids": list(tokens), "tokens": list(tokens.values())},
        )
        names = [col.name for col in cursor.description]
        claimed = {
            step.journey_id: step
            for step in (Step.from_db(connection.alias, names, row) for row in cursor.fetchall())
        }
        unclaimed = [step.journey_id for step in done if step.journey_id not in claimed]
        left = (
            set(
                Step.objects.filter(journey_id__in=unclaimed)
                .exclude(state__in=Step.DONE)
                .values_list("journey_id", flat=True)
            )
            if unclaimed
            else set()
        )
        going_on = [step for step in done if step.journey_id in claimed or step.journey_id in left]
        for step in going_on:
            journey = step.journey
            journey.context = {**journey.context, **snapshots[step.pk]}
            journey.state = Journey.State.RUNNING
        if going_on:
            cursor.execute(
                _CONTINUE_MANY_SQL,
                {
                    "now": now,
                    "ids": [step.journey_id for step in going_on],
                    "snaps": [texts[step.pk] for step in going_on],
                },
            )
        ending = [step for step in done if step.journey_id not in claimed.keys() | left]
        if ending:
            _complete_many(cursor, ending, snapshots, texts, now)
    ready = []
    for step in going_on:
        row = claimed.get(step.journey_id)
        if row is None:
            continue  # not due yet (a retry time set by a replay), or held: left for later
        row.journey = step.journey
        ready.append((row, row.claim_token))
    return ready


def journey_advance(step_id: int, *, token: uuid.UUID | None = None, max_steps: int = 20) -> str:
    """Run a step (already claimed when ``token`` is given) and, while they succeed, the
    journey's following steps in this same worker, each claimed on its own: one task carries
    a journey as far as it can go. What cannot go on now (a retry, a wait, a busy aggregate)
    is left for later."""
    from sync import tasks

    outcome = "not_claimed"
    step: Step | None = None
    for _ in range(max_steps):
        if token is not None:
            outcome = _run_claimed(step_id, token, enqueue_next=False, step=step)
        else:
            outcome = step_run(step_id, enqueue_next=False)
        if outcome != "succeeded":
            return outcome
        nxt = getattr(outcome, "next_step_id", None)
        if nxt is None:
            return outcome
        # The success already claimed the following step when it was due
        # (``_claim_following``);
        # otherwise it is claimed afresh (and left for later if that fails).
        step_id, token, step = nxt, outcome.next_token, outcome.next_step
    tasks.enqueue_step(step_id)
    return outcome


class Outcome(str):
    """What a step run did ("succeeded", "waiting", ...). A success that leaves more to do
    names the step that follows, so the caller can go on without looking it up."""

    next_step_id: int | None = None
    # Set when the success also claimed the following step (one worker carrying a journey):
    # its claim token and its row, already in the claimed state.
    next_token: uuid.UUID | None = None
    next_step: Step | None = None


def _succeeded(
    next_step_id: int, token: uuid.UUID | None = None, step: Step | None = None
) -> Outcome:
    outcome = Outcome("succeeded")
    outcome.next_step_id = next_step_id
    outcome.next_token = token
    outcome.next_step = step
    return outcome


def step_run(step_id: int, *, enqueue_next: bool = True) -> str:
    """Claim and run one step. Returns what happened (for logs and tests). The following
    step is enqueued on success unless the caller goes on with it (``journey_advance``)."""
    token = step_claim(step_id)
    if token is None:
        return "not_claimed"
    return _run_claimed(step_id, token, enqueue_next=enqueue_next)


def _run_claimed(
    step_id: int, token: uuid.UUID, *, enqueue_next: bool, step: Step | None = None
) -> str:
    """Run a step this worker has claimed (``token``). ``step``: its row with its journey,
    when the caller already holds them (the step was claimed by the success before it)."""
    if step is None:
        step = Step.objects.select_related("journey", "journey__source_event").get(pk=step_id)
    journey = step.journey
    jt = journey_type(journey.journey_type)
    system = jt.step(step.name).connector
    if system:
        gate = connector_gate(system)
        if not gate.allowed:
            return _wait_for_connector(step, token, system, gate.state, gate.wait_until)
    if journey.state != Journey.State.RUNNING:
        Journey.objects.filter(pk=journey.pk, state__in=Journey.ACTIVE).update(
            state=Journey.State.RUNNING
        )
    with http.correlation(str(journey.correlation_id)):
        ctx = StepContext(journey=journey, step=step, data=dict(journey.context))
        try:
            result = jt.step(step.name).func(ctx) or {}
        except Exception as exc:
            return _record_failure(step, token, system, exc)
        if system:
            record_success(system)
        return _succeed(step, token, result, enqueue_next=enqueue_next, chain=not enqueue_next)


def _record_failure(step: Step, token: uuid.UUID, system: str, exc: Exception) -> str:
    """Record what a step's exception means: a data defect or an internal error goes to the
    exception queue, a missing dependency waits, a stale event is skipped, a connector's
    failure is retried, waits on the connector, or is the ERP's refusal."""
    if isinstance(exc, DataDefect):
        _fail(
            step, token, category=exc.category, summary=exc.summary, context=exc.context, error=exc
        )
        return "exception"
    if isinstance(exc, DependencyPending):
        return _wait_for_dependency(step, token, exc)
    if isinstance(exc, ConnectorHeldBack):
        # No attempt of its own: the connector failed again and again earlier in this batch
        # (those failures, recorded first, opened its circuit), or the step rode in a bulk
        # call whose one failure its first record took. No attempt is spent; it waits for
        # the circuit, or (still closed) about as long as that first record's retry.
        gate = connector_gate(system)
        if not gate.allowed:
            return _wait_for_connector(step, token, system, gate.state, gate.wait_until)
        until = timezone.now() + dt.timedelta(seconds=_conf("RETRY_BASE_SECONDS"))
        return _wait_for_connector(step, token, system, gate.state, until, reason=str(exc))
    if isinstance(exc, StepSkipped):
        return _skip(step, token, exc)
    if isinstance(exc, AuthError):
        if system:
            row = record_auth_failure(system, exc.message)
            return _wait_for_connector(
                step, token, system, row.state, timezone.now() + PAUSED_RECHECK
            )
        _fail(
            step,
            token,
            category=Cat.CONNECTOR_AUTH,
            summary=f"The ERP refused our credentials: {exc.message}. Fix the connector "
            "settings, then replay.",
            context=_connector_context(exc),
            error=exc,
        )
        return "exception"
    if isinstance(exc, ConnectorError):
        if exc.transient:
            if system:
                record_transient_failure(
                    system, exc.message, status=exc.status, retry_after=exc.retry_after
                )
            return _retry_or_fail(step, token, exc)
        if system:
            record_success(system)  # it answered: the connector itself is healthy
        _fail(
            step,
            token,
            category=Cat.ERP_REJECTED,
            summary=f"The ERP rejected the request: {exc.message}",
            context=_connector_context(exc),
            error=exc,
        )
        return "exception"
    log.error("step %s of journey %s failed unexpectedly", step.name, step.journey_id, exc_info=exc)
    _fail(
        step,
        token,
        category=Cat.INTERNAL_ERROR,
        summary=f"Step '{step.name}' failed unexpectedly ({type(exc).__name__}: {exc}). "
        "Engineering has the log line; replay once it is fixed.",
        context={"step": step.name},
        error=exc,
    )
    return "exception"


def _wait_for_connector(
    step: Step,
    token: uuid.UUID,
    system: str,
    state: str,
    until: dt.datetime | None,
    *,
    reason: str = "",
) -> str:
    """Put a claimed step back, untouched: pending until ``until``, the claim's attempt given
    back, the journey ``waiting``. Closing or resuming the connector releases it earlier.
    ``reason``: why it waits, when not the connector's state (a bulk call's failure)."""
    now = timezone.now()
    until = until or now + PAUSED_RECHECK
    why = reason or (
        f"the {connector_label(system)} connector is {ConnectorHealth.State(state).label.lower()}"
    )
    with transaction.atomic():
        updated = Step.objects.filter(pk=step.pk, claim_token=token).update(
            state=Step.State.PENDING,
            claim_token=None,
            claimed_at=None,
            attempts=F("attempts") - 1,
            next_attempt_at=until,
            error_class=WAITING_ERROR_CLASS,
            error_message=f"Waiting: {why}; next try {until:%Y-%m-%d %H:%M:%S} UTC.",
        )
        if updated:
            Journey.objects.filter(pk=step.journey_id, state__in=Journey.ACTIVE).update(
                state=Journey.State.WAITING, updated_at=now
            )
    return "waiting"


DEPENDENCY_WAIT_ERROR_CLASS = "DependencyPending"
MIN_RETRY_SECONDS = 1.0


def _wait_for_dependency(step: Step, token: uuid.UUID, exc: DependencyPending) -> str:
    """Something the step needs has not arrived (a payment before its invoice): put the step
    back, the attempt given back, the journey ``waiting``, and look again later — sooner when
    a journey of the same aggregate finishes. Past the deadline (``DEPENDENCY_WAIT_SECONDS``
    from the step's first run) it becomes the exception the step named."""
    now = timezone.now()
    since = step.started_at or step.journey.created_at
    until, deadline = _dependency_wait(step, exc, now)
    if now >= deadline:
        waited = max(0, int((now - since).total_seconds()))
        _fail(
            step,
            token,
            category=exc.category,
            summary=f"{exc.summary} (waited {waited // 60} min {waited % 60} s)",
            context=exc.context,
            error=exc,
        )
        return "exception"
    with transaction.atomic():
        updated = Step.objects.filter(pk=step.pk, claim_token=token).update(
            state=Step.State.PENDING,
            claim_token=None,
            claimed_at=None,
            attempts=F("attempts") - 1,
            next_attempt_at=until,
            error_class=DEPENDENCY_WAIT_ERROR_CLASS,
            error_message=_wait_message(exc, until, deadline),
        )
        if updated:
            Journey.objects.filter(pk=step.journey_id, state__in=Journey.ACTIVE).update(
                state=Journey.State.WAITING, updated_at=now
            )
    return "waiting"


_WAIT_MANY_SQL = """
UPDATE sync_step AS s SET state = 'pending', claim_token = NULL, claimed_at = NULL,
    attempts = s.attempts - 1, next_attempt_at = v.until, error_class = %(waiting)s,
    error_message = v.msg
FROM unnest(%(ids)b::bigint[], %(tokens)b::uuid[], %(untils)b::timestamptz[], %(msgs)b::text[])
    AS v(id, token, until, msg)
WHERE s.id = v.id AND s.claim_token = v.token
RETURNING s.journey_id
"""
_JOURNEYS_WAITING_SQL = f"""
UPDATE sync_journey SET state = 'waiting', updated_at = %(now)s
WHERE id = ANY(%(ids)b::bigint[]) AND state IN ({_sql_list(Journey.ACTIVE)})
"""  # noqa: S608


def _dependency_wait(step: Step, exc: DependencyPending, now: dt.datetime) -> tuple[Any, Any]:
    """``(until, deadline)`` for a step waiting on a dependency: look again soon at first,
    then less often (a quarter of the time waited so far, within [retry_after, 60 s], never
    past the deadline, ``DEPENDENCY_WAIT_SECONDS`` from the step's first run)."""
    since = step.started_at or step.journey.created_at
    deadline = since + dt.timedelta(seconds=_conf("DEPENDENCY_WAIT_SECONDS"))
    delay = min(
        max(exc.retry_after, (now - since).total_seconds() / 4),
        60.0,
        max((deadline - now).total_seconds(), 0.0),
    )
    return now + dt.timedelta(seconds=delay), deadline


def _wait_message(exc: DependencyPending, until: dt.datetime, deadline: dt.datetime) -> str:
    return (
        f"Waiting: {exc.summary} Next look {until:%Y-%m-%d %H:%M:%S} UTC; "
        f"an exception if still missing at {deadline:%Y-%m-%d %H:%M:%S} UTC."
    )


def _wait_for_dependency_many(items: list[tuple[Step, uuid.UUID, DependencyPending]]) -> None:
    """``_wait_for_dependency`` for a group's steps (PostgreSQL): those past their deadline
    become exceptions one by one; the others are put back in one statement, their journeys
    marked waiting in one more."""
    now = timezone.now()
    back: list[tuple[Step, uuid.UUID, dt.datetime, str]] = []
    for step, token, exc in items:
        until, deadline = _dependency_wait(step, exc, now)
        if now >= deadline:
            with http.correlation(str(step.journey.correlation_id)):
                _wait_for_dependency(step, token, exc)  # the exception, as one step would
            continue
        back.append((step, token, until, _wait_message(exc, until, deadline)))
    if not back:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _WAIT_MANY_SQL,
            {
                "waiting": DEPENDENCY_WAIT_ERROR_CLASS,
                "ids": [step.pk for step, _, _, _ in back],
                "tokens": [token for _, token, _, _ in back],
                "untils": [until for _, _, until, _ in back],
                "msgs": [msg for _, _, _, msg in back],
            },
        )
        journeys = [row[0] for row in cursor.fetchall()]
        if journeys:
            cursor.execute(_JOURNEYS_WAITING_SQL, {"now": now, "ids": journeys})


def _wake_on_commit(journey: Journey) -> None:
    key, pk = journey.aggregate_key, journey.pk
    transaction.on_commit(lambda: _wake_aggregate(key, finished_journey_id=pk))


def _wake_aggregate(aggregate_key: str, *, finished_journey_id: int) -> None:
    """A journey of this aggregate finished: what queued or waited behind it may go now.
    Runs after commit; the sweeper would find the same steps a little later."""
    from sync import tasks

    now = timezone.now()
    waiting = Step.objects.filter(
        journey__aggregate_key=aggregate_key,
        journey__state__in=Journey.ACTIVE,
        state=Step.State.PENDING,
        error_class=DEPENDENCY_WAIT_ERROR_CLASS,
    ).exclude(journey_id=finished_journey_id)
    waiting.update(next_attempt_at=now)
    if _due_step_ids(now, 1, aggregate_key=aggregate_key):
        tasks.kick_advance()


def _finish(
    step: Step, token: uuid.UUID, state: str, result: dict[str, Any], now: dt.datetime
) -> bool:
    """Record a step's final outcome, only if this worker still holds its claim."""
    return bool(
        Step.objects.filter(pk=step.pk, claim_token=token, state=Step.State.RUNNING).update(
            state=state,
            claim_token=None,
            finished_at=now,
            response_snapshot=result,
            error_class="",
            error_message="",
        )
    )


def _skip(step: Step, token: uuid.UUID, exc: StepSkipped) -> str:
    """End the journey as skipped: this step and every later one, with the reason kept on
    the step, the journey context and the audit trail."""
    now = timezone.now()
    result = _json_safe({**exc.result, "skipped": exc.reason})
    with transaction.atomic():
        if not _finish(step, token, Step.State.SKIPPED, result, now):
            return "claim_lost"
        Step.objects.filter(journey_id=step.journey_id, position__gt=step.position).exclude(
            state__in=Step.DONE
        ).update(state=Step.State.SKIPPED, finished_at=now)
        journey = Journey.objects.select_for_update().get(pk=step.journey_id)
        journey.context = {**journey.context, **result}
        journey.state = Journey.State.SKIPPED
        journey.completed_at = now
        journey.save(update_fields=["context", "state", "completed_at", "updated_at"])
        _wake_on_commit(journey)
        for case in ExceptionCase.objects.filter(journey=journey, state__in=ExceptionCase.ACTIVE):
            case.state = ExceptionCase.State.RESOLVED
            case.resolved_at = now
            case.resolution_note = f"Resolved: the journey was skipped ({exc.reason})."
            case.save(update_fields=["state", "resolved_at", "resolution_note"])
        audit_record(
            actor=None,
            action="journey.skip",
            obj=journey,
            reason=exc.reason,
            after={"state": journey.state, "step": step.name},
            correlation_id=str(journey.correlation_id),
        )
    log.info("journey %s skipped at %s: %s", step.journey_id, step.name, exc.reason)
    return "skipped"


def _connector_context(exc: ConnectorError) -> dict[str, Any]:
    return {"status": exc.status, "code": exc.code, "details": exc.details}


def _json_safe(value: Any) -> Any:
    from django.core.serializers.json import DjangoJSONEncoder

    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _claim_following(following: Step, journey: Journey, now: dt.datetime) -> uuid.UUID | None:
    """Claim the journey's next step in the transaction that records the step before it, when
    it is due. The journey holds its aggregate (it is running), so nothing else may claim it
    first and the order checks of a fresh claim have nothing to add. The row in hand is
    brought to the claimed state, so the caller runs it without reading it again."""
    if following.state not in Step.RUNNABLE or (
        following.next_attempt_at is not None and following.next_attempt_at > now
    ):
        return None
    token = uuid.uuid4()
    started_at = following.started_at or now
    claimed = Step.objects.filter(pk=following.pk, state=following.state, claim_token=None).update(
        state=Step.State.RUNNING,
        claim_token=token,
        claimed_at=now,
        attempts=F("attempts") + 1,
        started_at=started_at,
        next_attempt_at=None,
    )
    if not claimed:
        return None
    following.state, following.claim_token, following.claimed_at = Step.State.RUNNING, token, now
    following.attempts += 1
    following.started_at, following.next_attempt_at = started_at, None
    following.journey = journey
    return token


def _succeed(
    step: Step,
    token: uuid.UUID,
    result: dict[str, Any],
    *,
    enqueue_next: bool = True,
    chain: bool = False,
) -> str:
    """Record a success. With ``chain`` (the caller goes on with the journey) the following
    step is claimed in the same transaction when it is due."""
    from sync import tasks

    now = timezone.now()
    result = _json_safe(result)
    with transaction.atomic():
        if not _finish(step, token, Step.State.SUCCEEDED, result, now):
            log.warning("step %s lost its claim before finishing; outcome discarded", step.pk)
            return "claim_lost"
        following = (
            Step.objects.filter(journey_id=step.journey_id, position__gt=step.position)
            .exclude(state__in=Step.DONE)
            .order_by("position")
            .first()
        )
        if following is not None:
            # The journey row was read when this worker claimed it, and a running journey's
            # context is written only by the holder of its step's claim: merge in memory.
            journey = step.journey
            journey.context = {**journey.context, **result}
            journey.state = Journey.State.RUNNING
            Journey.objects.filter(pk=journey.pk, state__in=Journey.ACTIVE).update(
                context=journey.context, state=Journey.State.RUNNING, updated_at=now
            )
            if enqueue_next:
                transaction.on_commit(lambda: tasks.enqueue_step(following.pk))
            next_token = _claim_following(following, journey, now) if chain else None
            return _succeeded(following.pk, next_token, following if next_token else None)
        _complete(step.journey_id, result, now)
    return "completed"


def _complete(journey_id: int, result: dict[str, Any], now: dt.datetime) -> None:
    """Complete a journey whose last step succeeded (in that step's transaction): merge the
    result, mark a late finish as breached, resolve its open cases, audit, wake its
    aggregate."""
    journey = Journey.objects.select_for_update().get(pk=journey_id)
    journey.context = {**journey.context, **result}
    journey.state = Journey.State.COMPLETED
    journey.completed_at = now
    _wake_on_commit(journey)
    if now > journey.sla_due_at:
        journey.sla_state = Journey.SlaState.BREACHED
    journey.save(update_fields=["context", "state", "completed_at", "sla_state", "updated_at"])
    for case in ExceptionCase.objects.filter(journey=journey, state__in=ExceptionCase.ACTIVE):
        case.state = ExceptionCase.State.RESOLVED
        case.resolved_at = now
        case.resolution_note = (
            case.resolution_note + "\n" if case.resolution_note else ""
        ) + COMPLETED_NOTE
        case.save(update_fields=["state", "resolved_at", "resolution_note"])
        audit_record(
            actor=None,
            action="exception.resolve",
            obj=case,
            after={"state": case.state},
            correlation_id=str(journey.correlation_id),
        )
    audit_record(
        actor=None,
        action="journey.complete",
        obj=journey,
        after={"state": journey.state},
        correlation_id=str(journey.correlation_id),
    )


def _retry_or_fail(step: Step, token: uuid.UUID, exc: ConnectorError) -> str:
    attempts = Step.objects.values_list("attempts", flat=True).get(pk=step.pk)
    if attempts >= _conf("MAX_STEP_ATTEMPTS"):
        _fail(
            step,
            token,
            category=Cat.CONNECTOR_UNAVAILABLE,
            summary=f"The ERP did not accept the request after {attempts} attempts "
            f"(last: {exc.message}). It will not be retried automatically; replay when the ERP "
            "is back.",
            context=_connector_context(exc),
            error=exc,
        )
        return "exception"
    message = exc.message
    # Full jitter can draw a delay of a few milliseconds; a retry is never sooner than
    # MIN_RETRY_SECONDS, so a struggling remote is not hit again at once.
    delay = max(
        MIN_RETRY_SECONDS,
        http.backoff_delay(
            attempts - 1,  # 0 for the first retry
            base=_conf("RETRY_BASE_SECONDS"),
            cap=_conf("RETRY_CAP_SECONDS"),
            retry_after=exc.retry_after,
        ),
    )
    now = timezone.now()
    with transaction.atomic():
        updated = Step.objects.filter(pk=step.pk, claim_token=token).update(
            state=Step.State.RETRYING,
            claim_token=None,
            next_attempt_at=now + dt.timedelta(seconds=delay),
            error_class=type(exc).__name__,
            error_message=f"{message} (attempt {attempts}; next in {delay:.1f}s)",
        )
        if updated:
            Journey.objects.filter(pk=step.journey_id, state__in=Journey.ACTIVE).update(
                state=Journey.State.RETRYING, updated_at=now
            )
    log.info("step %s retrying in %.1fs after %s", step.pk, delay, message)
    return "retrying"


def _fail(
    step: Step,
    token: uuid.UUID,
    *,
    category: str,
    summary: str,
    context: dict[str, Any],
    error: BaseException,
) -> None:
    """Stop the journey at this step and put it in the exception queue (reusing the open case
    for the same step and category, so repeated replays do not pile up duplicates)."""
    now = timezone.now()
    with transaction.atomic():
        updated = Step.objects.filter(pk=step.pk, claim_token=token).update(
            state=Step.State.FAILED,
            claim_token=None,
            finished_at=now,
            error_class=type(error).__name__,
            error_message=summary,
        )
        if not updated:
            return
        journey = Journey.objects.select_for_update().get(pk=step.journey_id)
        journey.state = Journey.State.EXCEPTION
        journey.save(update_fields=["state", "updated_at"])
        _wake_on_commit(journey)
        full_context = _json_safe(
            {**context, "step": step.name, "business_key": journey.business_key}
        )
        case = ExceptionCase.objects.filter(
            journey=journey, step_id=step.pk, category=category, state__in=ExceptionCase.ACTIVE
        ).first()
        if case is None:
            case = ExceptionCase.objects.create(
                journey=journey,
                step_id=step.pk,
                category=category,
                severity=ExceptionCase.Severity.HIGH
                if category in {Cat.CONNECTOR_AUTH, Cat.AMOUNT_MISMATCH}
                else ExceptionCase.Severity.MEDIUM,
                legal_entity_id=journey.legal_entity_id,
                summary=summary[:500],
                business_key=journey.business_key,
                context=full_context,
                root_cause=root_cause_of(category, full_context),
            )
            action = "exception.open"
        else:
            case.state = ExceptionCase.State.OPEN
            case.summary = summary[:500]
            case.context = full_context
            case.root_cause = root_cause_of(category, full_context)
            case.save(update_fields=["state", "summary", "context", "root_cause"])
            action = "exception.reopen"
        # Other open cases of this journey (an earlier failure now fixed) are superseded.
        for old in ExceptionCase.objects.filter(
            journey=journey, state__in=ExceptionCase.ACTIVE
        ).exclude(pk=case.pk):
            old.state = ExceptionCase.State.RESOLVED
            old.resolved_at = now
            old.resolution_note = "Superseded: the journey now stops at a later cause."
            old.save(update_fields=["state", "resolved_at", "resolution_note"])
        audit_record(
            actor=None,
            action=action,
            obj=case,
            after={"category": category, "summary": summary[:500]},
            correlation_id=str(journey.correlation_id),
        )
    log.warning("journey %s stopped at %s: %s", step.journey_id, step.name, summary)


def sweep(*, now: dt.datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Make sure what is due gets moving; mark SLA states. Safe to run anywhere, any time.

    Workers pull work from our tables (``journeys_advance_due``, ``dispatch_received``); the
    sweep only tops up the pull tasks waiting in the broker to one per worker when there is
    work and too few are queued — never one task per step, so a backlog never turns into a
    pile of duplicate tasks. Counts are of what was found due (at most ``limit``)."""
    from sync import tasks

    now = now or timezone.now()
    counts = {"events": 0, "steps": 0, "at_risk": 0, "breached": 0}
    counts["events"] = len(
        InboundEvent.objects.filter(state=InboundEvent.State.RECEIVED).values_list("pk", flat=True)[
            :limit
        ]
    )
    counts["steps"] = len(_due_step_ids(now, limit))
    if counts["events"] or counts["steps"]:
        tasks.pull_tasks_top_up(events=bool(counts["events"]), steps=bool(counts["steps"]))
    active = Journey.objects.filter(state__in=Journey.ACTIVE | {Journey.State.EXCEPTION})
    counts["breached"] = sla_breaches_raise(active, now=now)
    counts["at_risk"] = active.filter(
        sla_warning_at__lte=now, sla_state=Journey.SlaState.ON_TRACK
    ).update(sla_state=Journey.SlaState.AT_RISK)
    return counts


def sla_breaches_raise(active, *, now: dt.datetime) -> int:
    """Mark newly breached journeys and raise exactly one alert for each: the unique
    (kind, journey) constraint makes a second sweep, or a concurrent one, a no-op."""
    from sync import tasks

    with transaction.atomic():
        newly = list(
            active.filter(sla_due_at__lte=now)
            .exclude(sla_state=Journey.SlaState.BREACHED)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", "journey_type", "business_key", "legal_entity_id", "sla_due_at")
        )
        if not newly:
            return 0
        Journey.objects.filter(pk__in=[row[0] for row in newly]).update(
            sla_state=Journey.SlaState.BREACHED
        )
        Notification.objects.bulk_create(
            [
                Notification(
                    kind=Notification.Kind.SLA_BREACH,
                    journey_id=pk,
                    legal_entity_id=entity_id,
                    title=f"SLA breached: {jtype} {key} was due {due:%Y-%m-%d %H:%M} UTC and "
                    "is not complete.",
                )
                for pk, jtype, key, entity_id, due in newly
            ],
            ignore_conflicts=True,
        )
        if settings.SLA_ALERT_EMAILS or settings.SLA_ALERT_WEBHOOK_URL:
            transaction.on_commit(tasks.enqueue_notification_delivery)
    return len(newly)
