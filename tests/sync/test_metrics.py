"""Metrics computed from the tables, their text format, and JSON log lines."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import uuid

import pytest
from django.utils import timezone
from pythonjsonlogger.json import JsonFormatter

from connectors import http
from sync import metrics
from sync.log import CorrelationIdFilter
from sync.models import ExceptionCase, InboundEvent, Journey, Step, WebhookRejection

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)

# --- a strict reader of the text exposition format, to check what we render -----------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?\}})? (\S+)$")


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def parse(text: str) -> dict[str, dict]:
    """{name: {"type", "help", "samples": {frozenset(labels): value}}}; raises on any line
    that is not valid version 0.0.4 text format as we use it."""
    assert text.endswith("\n")
    families: dict[str, dict] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in families, f"second HELP for {name}"
            families[name] = {"help": help_text, "type": None, "samples": {}}
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert families[name]["type"] is None and kind in {"gauge", "counter"}
            families[name]["type"] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name = match.group(1)
            assert families[name]["type"], f"sample before TYPE: {line!r}"
            if families[name]["type"] == "counter":
                assert name.endswith("_total")
            labels = frozenset(
                (k, _unescape(v)) for k, v in re.findall(_LABEL, match.group(2) or "")
            )
            assert labels not in families[name]["samples"], f"duplicate series: {line!r}"
            families[name]["samples"][labels] = float(match.group(match.lastindex))
    return families


def value(families: dict, name: str, **labels: str) -> float:
    return families[name]["samples"][frozenset(labels.items())]


# --- data ------------------------------------------------------------------------------------


def _event(n: int, state: str = InboundEvent.State.RECEIVED, source: str = "stripe"):
    return InboundEvent.objects.create(
        source_system=source,
        source_event_id=f"evt_{source}_{n}",
        event_type="invoice.finalized",
        occurred_at=NOW,
        aggregate_key=f"in_{n}",
        payload={},
        state=state,
    )


def _journey(key: str, state: str = Journey.State.RUNNING, **kwargs) -> Journey:
    return Journey.objects.create(
        journey_type=kwargs.pop("journey_type", "invoice_to_ledger"),
        business_key=key,
        aggregate_key=key,
        state=state,
        business_at=NOW,
        sla_due_at=NOW + dt.timedelta(hours=4),
        sla_warning_at=NOW + dt.timedelta(hours=3),
        **kwargs,
    )


def _step(journey: Journey, position: int, name: str, state: str, **kwargs) -> Step:
    return Step.objects.create(journey=journey, position=position, name=name, state=state, **kwargs)


def _rejection(reason: str, day: dt.date, count: int, source: str = "stripe"):
    WebhookRejection.objects.create(
        source_system=source, reason=reason, day=day, count=count, last_at=NOW
    )


@pytest.mark.django_db
def test_metrics_count_what_the_tables_hold():
    for n in range(2):
        _event(n, InboundEvent.State.DISPATCHED)
    _event(2, InboundEvent.State.RECEIVED)
    _rejection("bad_signature", NOW.date() - dt.timedelta(days=1), 1)
    _rejection("bad_signature", NOW.date(), 1)
    _rejection("bad_envelope", NOW.date(), 4)

    # A journey retrying at its second step, due 90 s ago: the one runnable step.
    retrying = _journey("in_1", Journey.State.RETRYING)
    _step(retrying, 0, "validate", Step.State.SUCCEEDED)
    _step(
        retrying,
        1,
        "post_entry",
        Step.State.RETRYING,
        next_attempt_at=NOW - dt.timedelta(seconds=90),
        enqueued_at=NOW - dt.timedelta(seconds=5),  # re-enqueued by the sweeper since
    )
    _step(retrying, 2, "confirm_in_erp", Step.State.PENDING)  # waits for post_entry
    # Retrying but not due yet: not in the queue.
    later = _journey("in_2", Journey.State.RETRYING, sla_state=Journey.SlaState.AT_RISK)
    _step(later, 0, "validate", Step.State.RETRYING, next_attempt_at=NOW + dt.timedelta(minutes=1))
    # Stopped in exception: its failed step is not runnable; its case is open.
    stopped = _journey("in_3", Journey.State.EXCEPTION, sla_state=Journey.SlaState.BREACHED)
    failed = _step(stopped, 0, "validate", Step.State.FAILED)
    _step(stopped, 1, "post_entry", Step.State.PENDING)
    ExceptionCase.objects.create(
        journey=stopped, step=failed, category="unmapped_product", summary="Map the product."
    )
    # Completed (late): counted by state, not among the open journeys by SLA.
    done = _journey("in_4", Journey.State.COMPLETED, sla_state=Journey.SlaState.BREACHED)
    _step(done, 0, "validate", Step.State.SUCCEEDED)
    # An exception already resolved does not count.
    ExceptionCase.objects.create(
        journey=done,
        step=done.steps.get(),
        category="unmapped_product",
        summary="Fixed.",
        state=ExceptionCase.State.RESOLVED,
    )

    m = parse(metrics.metrics_text(now=NOW))

    assert value(m, "rct_inbound_events_received_total", source="stripe") == 3
    assert value(m, "rct_inbound_events", source="stripe", state="dispatched") == 2
    assert value(m, "rct_inbound_events", source="stripe", state="received") == 1
    assert value(m, "rct_webhook_rejections_total", source="stripe", reason="bad_signature") == 2
    assert value(m, "rct_webhook_rejections_total", source="stripe", reason="bad_envelope") == 4
    assert m["rct_webhook_rejections_total"]["type"] == "counter"

    assert value(m, "rct_queue_depth") == 1
    assert value(m, "rct_queue_oldest_due_age_seconds") == 90
    assert m["rct_queue_depth"]["type"] == "gauge"

    jt = "invoice_to_ledger"
    assert value(m, "rct_journeys", journey_type=jt, state="retrying") == 2
    assert value(m, "rct_journeys", journey_type=jt, state="exception") == 1
    assert value(m, "rct_journeys", journey_type=jt, state="completed") == 1
    sla = m["rct_journeys_open_by_sla"]["samples"]
    assert sla == {
        frozenset({("journey_type", jt), ("sla_state", "on_track")}): 1,
        frozenset({("journey_type", jt), ("sla_state", "at_risk")}): 1,
        frozenset({("journey_type", jt), ("sla_state", "breached")}): 1,
    }

    assert value(m, "rct_steps", journey_type=jt, step="validate", state="succeeded") == 2
    assert value(m, "rct_steps", journey_type=jt, step="validate", state="failed") == 1
    assert value(m, "rct_steps", journey_type=jt, step="post_entry", state="pending") == 1
    assert value(m, "rct_steps", journey_type=jt, step="post_entry", state="retrying") == 1

    assert value(m, "rct_exceptions_open", category="unmapped_product") == 1
    # Every category is exported, so an alert on it has a series from the start.
    assert value(m, "rct_exceptions_open", category="connector_auth") == 0
    assert len(m["rct_exceptions_open"]["samples"]) == len(ExceptionCase.Category.values)


@pytest.mark.django_db
def test_empty_tables_give_zero_queue_and_all_families():
    m = parse(metrics.metrics_text(now=NOW))
    assert value(m, "rct_queue_depth") == 0
    assert value(m, "rct_queue_oldest_due_age_seconds") == 0
    assert set(m) == {
        "rct_inbound_events_received_total",
        "rct_inbound_events",
        "rct_webhook_rejections_total",
        "rct_journeys",
        "rct_journeys_open_by_sla",
        "rct_steps",
        "rct_queue_depth",
        "rct_queue_oldest_due_age_seconds",
        "rct_exceptions_open",
    }
    assert all(name.startswith("rct_") and f["help"] for name, f in m.items())


@pytest.mark.django_db
def test_pending_step_is_due_since_its_journey_last_changed():
    """A pending step never had a next_attempt_at: it waits since its journey started (or its
    previous step succeeded), however often the sweeper re-enqueued it."""
    journey = _journey("in_9", Journey.State.PENDING)
    Journey.objects.filter(pk=journey.pk).update(updated_at=NOW - dt.timedelta(minutes=10))
    _step(journey, 0, "validate", Step.State.PENDING, enqueued_at=NOW - dt.timedelta(seconds=3))
    _step(journey, 1, "post_entry", Step.State.PENDING)
    # A cancelled journey's pending step is not in the queue.
    waiting = _journey("in_10", Journey.State.CANCELLED)
    _step(waiting, 0, "validate", Step.State.PENDING)

    m = parse(metrics.metrics_text(now=NOW))
    assert value(m, "rct_queue_depth") == 1
    assert value(m, "rct_queue_oldest_due_age_seconds") == 600


@pytest.mark.django_db
def test_queue_age_uses_the_real_clock_by_default():
    journey = _journey("in_11", Journey.State.RETRYING)
    _step(
        journey,
        0,
        "validate",
        Step.State.RETRYING,
        next_attempt_at=timezone.now() - dt.timedelta(seconds=90),
    )
    m = parse(metrics.metrics_text())
    assert value(m, "rct_queue_depth") == 1
    assert 90 <= value(m, "rct_queue_oldest_due_age_seconds") < 120


@pytest.mark.django_db
def test_metrics_are_a_fixed_number_of_queries(django_assert_num_queries):
    for n in range(5):
        _event(n)
        journey = _journey(f"in_{n}")
        _step(journey, 0, "validate", Step.State.PENDING)
    with django_assert_num_queries(6):
        metrics.collect(now=NOW)


def test_label_values_and_help_are_escaped():
    metric = metrics.Metric("rct_x", "gauge", 'Back\\slash and\nnewline "kept".')
    metric.add(1.5, source='we"ird\\src\nname')
    metric.add(2, source="plain")
    text = metrics.render([metric])
    assert '# HELP rct_x Back\\\\slash and\\nnewline "kept".' in text
    m = parse(text)
    assert value(m, "rct_x", source='we"ird\\src\nname') == 1.5
    assert 'rct_x{source="plain"} 2\n' in text


def test_values_are_formatted_for_prometheus():
    fmt = metrics._format_value
    assert [fmt(3), fmt(3.0), fmt(0.25), fmt(float("inf")), fmt(float("nan"))] == [
        "3",
        "3",
        "0.25",
        "+Inf",
        "NaN",
    ]


# --- JSON logs ---------------------------------------------------------------------------------


def test_json_log_lines_carry_the_correlation_id(settings):
    """The formatter LOG_FORMAT=json selects, on a handler with the correlation filter."""
    from django.utils.module_loading import import_string

    conf = dict(settings.LOGGING["formatters"]["json"])
    formatter = import_string(conf.pop("()"))(**conf)
    assert isinstance(formatter, JsonFormatter)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(CorrelationIdFilter())
    logger = logging.getLogger("tests.json_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    cid = str(uuid.uuid4())
    try:
        with http.correlation(cid):
            logger.info('posted "%s"\nto the ERP', "RCT-STRIPE-in_1", extra={"step": "post"})
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("step failed")
        logger.warning("outside any journey")
    finally:
        logger.removeHandler(handler)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 3
    first, second, third = lines
    assert first["message"] == 'posted "RCT-STRIPE-in_1"\nto the ERP'
    assert first["level"] == "INFO"
    assert first["logger"] == "tests.json_logs"
    assert first["correlation_id"] == cid
    assert first["step"] == "post"
    assert dt.datetime.fromisoformat(first["time"]).tzinfo is not None
    assert second["correlation_id"] == cid
    assert "ValueError: boom" in second["exc_info"]
    assert third["correlation_id"] == "-"


def test_console_handler_uses_the_chosen_format(settings):
    assert settings.LOGGING["handlers"]["console"]["formatter"] == settings.LOG_FORMAT
    assert settings.LOG_FORMAT in settings.LOGGING["formatters"]
