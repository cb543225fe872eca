"""Connector health: the circuit breaker and the pause switch of each external system.

* ``CIRCUIT_FAILURE_THRESHOLD`` consecutive transient failures (default 5) open the circuit for
  ``CIRCUIT_OPEN_SECONDS`` (default 30). Once that has passed, one step is let through as a
  probe (half-open): its success closes the circuit, a transient failure opens it again for
  twice as long (at most ``CIRCUIT_OPEN_MAX_SECONDS``, default 600).
* An integration admin pauses and resumes a connector (audited). An authentication failure
  pauses it too (actor "system") and raises one ``connector_down`` alert for the pause, however
  many steps were refused.
* While a connector is not available the engine puts its steps back as pending with
  ``next_attempt_at`` = the next probe (a minute while paused), the journey ``waiting``, and no
  attempt spent. Closing or resuming releases those steps at once.

Every change of state happens under ``select_for_update`` of the connector's row, so two
workers never both take the probe and an auth failure on many steps raises one alert.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from connectors.base import ConnectorError
from sync.errors import DomainError, PermissionDenied
from sync.models import ConnectorHealth, Journey, Notification, Step
from sync.permissions import INTEGRATION_ADMIN, has_role, is_entity_limited
from sync.services.audit import audit_record

State = ConnectorHealth.State
# Marks a step the engine put back because its connector was not available (see engine).
WAITING_ERROR_CLASS = "ConnectorUnavailable"
PAUSED_RECHECK = dt.timedelta(minutes=1)
KNOWN_SYSTEMS = ("netsuite",)
LABELS = {"netsuite": "NetSuite"}

DEFAULTS = {
    "CIRCUIT_FAILURE_THRESHOLD": 5,
    "CIRCUIT_OPEN_SECONDS": 30,
    "CIRCUIT_OPEN_MAX_SECONDS": 600,
}


def _conf(key: str) -> int:
    return int(getattr(settings, "RCT", {}).get(key, DEFAULTS[key]))


def label(system: str) -> str:
    return LABELS.get(system, system)


def connector_health(system: str) -> ConnectorHealth:
    row, _ = ConnectorHealth.objects.get_or_create(system=system)
    return row


def connectors_list() -> list[ConnectorHealth]:
    """Every known connector (rows are created on first sight)."""
    for system in KNOWN_SYSTEMS:
        connector_health(system)
    return list(ConnectorHealth.objects.select_related("paused_by").order_by("system"))


def _locked(system: str) -> ConnectorHealth:
    connector_health(system)
    return ConnectorHealth.objects.select_for_update().get(system=system)


def _audit(row: ConnectorHealth, action: str, before: str, *, actor=None, reason: str = ""):
    audit_record(
        actor=actor,
        action=action,
        obj=row,
        before={"state": before},
        after={"state": row.state, "consecutive_failures": row.consecutive_failures},
        reason=reason,
    )


# --- the gate the engine asks ---------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    allowed: bool
    wait_until: dt.datetime | None = None
    state: str = State.CLOSED
    probe: bool = False


class ConnectorGuard:
    """Within one batch of a connector's steps: stop calling it after as many consecutive
    transient failures as open its circuit, so the rest of the batch waits (as steps run
    one by one would, once those failures opened the circuit) instead of each spending an
    attempt on a remote that is down."""

    def __init__(self) -> None:
        self.failures = 0
        self.limit = _conf("CIRCUIT_FAILURE_THRESHOLD")

    @property
    def allowed(self) -> bool:
        return self.failures < self.limit

    def record(self, outcome: object) -> None:
        """The outcome of one call: a transient ``ConnectorError`` counts, anything else
        (a result, a refusal, a defect: the remote answered) starts the count again."""
        transient = isinstance(outcome, ConnectorError) and outcome.transient
        self.failures = self.failures + 1 if transient else 0

    @staticmethod
    def held_back() -> Exception:
        from sync.errors import ConnectorHeldBack

        return ConnectorHeldBack("not sent: the connector kept failing earlier in this batch")


def connector_available(system: str, *, now: dt.datetime | None = None) -> bool:
    """Would a step of this connector be let through now? (Read-only; see ``connector_gate``.)"""
    now = now or timezone.now()
    row = ConnectorHealth.objects.filter(system=system).first()
    if row is None or row.state == State.CLOSED:
        return True
    if row.state == State.PAUSED:
        return False
    return row.next_probe_at is None or row.next_probe_at <= now


def connector_gate(system: str, *, now: dt.datetime | None = None) -> Gate:
    """Let a step through, or say until when it must wait. When the open period is over the
    first caller becomes the probe (half-open) and the others keep waiting; a probe that never
    reports (crashed worker) is replaced once its lease (the open period) has passed."""
    now = now or timezone.now()
    row = ConnectorHealth.objects.filter(system=system).only("state", "next_probe_at").first()
    if row is None or row.state == State.CLOSED:
        return Gate(True)
    if row.state == State.PAUSED:
        return Gate(False, now + PAUSED_RECHECK, row.state)
    if row.next_probe_at and row.next_probe_at > now:
        return Gate(False, row.next_probe_at, row.state)
    with transaction.atomic():
        row = _locked(system)
        if row.state == State.CLOSED:
            return Gate(True)
        if row.state == State.PAUSED:
            return Gate(False, now + PAUSED_RECHECK, row.state)
        if row.next_probe_at and row.next_probe_at > now:
            return Gate(False, row.next_probe_at, row.state)
        before = row.state
        row.state = State.HALF_OPEN
        row.next_probe_at = now + dt.timedelta(seconds=row.open_seconds or _open_base())
        row.save(update_fields=["state", "next_probe_at", "updated_at"])
        if before != State.HALF_OPEN:
            _audit(row, "connector.probe", before)
    return Gate(True, state=State.HALF_OPEN, probe=True)


def _open_base() -> int:
    return _conf("CIRCUIT_OPEN_SECONDS")


# --- outcomes the engine reports ------------------------------------------------------------


WINDOW = dt.timedelta(hours=1)
FLUSH_SECONDS = 5.0
_answered: dict[str, int] = {}
_flushed_at: dict[str, float] = {}


def _window_reset(row: ConnectorHealth, now: dt.datetime) -> None:
    if row.window_started_at is None or now - row.window_started_at > WINDOW:
        row.window_started_at = now
        row.window_ok = 0
        row.window_failed = 0


def _count_answered(system: str, calls: int) -> None:
    """Add this process's answered calls to the row at most every ``FLUSH_SECONDS``: the
    figures for the screens, without a write per call."""
    import time

    _answered[system] = _answered.get(system, 0) + calls
    now_mono = time.monotonic()
    if now_mono - _flushed_at.get(system, 0.0) < FLUSH_SECONDS:
        return
    _flushed_at[system] = now_mono
    pending, _answered[system] = _answered[system], 0
    now = timezone.now()
    with transaction.atomic():
        row = ConnectorHealth.objects.select_for_update(skip_locked=True).filter(system=system)
        row = row.first()
        if row is None:  # being changed by someone else: count it next time
            _answered[system] += pending
            return
        _window_reset(row, now)
        row.window_ok += pending
        row.last_success_at = now
        row.save(
            update_fields=["window_started_at", "window_ok", "window_failed", "last_success_at"]
        )


def record_success(system: str, calls: int = 1) -> None:
    """The connector answered. Closes an open/half-open circuit and releases waiting steps."""
    _count_answered(system, calls)
    row = ConnectorHealth.objects.filter(system=system).only("state", "consecutive_failures")
    row = row.first()
    if row is None or (row.state == State.CLOSED and not row.consecutive_failures):
        return
    if row.state == State.PAUSED:
        return
    with transaction.atomic():
        row = _locked(system)
        if row.state == State.PAUSED:
            return
        before = row.state
        row.state = State.CLOSED
        row.consecutive_failures = 0
        row.open_seconds = 0
        row.opened_at = None
        row.next_probe_at = None
        row.save()
        if before != State.CLOSED:
            _audit(row, "connector.close", before)
            _release_waiting(system)


def record_transient_failure(
    system: str, error: str = "", *, status: int | None = None, retry_after: float | None = None
) -> None:
    """A timeout, connection error, 429 or 5xx. Opens the circuit at the threshold; a failed
    probe opens it again for twice as long. A 429 records until when we were asked to slow
    down (``Retry-After``, else the base retry delay)."""
    now = timezone.now()
    with transaction.atomic():
        row = _locked(system)
        before = row.state
        row.consecutive_failures += 1
        row.last_error = error[:2000]
        row.last_failure_at = now
        _window_reset(row, now)
        row.window_failed += 1
        if status == 429:
            wait = retry_after if retry_after else float(_open_base())
            row.rate_limited_until = now + dt.timedelta(seconds=wait)
        reopen = False
        if row.state == State.HALF_OPEN:
            row.open_seconds = min(
                max(row.open_seconds, _open_base()) * 2, _conf("CIRCUIT_OPEN_MAX_SECONDS")
            )
            reopen = True
        elif row.state == State.CLOSED and row.consecutive_failures >= _conf(
            "CIRCUIT_FAILURE_THRESHOLD"
        ):
            row.open_seconds = _open_base()
            reopen = True
        if reopen:
            row.state = State.OPEN
            row.opened_at = now
            row.next_probe_at = now + dt.timedelta(seconds=row.open_seconds)
        row.save()
        if reopen:
            _audit(row, "connector.open", before, reason=row.last_error[:500])


def record_auth_failure(system: str, error: str = "") -> ConnectorHealth:
    """The remote refused our credentials: retrying cannot help, so the connector is paused
    (actor "system") and one ``connector_down`` alert is raised for this pause."""
    with transaction.atomic():
        row = _locked(system)
        row.last_error = error[:2000]
        if row.state == State.PAUSED:
            row.save(update_fields=["last_error", "updated_at"])
            return row
        before = row.state
        _pause(row, None, f"{label(system)} refused our credentials: {error}"[:500])
        _audit(row, "connector.pause", before, reason=row.paused_reason)
        _raise_alert(
            f"{label(system)} connector paused: it refused our credentials ({error[:150]}). "
            "Steps that write to it are waiting; fix the credentials, then resume it on "
            "the Connectors screen."
        )
    return row


def _raise_alert(title: str) -> None:
    from sync import tasks

    Notification.objects.create(kind=Notification.Kind.CONNECTOR_DOWN, title=title[:300])
    if settings.SLA_ALERT_EMAILS or settings.SLA_ALERT_WEBHOOK_URL:
        transaction.on_commit(tasks.enqueue_notification_delivery)


def _pause(row: ConnectorHealth, actor: AbstractBaseUser | None, reason: str) -> None:
    row.state = State.PAUSED
    row.paused_by = actor if actor is not None and actor.is_authenticated else None
    row.paused_reason = reason
    row.next_probe_at = None
    row.save()


# --- what people do -------------------------------------------------------------------------


def _check(actor: AbstractBaseUser, system: str, reason: str) -> str:
    if not has_role(actor, INTEGRATION_ADMIN):
        raise PermissionDenied("Only integration admins pause and resume connectors.")
    if is_entity_limited(actor):
        raise PermissionDenied(
            "A connector serves every legal entity; only admins who see every entity pause it."
        )
    if system not in KNOWN_SYSTEMS:
        raise DomainError(f"There is no connector {system!r}.")
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Give a reason; it goes into the audit trail.")
    return reason


def connector_pause(*, system: str, actor: AbstractBaseUser, reason: str) -> ConnectorHealth:
    """Stop sending to the connector (integration admins; audited). Steps wait, none fail."""
    reason = _check(actor, system, reason)
    with transaction.atomic():
        row = _locked(system)
        if row.state == State.PAUSED:
            raise DomainError(f"{label(system)} is already paused.")
        before = row.state
        _pause(row, actor, reason[:500])
        _audit(row, "connector.pause", before, actor=actor, reason=reason)
    return row


def connector_resume(*, system: str, actor: AbstractBaseUser, reason: str) -> ConnectorHealth:
    """Close the circuit and run the waiting steps now (integration admins; audited)."""
    reason = _check(actor, system, reason)
    with transaction.atomic():
        row = _locked(system)
        if row.state != State.PAUSED:
            raise DomainError(f"{label(system)} is not paused.")
        before = row.state
        row.state = State.CLOSED
        row.consecutive_failures = 0
        row.open_seconds = 0
        row.opened_at = None
        row.next_probe_at = None
        row.paused_by = None
        row.paused_reason = ""
        row.save()
        _audit(row, "connector.resume", before, actor=actor, reason=reason)
        _release_waiting(system)
    return row


def _release_waiting(system: str) -> None:
    """Make the steps held back for this connector due now, and enqueue them after commit."""
    from sync import tasks
    from sync.journeys import registry

    names = {
        (jt.name, s.name) for jt in registry().values() for s in jt.steps if s.connector == system
    }
    now = timezone.now()
    waiting = Step.objects.filter(
        state=Step.State.PENDING,
        error_class=WAITING_ERROR_CLASS,
        journey__state=Journey.State.WAITING,
        name__in={n for _, n in names},
        journey__journey_type__in={t for t, _ in names},
    )
    ids = list(waiting.values_list("pk", flat=True))
    if not ids:
        return
    Step.objects.filter(pk__in=ids).update(next_attempt_at=now)

    def enqueue() -> None:
        for pk in ids:
            tasks.enqueue_step(pk)

    transaction.on_commit(enqueue)
