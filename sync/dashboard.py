"""The SLA dashboard's figures, read from the summaries plus the deltas not rolled up yet (see
``sync.models.stats``): a handful of small queries however many journeys there are.

Definitions (the screen says them too):

- *started*: journeys created in the period; *completed*: journeys that completed in it;
- *SLA compliance*: of those completed, the share completed by their SLA due time;
- *latency*: business event to completion, p50/p95 estimated from a histogram (interpolated
  inside the bucket, so within one bucket's width of the exact value);
- *in flight*, *in exception*, *at risk*, *breached*: unfinished journeys now;
- *exception ageing*: open (or in progress) exceptions now, by age of the hour they were
  created in.

Days are UTC days. Scoping: the caller passes the entity ids the reader may see.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Case, IntegerField, Q, QuerySet, Sum, Value, When
from django.utils import timezone

from sync.models import (
    ExceptionOpenStats,
    ExceptionStatDelta,
    JourneyDayStats,
    JourneyGauge,
    JourneyStatDelta,
)
from sync.models.stats import LATENCY_BOUNDS, LATENCY_BUCKETS
from sync.services.stats import as_date, fold_journey_deltas

TREND_DAYS = 30
# (key, label, lower bound, upper bound) of the age of an open exception.
AGEING = (
    ("lt1h", "< 1 h", dt.timedelta(0), dt.timedelta(hours=1)),
    ("1h-4h", "1-4 h", dt.timedelta(hours=1), dt.timedelta(hours=4)),
    ("4h-24h", "4-24 h", dt.timedelta(hours=4), dt.timedelta(hours=24)),
    ("1d-3d", "1-3 d", dt.timedelta(days=1), dt.timedelta(days=3)),
    ("3d-7d", "3-7 d", dt.timedelta(days=3), dt.timedelta(days=7)),
    ("gt7d", "> 7 d", dt.timedelta(days=7), None),
)
AGEING_KEYS = tuple(a[0] for a in AGEING)


def hour_floor(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ageing_window(key: str, now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``created_at`` bounds ``[after, before)`` of the exceptions in ageing bucket ``key``:
    the hour of creation ``H`` is in the bucket when ``low <= now - H < high``. The exception
    list filters with these, so its count is the dashboard's."""
    for name, _, low, high in AGEING:
        if name == key:
            before = hour_floor(now - low) + dt.timedelta(hours=1)
            after = hour_floor(now - high) + dt.timedelta(hours=1) if high else None
            return after, before
    raise ValueError(f"unknown ageing bucket {key!r}")


def percentile(hist: list[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a latency histogram, in seconds, interpolated inside its
    bucket; None without data. The open-ended last bucket answers its lower bound."""
    total = sum(hist)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(hist):
        if count <= 0:
            continue
        if seen + count >= rank:
            low = 0 if i == 0 else LATENCY_BOUNDS[i - 1]
            if i >= len(LATENCY_BOUNDS):
                return float(low)
            high = LATENCY_BOUNDS[i]
            return low + (high - low) * max(0.0, rank - seen) / count
        seen += count
    return float(LATENCY_BOUNDS[-1])


@dataclass
class Figures:
    started: int = 0
    completed: int = 0
    on_time: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)
    active: int = 0
    in_exception: int = 0
    at_risk: int = 0
    breached: int = 0
    ageing: dict[str, int] = field(default_factory=lambda: dict.fromkeys(AGEING_KEYS, 0))

    def add(self, other: Figures) -> None:
        self.started += other.started
        self.completed += other.completed
        self.on_time += other.on_time
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]
        self.active += other.active
        self.in_exception += other.in_exception
        self.at_risk += other.at_risk
        self.breached += other.breached
        for k, v in other.ageing.items():
            self.ageing[k] += v

    @property
    def late(self) -> int:
        return self.completed - self.on_time

    @property
    def compliance(self) -> float | None:
        """Percent of completed journeys completed on time."""
        return 100.0 * self.on_time / self.completed if self.completed else None

    @property
    def p50(self) -> float | None:
        return percentile(self.latency, 0.50)

    @property
    def p95(self) -> float | None:
        return percentile(self.latency, 0.95)

    @property
    def open_exceptions(self) -> int:
        return sum(self.ageing.values())

    @property
    def is_empty(self) -> bool:
        return not (
            self.started
            or self.completed
            or self.active
            or self.in_exception
            or self.at_risk
            or self.breached
            or self.open_exceptions
        )


@dataclass
class TrendPoint:
    day: dt.date
    started: int = 0
    completed: int = 0
    on_time: int = 0

    @property
    def compliance(self) -> float | None:
        return 100.0 * self.on_time / self.completed if self.completed else None


@dataclass
class Dashboard:
    start: dt.date
    end: dt.date
    now: dt.datetime
    rows: dict[tuple[str, int], Figures]
    total: Figures
    trend: list[TrendPoint]


def _narrow(qs: QuerySet, entity_ids: frozenset[int] | None, journey_type: str | None):
    if entity_ids is not None:
        qs = qs.filter(entity_id__in=entity_ids)
    if journey_type:
        qs = qs.filter(journey_type=journey_type)
    return qs


def _ageing_case(now: dt.datetime) -> Case:
    whens = []
    for key in AGEING_KEYS:
        after, before = ageing_window(key, now)
        cond = Q(hour__lt=before)
        if after is not None:
            cond &= Q(hour__gte=after)
        whens.append(When(cond, then=Value(AGEING_KEYS.index(key))))
    return Case(*whens, default=Value(-1), output_field=IntegerField())


def dashboard_read(
    *,
    entity_ids: frozenset[int] | None,
    journey_type: str | None = None,
    days: int = 7,
    now: dt.datetime | None = None,
) -> Dashboard:
    """Figures per (journey type, entity id) and in total for the last ``days`` UTC days
    (today included), the daily trend of the last ``TREND_DAYS`` days, and the gauges now.
    ``entity_ids`` None means every entity (0 is "no entity yet")."""
    now = now or timezone.now()
    end = now.astimezone(dt.UTC).date()
    start = end - dt.timedelta(days=days - 1)
    trend_start = min(start, end - dt.timedelta(days=TREND_DAYS - 1))
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            _snapshot()
        day_rows = list(
            _narrow(
                JourneyDayStats.objects.filter(day__gte=trend_start, day__lte=end),
                entity_ids,
                journey_type,
            ).values_list(
                "journey_type", "entity_id", "day", "started", "completed", "on_time", "latency"
            )
        )
        pending = list(
            _narrow(JourneyStatDelta.objects.all(), entity_ids, journey_type)
            .values_list("journey_type", "entity_id", "day", "latency_bucket")
            .annotate(
                Sum("started"),
                Sum("completed"),
                Sum("on_time"),
                Sum("active"),
                Sum("in_exception"),
                Sum("at_risk"),
                Sum("breached"),
            )
            .order_by()
        )
        gauges = list(
            _narrow(JourneyGauge.objects.all(), entity_ids, journey_type).values_list(
                "journey_type", "entity_id", "active", "in_exception", "at_risk", "breached"
            )
        )
        ageing = []
        for model in (ExceptionOpenStats, ExceptionStatDelta):
            ageing += list(
                _narrow(model.objects.all(), entity_ids, journey_type)
                .annotate(bucket=_ageing_case(now))
                .values_list("journey_type", "entity_id", "bucket")
                .annotate(n=Sum("open"))
                .order_by()
            )
    rows: dict[tuple[str, int], Figures] = defaultdict(Figures)
    trend = {
        trend_start + dt.timedelta(days=i): TrendPoint(trend_start + dt.timedelta(days=i))
        for i in range((end - trend_start).days + 1)
    }

    def flow(
        jt: str,
        entity: int,
        day: dt.date,
        started: int,
        completed: int,
        on_time: int,
        hist: list[int],
    ) -> None:
        point = trend.get(day)
        if point is not None:
            point.started += started
            point.completed += completed
            point.on_time += on_time
        if start <= day <= end:
            fig = rows[(jt, entity)]
            fig.started += started
            fig.completed += completed
            fig.on_time += on_time
            fig.latency = [a + b for a, b in zip(fig.latency, hist, strict=True)]

    for jt, entity, day, started, completed, on_time, hist in day_rows:
        hist = list(hist) + [0] * (LATENCY_BUCKETS - len(hist))
        flow(jt, entity, as_date(day), started, completed, on_time, hist)
    pending_days, pending_gauges = fold_journey_deltas(pending)
    for (day, jt, entity), (started, completed, on_time, hist) in pending_days.items():
        flow(jt, entity, day, started, completed, on_time, hist)
    for jt, entity, act, exc, risk, brc in gauges:
        fig = rows[(jt, entity)]
        fig.active += act
        fig.in_exception += exc
        fig.at_risk += risk
        fig.breached += brc
    for (jt, entity), (act, exc, risk, brc) in pending_gauges.items():
        fig = rows[(jt, entity)]
        fig.active += act
        fig.in_exception += exc
        fig.at_risk += risk
        fig.breached += brc
    for jt, entity, bucket, n in ageing:
        if bucket >= 0 and n:
            rows[(jt, entity)].ageing[AGEING_KEYS[bucket]] += n
    rows = {k: v for k, v in rows.items() if not v.is_empty}
    total = Figures()
    for fig in rows.values():
        total.add(fig)
    return Dashboard(
        start=start,
        end=end,
        now=now,
        rows=dict(sorted(rows.items())),
        total=total,
        trend=[trend[d] for d in sorted(trend)],
    )


def _snapshot() -> None:
    """Summaries and pending deltas must be read from one snapshot, or a rollup committing
    between two reads would count a delta twice (or not at all). On PostgreSQL: REPEATABLE
    READ, set as the transaction's first statement (so only when the dashboard opens the
    transaction; a test's wrapping transaction has no concurrent rollup). A SQLite read
    transaction reads one snapshot already."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
