"""The SLA dashboard (home): per journey type and legal entity, what started and completed in
the period, SLA compliance, latency, what is open now and how old the exceptions are, with the
trend of the last 30 days. Every figure links to the list of the records behind it.

The figures come from ``sync.dashboard`` (summaries fed by trigger deltas), so the page costs
the same at a million journeys as at ten. It refreshes itself every 30 s (htmx polling of the
``board`` partial).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from controltower.charts import Bar, DayBar, hbar_chart, trend_chart
from controltower.views.base import render_screen, screen
from sync.dashboard import AGEING, Figures, dashboard_read
from sync.journeys import registry
from sync.models import ExceptionCase, Journey
from sync.permissions import entity_scope
from sync.selectors import entities_visible_to

TEMPLATE = "controltower/dashboard.html"
PERIODS = {1: "Today", 7: "Last 7 days", 30: "Last 30 days", 90: "Last 90 days"}
DEFAULT_DAYS = 7
NO_ENTITY = "(no entity yet)"


def _url(name: str, params: list[tuple[str, str]]) -> str:
    return f"{reverse(name)}?{urlencode([('filtered', '1'), *params])}"


@dataclass
class Links:
    """The list behind each figure of one row of the dashboard."""

    base: list[tuple[str, str]]
    start: dt.date
    end: dt.date

    def _j(self, *extra: tuple[str, str]) -> str:
        return _url("journey-list", [*self.base, *extra])

    @property
    def started(self) -> str:
        return self._j(("created_from", f"{self.start}"), ("created_to", f"{self.end}"))

    def _completed(self, *extra: tuple[str, str]) -> str:
        return self._j(
            ("state", Journey.State.COMPLETED),
            ("completed_from", f"{self.start}"),
            ("completed_to", f"{self.end}"),
            *extra,
        )

    @property
    def completed(self) -> str:
        return self._completed()

    @property
    def on_time(self) -> str:
        return self._completed(("sla_met", "true"))

    @property
    def late(self) -> str:
        return self._completed(("sla_met", "false"))

    @property
    def in_flight(self) -> str:
        return self._j(*[("state", str(s)) for s in sorted(Journey.ACTIVE)])

    @property
    def in_exception(self) -> str:
        return self._j(("state", Journey.State.EXCEPTION))

    @property
    def at_risk(self) -> str:
        return self._j(("unfinished", "true"), ("sla_state", Journey.SlaState.AT_RISK))

    @property
    def breached(self) -> str:
        return self._j(("unfinished", "true"), ("sla_state", Journey.SlaState.BREACHED))

    def ageing(self, key: str) -> str:
        states = [("state", str(s)) for s in sorted(ExceptionCase.ACTIVE)]
        return _url("exception-list", [*self.base, *states, ("age", key)])


@dataclass
class Row:
    journey_type: str
    entity: str
    figures: Figures
    links: Links

    @property
    def ageing(self) -> list[tuple[str, str, int, str]]:
        return [
            (key, label, self.figures.ageing[key], self.links.ageing(key))
            for key, label, _, _ in AGEING
        ]


def _base(journey_type: str | None, entity: str | None, no_entity: bool) -> list[tuple[str, str]]:
    params = []
    if journey_type:
        params.append(("journey_type", journey_type))
    if entity:
        params.append(("entity", entity))
    elif no_entity:
        params.append(("no_entity", "true"))
    return params


@screen
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    entities = list(entities_visible_to(request.user))
    codes = {e.pk: e.code for e in entities}
    errors: list[str] = []
    entity_ids = entity_scope(request.user)
    code = request.GET.get("entity", "").strip()
    if code:
        chosen = next((e for e in entities if e.code == code), None)
        if chosen is None:
            errors.append(f"No legal entity has the code “{code}”.")
            entity_ids = frozenset()
        else:
            entity_ids = frozenset({chosen.pk})
    journey_type = request.GET.get("journey_type", "").strip() or None
    if journey_type and journey_type not in registry():
        errors.append(f"There is no journey type “{journey_type}”.")
        entity_ids = frozenset()
    raw_days = request.GET.get("days", "").strip()
    valid = raw_days.isdigit() and int(raw_days) in PERIODS
    days = int(raw_days) if valid else DEFAULT_DAYS
    if raw_days and not valid:
        errors.append(f"Choose a period of {', '.join(map(str, PERIODS))} days.")

    board = dashboard_read(entity_ids=entity_ids, journey_type=journey_type, days=days)
    rows = [
        Row(
            journey_type=jt,
            entity=codes.get(entity_id, NO_ENTITY),
            figures=fig,
            links=Links(_base(jt, codes.get(entity_id), entity_id == 0), board.start, board.end),
        )
        for (jt, entity_id), fig in board.rows.items()
        if entity_id == 0 or entity_id in codes
    ]
    total_links = Links(_base(journey_type, code or None, False), board.start, board.end)
    total = Row("All types", code or "All entities", board.total, total_links)
    trend = trend_chart(
        [
            DayBar(
                label=f"{p.day}",
                short=p.day.strftime("%-d %b"),
                started=p.started,
                completed=p.completed,
                compliance=p.compliance,
                href=Links(_base(journey_type, code or None, False), p.day, p.day).started,
            )
            for p in board.trend
        ],
        title="Journeys started and completed per day, with SLA compliance, last 30 days",
    )
    ageing = hbar_chart(
        [Bar(label, count, href) for _, label, count, href in total.ageing],
        title="Open exceptions by age",
    )
    context = {
        "board": board,
        "rows": rows,
        "total": total,
        "trend_chart": trend,
        "ageing_chart": ageing,
        "errors": errors,
        "entities": entities,
        "journey_types": sorted(registry()),
        "periods": PERIODS,
        "days": days,
        "selected_entity": code,
        "selected_type": journey_type or "",
    }
    return render_screen(request, TEMPLATE, context, partial="board")
