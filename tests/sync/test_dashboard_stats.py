"""The dashboard's summaries (trigger deltas + rollup) always equal a direct count of the
journeys and exceptions: before a rollup, after it, after a rebuild, whatever happened."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.dashboard import AGEING_KEYS, ageing_window, dashboard_read, hour_floor, percentile
from sync.models import (
    ExceptionCase,
    ExceptionStatDelta,
    Journey,
    JourneyDayStats,
    JourneyGauge,
    JourneyStatDelta,
)
from sync.models.stats import LATENCY_BOUNDS, LATENCY_BUCKETS
from sync.services.stats import stats_rebuild, stats_rollup
from tests.factories import ExceptionCaseFactory, JourneyFactory, LegalEntityFactory

pytestmark = pytest.mark.django_db

UNFINISHED_STATES = {"pending", "running", "retrying", "waiting", "exception"}


def _bucket(seconds: float) -> int:
    for i, bound in enumerate(LATENCY_BOUNDS):
        if seconds < bound:
            return i
    return len(LATENCY_BOUNDS)


def direct(days: int, now: dt.datetime) -> dict[tuple[str, int], dict]:
    """The figures counted straight from the tables, as the dashboard defines them."""
    end = now.date()
    start = end - dt.timedelta(days=days - 1)
    out: dict[tuple[str, int], dict] = defaultdict(
        lambda: {
            "started": 0,
            "completed": 0,
            "on_time": 0,
            "latency": [0] * LATENCY_BUCKETS,
            "active": 0,
            "in_exception": 0,
            "at_risk": 0,
            "breached": 0,
            "ageing": dict.fromkeys(AGEING_KEYS, 0),
        }
    )
    for j in Journey.objects.all():
        f = out[(j.journey_type, j.legal_entity_id or 0)]
        if start <= j.created_at.date() <= end:
            f["started"] += 1
        if j.state == "completed" and j.completed_at and start <= j.completed_at.date() <= end:
            f["completed"] += 1
            f["on_time"] += j.completed_at <= j.sla_due_at
            f["latency"][_bucket((j.completed_at - j.business_at).total_seconds())] += 1
        f["active"] += j.state in Journey.ACTIVE
        f["in_exception"] += j.state == "exception"
        f["at_risk"] += j.state in UNFINISHED_STATES and j.sla_state == "at_risk"
        f["breached"] += j.state in UNFINISHED_STATES and j.sla_state == "breached"
    for case in ExceptionCase.objects.select_related("journey"):
        if case.state not in ExceptionCase.ACTIVE:
            continue
        for key in AGEING_KEYS:
            after, before = ageing_window(key, now)
            if case.created_at < before and (after is None or case.created_at >= after):
                f = out[(case.journey.journey_type, case.legal_entity_id or 0)]
                f["ageing"][key] += 1
    return {k: v for k, v in out.items() if any(_nonzero(x) for x in v.values())}


def _nonzero(value) -> bool:
    if isinstance(value, dict):
        return any(value.values())
    if isinstance(value, list):
        return any(value)
    return bool(value)


def read(days: int, now: dt.datetime) -> dict[tuple[str, int], dict]:
    board = dashboard_read(entity_ids=None, days=days, now=now)
    return {
        key: {
            "started": f.started,
            "completed": f.completed,
            "on_time": f.on_time,
            "latency": f.latency,
            "active": f.active,
            "in_exception": f.in_exception,
            "at_risk": f.at_risk,
            "breached": f.breached,
            "ageing": f.ageing,
        }
        for key, f in board.rows.items()
    }


def assert_matches(now: dt.datetime, days: int = 7) -> None:
    expected = direct(days, now)
    assert read(days, now) == expected
    stats_rollup()
    assert not JourneyStatDelta.objects.exists() and not ExceptionStatDelta.objects.exists()
    assert read(days, now) == expected
    stats_rebuild()
    assert read(days, now) == expected


def test_a_journey_life_moves_each_figure_once():
    now = timezone.now()
    us = LegalEntityFactory()
    j = JourneyFactory(legal_entity=us, state="pending", business_at=now - dt.timedelta(minutes=3))
    board = dashboard_read(entity_ids=None, days=1, now=now)
    fig = board.rows[("invoice_to_ledger", us.pk)]
    assert (fig.started, fig.active, fig.completed) == (1, 1, 0)
    # running, then exception with an open case, then replayed and completed late
    Journey.objects.filter(pk=j.pk).update(state="running")
    Journey.objects.filter(pk=j.pk).update(state="exception", sla_state="at_risk")
    case = ExceptionCaseFactory(journey=j)
    fig = dashboard_read(entity_ids=None, days=1, now=now).rows[("invoice_to_ledger", us.pk)]
    assert (fig.active, fig.in_exception, fig.at_risk, fig.open_exceptions) == (0, 1, 1, 1)
    ExceptionCase.objects.filter(pk=case.pk).update(state="in_progress")  # still needs work
    assert dashboard_read(entity_ids=None, days=1, now=now).total.open_exceptions == 1
    ExceptionCase.objects.filter(pk=case.pk).update(state="resolved")
    Journey.objects.filter(pk=j.pk).update(
        state="completed", completed_at=j.sla_due_at + dt.timedelta(seconds=1)
    )
    fig = dashboard_read(entity_ids=None, days=1, now=now).rows[("invoice_to_ledger", us.pk)]
    assert (fig.started, fig.completed, fig.on_time, fig.late) == (1, 1, 0, 1)
    assert (fig.active, fig.in_exception, fig.at_risk, fig.open_exceptions) == (0, 0, 0, 0)
    assert fig.compliance == 0.0
    latency = (j.sla_due_at + dt.timedelta(seconds=1) - j.business_at).total_seconds()
    assert fig.latency[_bucket(latency)] == 1 and sum(fig.latency) == 1
    assert_matches(now, days=1)


def test_bulk_updates_and_deletes_are_counted_once_per_row():
    now = timezone.now()
    us, uk = LegalEntityFactory(), LegalEntityFactory(code="uk-ltd", functional_currency="GBP")
    for i in range(30):
        JourneyFactory(
            legal_entity=us if i % 2 else uk,
            journey_type="payment_to_ledger" if i % 3 else "invoice_to_ledger",
            state="pending",
            business_at=now - dt.timedelta(minutes=i),
        )
    Journey.objects.filter(legal_entity=us).update(state="waiting", sla_state="breached")
    Journey.objects.filter(legal_entity=uk, journey_type="invoice_to_ledger").update(
        state="completed", completed_at=now
    )
    Journey.objects.filter(legal_entity=uk).exclude(state="completed")[:2].values("pk")
    Journey.objects.filter(
        pk__in=list(
            Journey.objects.filter(legal_entity=uk, state="pending").values_list("pk", flat=True)[
                :3
            ]
        )
    ).delete()
    # An entity resolved late moves the journey's figures from "no entity" to the entity.
    orphan = JourneyFactory(legal_entity=None, state="running")
    assert dashboard_read(entity_ids=None, days=1, now=now).rows[("invoice_to_ledger", 0)].active
    Journey.objects.filter(pk=orphan.pk).update(legal_entity=us)
    assert_matches(now, days=1)


def test_rollup_is_idempotent_and_keeps_figures_exact_between_runs():
    now = timezone.now()
    us = LegalEntityFactory()
    JourneyFactory.create_batch(5, legal_entity=us, state="completed", completed_at=now)
    stats_rollup()
    assert stats_rollup() == {"journey_deltas": 0, "exception_deltas": 0}
    assert JourneyDayStats.objects.get().completed == 5
    JourneyFactory.create_batch(2, legal_entity=us, state="running")
    assert not JourneyGauge.objects.filter(active__gt=0).exists()  # not rolled up yet ...
    fig = dashboard_read(entity_ids=None, days=1, now=now).rows[("invoice_to_ledger", us.pk)]
    assert (fig.started, fig.completed, fig.active) == (7, 5, 2)  # ... but read exactly


def test_entity_scope_limits_the_figures():
    now = timezone.now()
    us, uk = LegalEntityFactory(), LegalEntityFactory(code="uk-ltd", functional_currency="GBP")
    JourneyFactory.create_batch(3, legal_entity=us, state="running")
    JourneyFactory.create_batch(4, legal_entity=uk, state="running")
    only_us = dashboard_read(entity_ids=frozenset({us.pk}), days=1, now=now)
    assert list(only_us.rows) == [("invoice_to_ledger", us.pk)]
    assert only_us.total.active == 3
    nothing = dashboard_read(entity_ids=frozenset(), days=1, now=now)
    assert nothing.rows == {} and nothing.total.active == 0


def test_exception_ageing_buckets_by_hour_of_creation():
    now = timezone.now().replace(minute=30)
    us = LegalEntityFactory()
    ages = {"lt1h": [0], "1h-4h": [2], "4h-24h": [5, 23], "1d-3d": [30], "gt7d": [24 * 9]}
    for hours in (h for hs in ages.values() for h in hs):
        case = ExceptionCaseFactory(journey__legal_entity=us)
        ExceptionCase.objects.filter(pk=case.pk).update(created_at=now - dt.timedelta(hours=hours))
    fig = dashboard_read(entity_ids=None, days=1, now=now).total
    assert fig.ageing == {"lt1h": 1, "1h-4h": 1, "4h-24h": 2, "1d-3d": 1, "3d-7d": 0, "gt7d": 1}
    assert_matches(now, days=1)


def test_percentile_interpolates_inside_the_bucket():
    hist = [0] * LATENCY_BUCKETS
    hist[_bucket(45)] = 10  # 30..60 s
    assert percentile(hist, 0.5) == pytest.approx(45.0)
    assert percentile(hist, 0.95) == pytest.approx(58.5)
    assert percentile([0] * LATENCY_BUCKETS, 0.5) is None
    hist = [0] * LATENCY_BUCKETS
    hist[-1] = 3
    assert percentile(hist, 0.95) == LATENCY_BOUNDS[-1]


@st.composite
def histories(draw):
    ops = []
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        ops.append(
            draw(
                st.tuples(
                    st.sampled_from(["new", "state", "sla", "entity", "case", "close", "delete"]),
                    st.integers(min_value=0, max_value=20),
                    st.sampled_from(sorted(Journey.State.values)),
                    st.sampled_from(["on_track", "at_risk", "breached"]),
                    st.integers(min_value=0, max_value=200),  # hours ago / latency minutes
                )
            )
        )
    return ops


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=histories())
def test_any_history_of_changes_is_summarized_exactly(ops):
    now = timezone.now()
    entities = [LegalEntityFactory(), LegalEntityFactory(code="uk-ltd", functional_currency="GBP")]
    journeys: list[Journey] = []
    cases: list[ExceptionCase] = []
    for op, n, state, sla, amount in ops:
        entity = entities[n % 2] if n % 5 else None
        if op == "new" or not journeys:
            journeys.append(
                JourneyFactory(
                    legal_entity=entity,
                    journey_type=["invoice_to_ledger", "payment_to_ledger"][n % 2],
                    state="pending",
                    business_at=now - dt.timedelta(minutes=amount),
                )
            )
            continue
        j = journeys[n % len(journeys)]
        qs = Journey.objects.filter(pk=j.pk)
        if op == "state":
            done = now - dt.timedelta(hours=amount % 30) if state == "completed" else None
            qs.update(state=state, completed_at=done)
        elif op == "sla":
            qs.update(sla_state=sla)
        elif op == "entity":
            qs.update(legal_entity=entity)
        elif op == "case" and qs.exists():
            case = ExceptionCaseFactory(journey=j, legal_entity=entity)
            ExceptionCase.objects.filter(pk=case.pk).update(
                created_at=now - dt.timedelta(hours=amount)
            )
            cases.append(case)
        elif op == "close" and cases:
            ExceptionCase.objects.filter(pk=cases[n % len(cases)].pk).update(
                state=["resolved", "ignored", "open", "in_progress"][amount % 4]
            )
        elif op == "delete":
            qs.delete()
            journeys.remove(j)
            cases = [c for c in cases if c.journey_id != j.pk]
        if n % 4 == 0:
            stats_rollup()  # a rollup may land at any point
    assert read(3, now) == direct(3, now)
    stats_rollup()
    assert read(3, now) == direct(3, now)
    Journey.objects.all().delete()
    stats_rollup()
    assert read(3, now) == {}
    assert hour_floor(now) <= now
