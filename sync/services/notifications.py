"""Sending alerts out and acknowledging them."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from connectors import http
from connectors.base import ConnectorError
from sync.errors import DomainError, PermissionDenied
from sync.models import Notification
from sync.permissions import FINANCE_OPS, INTEGRATION_ADMIN, entity_scope, has_role
from sync.services.audit import audit_record

log = logging.getLogger(__name__)


def notifications_deliver(*, limit: int = 200) -> int:
    """Send undelivered alerts by e-mail and/or webhook, each at most once (the row is
    claimed before sending). A failed webhook leaves the row undelivered for the next run."""
    if not (settings.SLA_ALERT_EMAILS or settings.SLA_ALERT_WEBHOOK_URL):
        return 0
    sent = 0
    ids = list(
        Notification.objects.filter(delivered_at__isnull=True).values_list("pk", flat=True)[:limit]
    )
    for pk in ids:
        with transaction.atomic():
            note = (
                Notification.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk=pk, delivered_at__isnull=True)
                .select_related("journey")
                .first()
            )
            if note is None:
                continue
            try:
                if settings.SLA_ALERT_WEBHOOK_URL:
                    http.send(
                        "POST",
                        settings.SLA_ALERT_WEBHOOK_URL,
                        json_body={
                            "kind": note.kind,
                            "title": note.title,
                            "journey_id": note.journey_id,
                            "business_key": note.journey.business_key if note.journey else "",
                            "created_at": note.created_at.isoformat(),
                        },
                        timeout=10.0,
                    )
                if settings.SLA_ALERT_EMAILS:
                    send_mail(note.title, note.title, None, settings.SLA_ALERT_EMAILS)
            except ConnectorError as exc:
                log.warning("alert %s not delivered: %s", pk, exc.message)
                continue
            note.delivered_at = timezone.now()
            note.save(update_fields=["delivered_at"])
            sent += 1
    return sent


def notification_acknowledge(*, notification_id: int, actor: AbstractBaseUser) -> Notification:
    """A person has seen the alert; it leaves the open list. Audited."""
    if not has_role(actor, FINANCE_OPS, INTEGRATION_ADMIN):
        raise PermissionDenied("Only finance ops and integration admins acknowledge alerts.")
    with transaction.atomic():
        note = Notification.objects.select_for_update().get(pk=notification_id)
        scope = entity_scope(actor)
        if (
            scope is not None
            and note.legal_entity_id is not None
            and note.legal_entity_id not in scope
        ):
            raise PermissionDenied("You may not acknowledge alerts of that legal entity.")
        if note.acknowledged_at:
            raise DomainError("This alert was already acknowledged.")
        note.acknowledged_at = timezone.now()
        note.acknowledged_by = actor
        note.save(update_fields=["acknowledged_at", "acknowledged_by"])
        audit_record(
            actor=actor, action="notification.acknowledge", obj=note, after={"title": note.title}
        )
    return note
