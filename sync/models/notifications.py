"""Alerts people must see: one record per event that needs attention (never one per retry)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Notification(models.Model):
    """An alert the screens show until someone acknowledges it. ``(kind, journey)`` is unique
    for per-journey alerts, so an SLA breach raises exactly one, however often it is swept.
    Connector alerts (``connector_down``) have no journey; ``sync.services.connector_health``
    raises one per pause, under the lock of the connector's row."""

    class Kind(models.TextChoices):
        SLA_BREACH = "sla_breach", "SLA breached"
        CONNECTOR_DOWN = "connector_down", "Connector down"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    journey = models.ForeignKey(
        "sync.Journey",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
    )
    legal_entity = models.ForeignKey(
        "sync.LegalEntity", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    title = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(
        null=True, blank=True, help_text="When the e-mail/webhook went out (if configured)."
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "journey"],
                name="uniq_notification_per_journey",
                condition=models.Q(journey__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return self.title
