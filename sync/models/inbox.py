"""The inbox: every accepted inbound event, stored before anything acts on it."""

from __future__ import annotations

from django.db import models


class InboundEvent(models.Model):
    """A verified event from a source system. ``(source_system, source_event_id)`` is unique,
    so a redelivered webhook is a no-op. Rows are never deleted: nothing accepted is lost."""

    class State(models.TextChoices):
        RECEIVED = "received", "Received"
        DISPATCHED = "dispatched", "Journey started"
        APPLIED = "applied", "Recorded in master data"
        IGNORED = "ignored", "No journey for this type"
        FAILED = "failed", "Could not be dispatched"

    source_system = models.CharField(max_length=32)
    source_event_id = models.CharField(max_length=128)
    event_type = models.CharField(max_length=128)
    api_version = models.CharField(max_length=32, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    aggregate_key = models.CharField(max_length=200)
    payload = models.JSONField()
    verification = models.CharField(max_length=64, default="signature_valid")
    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVED)
    state_reason = models.CharField(max_length=500, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_system", "source_event_id"], name="uniq_inbound_event"
            )
        ]
        indexes = [
            models.Index(fields=["state", "received_at"], name="inbox_state_idx"),
            # Dispatch takes received events oldest business time first: without this, every
            # batch sorted the whole backlog. (PostgreSQL also has partial expression indexes
            # on the payload paths journeys look events up by, migrations 0015 and 0016.)
            models.Index(
                fields=["occurred_at", "id"],
                condition=models.Q(state="received"),
                name="inbox_received_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source_system}:{self.source_event_id} {self.event_type}"


class WebhookRejection(models.Model):
    """A counter of rejected deliveries per source, reason and day. Rejected bodies are never
    stored (they are unverified input); the log line carries the details."""

    source_system = models.CharField(max_length=32)
    reason = models.CharField(max_length=64)
    day = models.DateField()
    count = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField()

    class Meta:
        ordering = ["-day", "source_system", "reason"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_system", "reason", "day"], name="uniq_webhook_rejection"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.source_system} {self.reason}: {self.count}"
