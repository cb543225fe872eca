"""Moving the dashboard deltas into the summaries (see ``sync.models.stats``).

``stats_rollup`` takes deltas with ``DELETE ... RETURNING`` — a delta is removed in the same
transaction that adds it to a summary, so it is counted exactly once whatever order concurrent
writers commit in; deltas committed after the delete stay for the next run. Runs are serialized
by an advisory lock on PostgreSQL (SQLite serializes writers itself).

``stats_rebuild`` recounts everything from the journeys and exceptions: a repair tool.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from sync import stats_sql
from sync.models import (
    ExceptionOpenStats,
    ExceptionStatDelta,
    JourneyDayStats,
    JourneyGauge,
    JourneyStatDelta,
)
from sync.models.stats import LATENCY_BUCKETS

ROLLUP_BATCH = 20_000
_LOCK_KEY = 0x52435453  # "RCTS"

_J_COLS = (
    "journey_type, entity_id, day, latency_bucket, started, completed, on_time, active, "
    "in_exception, at_risk, breached"
)
_E_COLS = "journey_type, entity_id, hour, open"


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def _take(table: str, cols: str, batch: int) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT %s) "  # noqa: S608
            f"RETURNING {cols}",
            [batch],
        )
        return cursor.fetchall()


def as_date(value: Any) -> dt.date:
    """SQLite hands raw SQL dates back as text."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def as_hour(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.UTC)


def fold_journey_deltas(
    rows: list[tuple],
) -> tuple[dict[tuple, list], dict[tuple, list[int]]]:
    """Sum journey delta rows into ``{(day, type, entity): [started, completed, on_time,
    latency histogram]}`` and ``{(type, entity): [active, in_exception, at_risk, breached]}``."""
    days: dict[tuple, list] = {}
    gauges: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for jt, entity, day, bucket, started, completed, on_time, act, exc, risk, brc in rows:
        if started or completed or on_time:
            key = (as_date(day), jt, entity)
            acc = days.get(key)
            if acc is None:
                acc = days[key] = [0, 0, 0, [0] * LATENCY_BUCKETS]
            acc[0] += started
            acc[1] += completed
            acc[2] += on_time
            if bucket >= 0:
                acc[3][bucket] += completed
        if act or exc or risk or brc:
            g = gauges[(jt, entity)]
            g[0] += act
            g[1] += exc
            g[2] += risk
            g[3] += brc
    return days, dict(gauges)


def _locked_rows(model: type, fields: tuple[str, ...], keys: Any) -> dict[tuple, Any]:
    """The summary rows whose ``fields`` match one of ``keys``, locked, by key (a superset is
    read — each field's values are matched apart — and only exact keys are used)."""
    filters = {f"{name}__in": {key[i] for key in keys} for i, name in enumerate(fields)}
    return {
        tuple(getattr(row, name) for name in fields): row
        for row in model.objects.select_for_update().filter(**filters)
    }


def _apply_journeys(rows: list[tuple]) -> None:
    days, gauges = fold_journey_deltas(rows)
    if days:
        existing = _locked_rows(JourneyDayStats, ("day", "journey_type", "entity_id"), days)
        new, changed = [], []
        for (day, jt, entity), (started, completed, on_time, hist) in days.items():
            row = existing.get((day, jt, entity))
            if row is None:
                new.append(
                    JourneyDayStats(
                        day=day,
                        journey_type=jt,
                        entity_id=entity,
                        started=started,
                        completed=completed,
                        on_time=on_time,
                        latency=hist,
                    )
                )
                continue
            row.started += started
            row.completed += completed
            row.on_time += on_time
            old = list(row.latency) + [0] * (LATENCY_BUCKETS - len(row.latency))
            row.latency = [a + b for a, b in zip(old, hist, strict=True)]
            changed.append(row)
        JourneyDayStats.objects.bulk_create(new, batch_size=1000)
        JourneyDayStats.objects.bulk_update(
            changed, ["started", "completed", "on_time", "latency"], batch_size=1000
        )
    if gauges:
        existing_g = _locked_rows(JourneyGauge, ("journey_type", "entity_id"), gauges)
        new_g, changed_g = [], []
        for (jt, entity), (act, exc, risk, brc) in gauges.items():
            g = existing_g.get((jt, entity))
            if g is None:
                new_g.append(
                    JourneyGauge(
                        journey_type=jt,
                        entity_id=entity,
                        active=act,
                        in_exception=exc,
                        at_risk=risk,
                        breached=brc,
                    )
                )
                continue
            g.active += act
            g.in_exception += exc
            g.at_risk += risk
            g.breached += brc
            changed_g.append(g)
        JourneyGauge.objects.bulk_create(new_g)
        JourneyGauge.objects.bulk_update(
            changed_g, ["active", "in_exception", "at_risk", "breached"]
        )


def _apply_exceptions(rows: list[tuple]) -> None:
    sums: dict[tuple, int] = defaultdict(int)
    for jt, entity, hour, opened in rows:
        sums[(as_hour(hour), jt, entity)] += opened
    sums = {k: v for k, v in sums.items() if v}
    if not sums:
        return
    existing = _locked_rows(ExceptionOpenStats, ("hour", "journey_type", "entity_id"), sums)
    new, changed = [], []
    for (hour, jt, entity), opened in sums.items():
        row = existing.get((hour, jt, entity))
        if row is None:
            new.append(
                ExceptionOpenStats(hour=hour, journey_type=jt, entity_id=entity, open=opened)
            )
        else:
            row.open += opened
            changed.append(row)
    ExceptionOpenStats.objects.bulk_create(new, batch_size=1000)
    ExceptionOpenStats.objects.bulk_update(changed, ["open"], batch_size=1000)


def stats_rollup(*, batch: int = ROLLUP_BATCH) -> dict[str, int]:
    """Move every committed delta into the summaries; returns how many of each it moved."""
    moved = {"journey_deltas": 0, "exception_deltas": 0}
    while True:
        with transaction.atomic():
            _lock()
            journeys = _take(stats_sql.JOURNEY_DELTA, _J_COLS, batch)
            _apply_journeys(journeys)
            cases = _take(stats_sql.EXCEPTION_DELTA, _E_COLS, batch)
            _apply_exceptions(cases)
        moved["journey_deltas"] += len(journeys)
        moved["exception_deltas"] += len(cases)
        if len(journeys) < batch and len(cases) < batch:
            return moved


def stats_rebuild() -> dict[str, int]:
    """Recount the summaries from the journeys and exceptions. On PostgreSQL the two tables
    are locked against writes (reads go on) for the few seconds it takes, so no change falls
    between the recount and the deltas."""
    with transaction.atomic():
        _lock()
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("LOCK TABLE sync_journey, sync_exceptioncase IN SHARE MODE")
            for model in (
                JourneyStatDelta,
                ExceptionStatDelta,
                JourneyDayStats,
                JourneyGauge,
                ExceptionOpenStats,
            ):
                cursor.execute(f"DELETE FROM {model._meta.db_table}")  # noqa: S608
            for sql in stats_sql.seed_statements(connection.vendor):
                cursor.execute(sql)
    return stats_rollup()
