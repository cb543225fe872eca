"""Operational metrics, computed from our own tables and rendered in the Prometheus text format.

The tables are the system of record, so the numbers are the same whichever web process answers
the scrape and however many workers run: nothing is kept in process memory. Each scrape runs a
fixed handful of aggregate (GROUP BY) queries, whatever the volume of data.

Metric names start with ``rct_``. Gauges describe the present; the two counters only grow
(inbox rows and rejection counters are never deleted).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Count, DateTimeField, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from sync.engine import _earlier_unfinished
from sync.models import ExceptionCase, InboundEvent, Journey, Step, WebhookRejection

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


@dataclass
class Metric:
    """One metric family: a name, its type, a help sentence and labelled values."""

    name: str
    kind: str  # "gauge" or "counter"
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def add(self, value: float, **labels: object) -> None:
        self.samples.append((tuple((k, str(v)) for k, v in labels.items()), value))


def collect(*, now: dt.datetime | None = None) -> list[Metric]:
    """Every metric, read from the database in six aggregate queries."""
    now = now or timezone.now()
    metrics: list[Metric] = []

    # 1. The inbox, per source and state; the total per source is the received counter.
    events = Metric(
        "rct_inbound_events",
        "gauge",
        "Inbound events in the inbox, by source system and current state.",
    )
    received = Metric(
        "rct_inbound_events_received_total",
        "counter",
        "Verified inbound events accepted into the inbox, by source system.",
    )
    per_source: dict[str, int] = defaultdict(int)
    for row in (
        InboundEvent.objects.order_by()
        .values("source_system", "state")
        .annotate(n=Count("pk"))
        .order_by("source_system", "state")
    ):
        events.add(row["n"], source=row["source_system"], state=row["state"])
        per_source[row["source_system"]] += row["n"]
    for source, n in sorted(per_source.items()):
        received.add(n, source=source)
    metrics += [received, events]

    # 2. Rejected webhook deliveries, summed over the daily counters.
    rejected = Metric(
        "rct_webhook_rejections_total",
        "counter",
        "Webhook deliveries rejected before the inbox (bad signature, bad envelope...), "
        "by source system and reason.",
    )
    for row in (
        WebhookRejection.objects.order_by()
        .values("source_system", "reason")
        .annotate(n=Sum("count"))
        .order_by("source_system", "reason")
    ):
        rejected.add(row["n"] or 0, source=row["source_system"], reason=row["reason"])
    metrics.append(rejected)

    # 3. Journeys by type and state, and the open ones (not completed or cancelled) by SLA.
    journeys = Metric("rct_journeys", "gauge", "Journeys by type and state.")
    sla = Metric(
        "rct_journeys_open_by_sla",
        "gauge",
        "Journeys not completed or cancelled (active or in exception), by type and SLA state.",
    )
    by_state: dict[tuple[str, str], int] = defaultdict(int)
    by_sla: dict[tuple[str, str], int] = defaultdict(int)
    for row in (
        Journey.objects.order_by()
        .values("journey_type", "state", "sla_state")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        by_state[row["journey_type"], row["state"]] += row["n"]
        if row["state"] not in Journey.TERMINAL:
            by_sla[row["journey_type"], row["sla_state"]] += row["n"]
    for (jtype, state), n in sorted(by_state.items()):
        journeys.add(n, journey_type=jtype, state=state)
    for (jtype, sla_state), n in sorted(by_sla.items()):
        sla.add(n, journey_type=jtype, sla_state=sla_state)
    metrics += [journeys, sla]

    # 4. Steps by journey type, step name and state (the outcome of finished ones).
    steps = Metric("rct_steps", "gauge", "Journey steps by journey type, step name and state.")
    for row in (
        Step.objects.order_by()
        .values("journey__journey_type", "name", "state")
        .annotate(n=Count("pk"))
        .order_by("journey__journey_type", "name", "state")
    ):
        steps.add(
            row["n"],
            journey_type=row["journey__journey_type"],
            step=row["name"],
            state=row["state"],
        )
    metrics.append(steps)

    # 5. The queue: steps a worker may claim now (the engine's own test: journey active, step
    # pending or retrying and due, every earlier step done). A retrying step is due since its
    # next_attempt_at; a pending one since its journey last changed (started, previous step
    # succeeded, replayed). enqueued_at is not used: the sweeper refreshes it every 30 s, which
    # would hide a queue nobody is draining.
    queue = (
        Step.objects.filter(journey__state__in=Journey.ACTIVE, state__in=Step.RUNNABLE)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(~_earlier_unfinished())
        .aggregate(
            depth=Count("pk"),
            oldest=Min(
                Coalesce("next_attempt_at", "journey__updated_at", output_field=DateTimeField())
            ),
        )
    )
    oldest = queue["oldest"]
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    metrics.append(
        Metric(
            "rct_queue_depth",
            "gauge",
            "Steps due to run now (pending or retrying and due, journey active, earlier steps "
            "done).",
            [((), queue["depth"])],
        )
    )
    metrics.append(
        Metric(
            "rct_queue_oldest_due_age_seconds",
            "gauge",
            "Seconds since the longest-waiting runnable step became due; 0 when none is due.",
            [((), round(age, 3))],
        )
    )

    # 6. Open exception cases by category; every category is present, 0 when none is open.
    cases = Metric(
        "rct_exceptions_open",
        "gauge",
        "Exception cases open or in progress, by category.",
    )
    open_by_category = dict(
        ExceptionCase.objects.filter(state__in=ExceptionCase.ACTIVE)
        .order_by()
        .values("category")
        .annotate(n=Count("pk"))
        .values_list("category", "n")
    )
    for category in sorted(set(ExceptionCase.Category.values) | set(open_by_category)):
        cases.add(open_by_category.get(category, 0), category=category)
    metrics.append(cases)
    return metrics


# --- the text exposition format (version 0.0.4) ------------------------------------------------


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _format_value(value: float) -> str:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer():
        return str(int(value))
    return repr(value)


def render(metrics: Iterable[Metric]) -> str:
    """The Prometheus text format: HELP and TYPE once per family, then its samples."""
    lines: list[str] = []
    for metric in metrics:
        lines.append(f"# HELP {metric.name} {_escape_help(metric.help)}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        for labels, value in metric.samples:
            label_text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
            name = f"{metric.name}{{{label_text}}}" if label_text else metric.name
            lines.append(f"{name} {_format_value(value)}")
    return "\n".join(lines) + "\n"


def metrics_text(*, now: dt.datetime | None = None) -> str:
    return render(collect(now=now))
