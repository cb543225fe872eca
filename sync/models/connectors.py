"""Connector health: a circuit breaker per external system, and the admin's pause switch.

One row per system (``netsuite``). The engine asks it before running a step that talks to the
system; while it is open or paused those steps wait without spending attempts.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ConnectorHealth(models.Model):
    """closed: calls flow. open: too many consecutive transient failures; nothing is sent until
    ``next_probe_at``. half_open: one probe step is in flight. paused: an admin (or an auth
    failure) stopped the connector until someone resumes it."""

    class State(models.TextChoices):
        CLOSED = "closed", "Closed (healthy)"
        OPEN = "open", "Open (failing; waiting to probe)"
        HALF_OPEN = "half_open", "Half-open (probing)"
        PAUSED = "paused", "Paused"

    system = models.CharField(max_length=32, unique=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.CLOSED)
    consecutive_failures = models.PositiveIntegerField(default=0)
    open_seconds = models.PositiveIntegerField(
        default=0, help_text="How long the circuit stays open before the next probe."
    )
    opened_at = models.DateTimeField(null=True, blank=True)
    next_probe_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    paused_reason = models.CharField(max_length=500, blank=True)
    last_error = models.TextField(blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    rate_limited_until = models.DateTimeField(
        null=True, blank=True, help_text="Until when the remote asked us to slow down (429)."
    )
    # Calls answered and transient failures in the current window (at most an hour); the
    # screens show the error rate. Successes are counted by each process and added every few
    # seconds, so no call writes this row.
    window_started_at = models.DateTimeField(null=True, blank=True)
    window_ok = models.PositiveBigIntegerField(default=0)
    window_failed = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["system"]
        verbose_name_plural = "connector health"

    def __str__(self) -> str:
        return f"{self.system}: {self.state}"

    @property
    def error_rate(self) -> float | None:
        """Percent of the window's calls that failed transiently; None without calls."""
        total = self.window_ok + self.window_failed
        return 100.0 * self.window_failed / total if total else None

    @property
    def rate_limited(self) -> bool:
        from django.utils import timezone

        return bool(self.rate_limited_until and self.rate_limited_until > timezone.now())
