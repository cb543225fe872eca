"""The one way to write the audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import models

from connectors import http
from sync.models import AuditEntry


def audit_record(
    *,
    actor: AbstractBaseUser | None,
    action: str,
    obj: models.Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
    correlation_id: str = "",
) -> AuditEntry:
    """Append one audit entry. Call inside the transaction of the change it records."""
    entry = audit_entry_build(
        actor=actor,
        action=action,
        obj=obj,
        before=before,
        after=after,
        reason=reason,
        correlation_id=correlation_id,
    )
    entry.save(force_insert=True)
    return entry


def audit_entry_build(
    *,
    actor: AbstractBaseUser | None,
    action: str,
    obj: models.Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
    correlation_id: str = "",
) -> AuditEntry:
    """The entry ``audit_record`` would append, unsaved: for a caller recording many changes
    at once with one ``bulk_create`` in the same transaction."""
    return AuditEntry(
        entity_id=entity_of(obj),
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_label=actor.get_username() if actor is not None else "system",
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:300],
        before=before,
        after=after,
        reason=reason,
        correlation_id=correlation_id or (http.get_correlation_id() or ""),
    )


def entity_of(obj: models.Model) -> int | None:
    """The legal entity an audited object belongs to: its own ``legal_entity_id``, or itself
    when it is a legal entity."""
    if obj._meta.label_lower == "sync.legalentity":
        return obj.pk
    return getattr(obj, "legal_entity_id", None)


def access_denied_record(
    *, actor: AbstractBaseUser | None, method: str, path: str, reason: str = ""
) -> AuditEntry:
    """Record a refused request (a 403): who asked for what, and why it was refused. Written on
    its own (autocommit), after the refused request has changed nothing."""
    return AuditEntry.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_label=actor.get_username()
        if actor is not None and actor.is_authenticated
        else "anonymous",
        action="access.denied",
        object_type="request",
        object_id=f"{method} {path}"[:64],
        object_repr=f"{method} {path}"[:300],
        reason=reason[:500],
        correlation_id=http.get_correlation_id() or "",
    )


def audit_export_record(*, actor: AbstractBaseUser, query: str) -> AuditEntry:
    """Reading the trail out is itself on the trail: who exported what filter."""
    return AuditEntry.objects.create(
        actor=actor,
        actor_label=actor.get_username(),
        action="audit.export",
        object_type="audit",
        object_id="export",
        object_repr=query[:300],
        correlation_id=http.get_correlation_id() or "",
    )
