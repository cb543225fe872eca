"""Connector health: the circuit breaker and the pause switch, through the real webhook, engine
and NetSuite emulator (engine inline with ``drain``)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from sync.engine import step_run, sweep
from sync.errors import PermissionDenied
from sync.models import AuditEntry, ConnectorHealth, ExceptionCase, Journey, Notification, Step
from sync.services.connector_health import (
    connector_available,
    connector_gate,
    connector_pause,
    connector_resume,
)
from tests.conftest import drain, emulator_faults, emulator_records
from tests.factories import link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import invoice_event, post_signed

pytestmark = pytest.mark.django_db
CH = ConnectorHealth.State


@pytest.fixture
def ledger(db, settings):
    settings.RCT = {
        **settings.RCT,
        "CIRCUIT_FAILURE_THRESHOLD": 5,
        "CIRCUIT_OPEN_SECONDS": 30,
        "MAX_STEP_ATTEMPTS": 6,
    }
    ledger = make_ledger()
    map_product("price_platform")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger


def _invoices(client, prefix: str, n: int) -> list[str]:
    keys = [f"in_{prefix}_{i:02d}" for i in range(n)]
    for key in keys:
        post_signed(client, invoice_event(invoice_id=key))
    return keys


def _post_steps(keys: list[str]) -> list[Step]:
    return list(
        Step.objects.filter(journey__business_key__in=keys, name="post_entry").order_by(
            "journey__business_key"
        )
    )


def _health() -> ConnectorHealth:
    return ConnectorHealth.objects.get(system="netsuite")


def _make_due(steps: list[Step]) -> None:
    Step.objects.filter(pk__in=[s.pk for s in steps]).update(next_attempt_at=timezone.now())


def _end_open_period() -> None:
    ConnectorHealth.objects.filter(system="netsuite").update(
        next_probe_at=timezone.now() - dt.timedelta(seconds=1)
    )


def test_five_503s_across_journeys_open_the_circuit_then_a_probe_closes_it(
    client, ledger, netsuite
):
    emulator_faults(netsuite, {"status": 503, "times": 5})
    first = _invoices(client, "a", 5)
    drain()
    # Each failed once (retrying; a short backoff may already have sent it to wait).
    for step in _post_steps(first):
        assert step.attempts == 1 and step.state in {Step.State.RETRYING, Step.State.PENDING}
    health = _health()
    assert health.state == CH.OPEN and health.consecutive_failures == 5
    assert health.next_probe_at > timezone.now() + dt.timedelta(seconds=25)
    assert "503" in health.last_error
    assert not connector_available("netsuite")
    assert AuditEntry.objects.filter(action="connector.open").count() == 1

    # While open, due steps (retries and new journeys alike) wait and spend no attempt.
    later = _invoices(client, "b", 3)
    _make_due(_post_steps(first))
    drain()
    for step in _post_steps(first):
        assert (step.state, step.attempts) == (Step.State.PENDING, 1)
        assert step.next_attempt_at == health.next_probe_at
        assert "waiting" in step.error_message.lower()
    for step in _post_steps(later):
        assert (step.state, step.attempts) == (Step.State.PENDING, 0)
    assert set(
        Journey.objects.filter(business_key__in=first + later).values_list("state", flat=True)
    ) == {Journey.State.WAITING}
    assert len(emulator_records(netsuite)) == 0

    # After the open period one step goes through as the probe; its success closes the circuit
    # and releases the others at once.
    _end_open_period()
    probe = _post_steps(first)[0]
    _make_due([probe])
    assert step_run(probe.pk) == "succeeded"
    assert _health().state == CH.CLOSED and _health().consecutive_failures == 0
    assert Journey.objects.get(pk=probe.journey_id).state == Journey.State.RUNNING
    drain()
    assert set(
        Journey.objects.filter(business_key__in=first + later).values_list("state", flat=True)
    ) == {Journey.State.COMPLETED}
    records = emulator_records(netsuite)
    assert len(records) == 8 and {r["write_count"] for r in records} == {1}
    assert [s.attempts for s in _post_steps(first)] == [2] * 5
    assert [s.attempts for s in _post_steps(later)] == [1] * 3
    assert not ExceptionCase.objects.exists()


def test_a_failed_probe_reopens_for_twice_as_long_and_only_one_probe_runs(client, ledger, netsuite):
    emulator_faults(netsuite, {"status": 503, "times": 6})
    keys = _invoices(client, "p", 5)
    drain()
    assert _health().state == CH.OPEN and _health().open_seconds == 30
    _end_open_period()
    _make_due(_post_steps(keys))
    probe, other, *_ = _post_steps(keys)
    assert step_run(probe.pk) == "retrying"  # the 6th 503
    health = _health()
    assert health.state == CH.OPEN and health.open_seconds == 60
    assert health.next_probe_at > timezone.now() + dt.timedelta(seconds=55)
    assert step_run(other.pk) == "waiting"

    # Half-open lets exactly one caller through.
    _end_open_period()
    assert connector_gate("netsuite").probe is True
    assert _health().state == CH.HALF_OPEN
    assert connector_gate("netsuite").allowed is False
    assert step_run(other.pk) == "not_claimed"  # not due: it waits for the next probe
    _make_due([other])
    assert step_run(other.pk) == "waiting"
    other.refresh_from_db()
    assert other.attempts == 1


def test_open_period_doubles_up_to_ten_minutes(client, ledger, netsuite):
    from sync.services.connector_health import record_transient_failure

    for _ in range(5):
        record_transient_failure("netsuite", "503")
    waits = []
    for _ in range(7):
        _end_open_period()
        assert connector_gate("netsuite").probe
        record_transient_failure("netsuite", "503")
        waits.append(_health().open_seconds)
    assert waits == [60, 120, 240, 480, 600, 600, 600]


def test_a_401_pauses_netsuite_with_one_alert_and_resume_completes_everything(
    client, ledger, netsuite, settings, integration_admin
):
    settings.NETSUITE_TOKEN = "a-revoked-token"
    keys = _invoices(client, "auth", 10)
    drain()
    health = _health()
    assert health.state == CH.PAUSED and health.paused_by is None
    assert "credentials" in health.paused_reason
    [alert] = Notification.objects.all()
    assert alert.kind == Notification.Kind.CONNECTOR_DOWN and alert.journey is None
    assert "NetSuite" in alert.title
    assert not ExceptionCase.objects.exists()
    assert [(s.state, s.attempts) for s in _post_steps(keys)] == [(Step.State.PENDING, 0)] * 10
    assert set(Journey.objects.filter(business_key__in=keys).values_list("state", flat=True)) == {
        Journey.State.WAITING
    }
    pause = AuditEntry.objects.get(action="connector.pause")
    assert pause.actor_label == "system"

    # Still paused: a due step waits again, no second alert.
    _make_due(_post_steps(keys)[:3])
    drain()
    assert Notification.objects.count() == 1
    assert [s.attempts for s in _post_steps(keys)] == [0] * 10

    settings.NETSUITE_TOKEN = "test-token"
    connector_resume(system="netsuite", actor=integration_admin, reason="Token rotated")
    assert _health().state == CH.CLOSED
    drain()
    assert set(Journey.objects.filter(business_key__in=keys).values_list("state", flat=True)) == {
        Journey.State.COMPLETED
    }
    records = emulator_records(netsuite)
    assert len(records) == 10 and [r["write_count"] for r in records] == [1] * 10
    assert [s.attempts for s in _post_steps(keys)] == [1] * 10
    assert Notification.objects.count() == 1
    resume = AuditEntry.objects.get(action="connector.resume")
    assert (resume.actor_label, resume.reason) == ("ivan", "Token rotated")


def test_admin_pause_holds_steps_and_the_sweep_runs_them_after_resume(
    client, ledger, netsuite, integration_admin
):
    connector_pause(system="netsuite", actor=integration_admin, reason="ERP maintenance window")
    health = _health()
    assert (health.state, health.paused_by, health.paused_reason) == (
        CH.PAUSED,
        integration_admin,
        "ERP maintenance window",
    )
    audit = AuditEntry.objects.get(action="connector.pause")
    assert (audit.actor_label, audit.reason) == ("ivan", "ERP maintenance window")
    assert audit.before == {"state": "closed"} and audit.after["state"] == "paused"

    keys = _invoices(client, "m", 2)
    drain()
    steps = _post_steps(keys)
    assert [(s.state, s.attempts) for s in steps] == [(Step.State.PENDING, 0)] * 2
    assert all(s.next_attempt_at > timezone.now() + dt.timedelta(seconds=50) for s in steps)
    assert not Notification.objects.exists()  # a deliberate pause raises no alert
    assert sweep()["steps"] == 0  # nothing is due while paused

    connector_resume(system="netsuite", actor=integration_admin, reason="Window over")
    assert sweep()["steps"] == 2  # released: due now
    drain()
    assert Journey.objects.filter(business_key__in=keys, state=Journey.State.COMPLETED).count() == 2
    assert len(emulator_records(netsuite)) == 2


@pytest.mark.parametrize("persona", ["auditor", "finance_ops", "manager"])
def test_only_integration_admins_pause_and_resume(persona, request, ledger):
    user = request.getfixturevalue(persona)
    with pytest.raises(PermissionDenied):
        connector_pause(system="netsuite", actor=user, reason="no")
    with pytest.raises(PermissionDenied):
        connector_resume(system="netsuite", actor=user, reason="no")
    assert not AuditEntry.objects.filter(action__startswith="connector.").exists()


def test_steps_without_a_connector_are_not_held_back(client, ledger, netsuite, integration_admin):
    connector_pause(system="netsuite", actor=integration_admin, reason="maintenance")
    post_signed(client, invoice_event(invoice_id="in_held"))
    drain()
    steps = {s.name: s.state for s in Step.objects.filter(journey__business_key="in_held")}
    assert steps["build_entry"] == Step.State.SUCCEEDED
    assert steps["post_entry"] == Step.State.PENDING
