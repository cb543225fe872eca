"""Read paths for screens and API: querysets already shaped (and scoped) for their readers."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Prefetch, Q, QuerySet

from sync.models import (
    AuditEntry,
    ExceptionCase,
    JournalEntry,
    JournalLine,
    Journey,
    LegalEntity,
    Notification,
    Step,
)
from sync.permissions import can_view, entity_scope


def scoped(
    qs: QuerySet, user: AbstractBaseUser | None, entity_field: str = "legal_entity"
) -> QuerySet:
    """``qs`` narrowed to what ``user`` may see: nothing without a role; for a user limited to
    some legal entities, only rows of those entities (a row whose entity is not known yet
    could be anyone's, so it is hidden too). ``entity_field`` is the path to the entity."""
    if not can_view(user):
        return qs.none()
    ids = entity_scope(user)
    if ids is None:
        return qs
    return qs.filter(**{f"{entity_field}__in": ids})


def _visible(qs: QuerySet, user: AbstractBaseUser | None) -> QuerySet:
    return scoped(qs, user)


def entities_visible_to(user: AbstractBaseUser | None) -> QuerySet[LegalEntity]:
    return scoped(LegalEntity.objects.order_by("code"), user, "pk")


def alerts_visible_to(user: AbstractBaseUser | None) -> QuerySet[Notification]:
    """Alerts of the user's entities, plus those that belong to no entity (a connector down
    concerns everyone)."""
    qs = Notification.objects.select_related("journey", "legal_entity", "acknowledged_by")
    if not can_view(user):
        return qs.none()
    ids = entity_scope(user)
    if ids is None:
        return qs
    return qs.filter(Q(legal_entity__isnull=True) | Q(legal_entity_id__in=ids))


def journeys_visible_to(user: AbstractBaseUser | None) -> QuerySet[Journey]:
    return _visible(Journey.objects.select_related("legal_entity", "source_event"), user)


def journey_detail(user: AbstractBaseUser | None, journey_id: int) -> Journey:
    """One journey with steps, exceptions and journal entries (with lines) prefetched."""
    return (
        journeys_visible_to(user)
        .prefetch_related(
            Prefetch("steps", queryset=Step.objects.order_by("position")),
            Prefetch(
                "exceptions", queryset=ExceptionCase.objects.select_related("assignee", "step")
            ),
            Prefetch(
                "journal_entries",
                queryset=JournalEntry.objects.prefetch_related(
                    Prefetch("lines", queryset=JournalLine.objects.select_related("account"))
                ),
            ),
        )
        .get(pk=journey_id)
    )


def exceptions_visible_to(user: AbstractBaseUser | None) -> QuerySet[ExceptionCase]:
    return _visible(
        ExceptionCase.objects.select_related("journey", "step", "legal_entity", "assignee"), user
    )


def journal_entries_visible_to(user: AbstractBaseUser | None) -> QuerySet[JournalEntry]:
    return _visible(
        JournalEntry.objects.select_related("legal_entity", "journey").prefetch_related(
            Prefetch("lines", queryset=JournalLine.objects.select_related("account"))
        ),
        user,
    )


def audit_for(obj_type: str, obj_id: str) -> QuerySet[AuditEntry]:
    """The trail of one object; callers check the reader may see the object first."""
    return AuditEntry.objects.filter(object_type=obj_type, object_id=obj_id).select_related("actor")


def audit_visible_to(user: AbstractBaseUser | None) -> QuerySet[AuditEntry]:
    """The audit trail a reader may see: all of it, or for an entity-limited reader the entries
    about their entities' objects (entries about no entity are hidden from them)."""
    return scoped(AuditEntry.objects.select_related("actor"), user, "entity_id")
