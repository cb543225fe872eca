"""Read paths for screens and API: querysets already shaped (and scoped) for their readers."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Prefetch, QuerySet

from sync.models import AuditEntry, ExceptionCase, JournalEntry, JournalLine, Journey, Step
from sync.permissions import can_view


def _visible(qs: QuerySet, user: AbstractBaseUser | None) -> QuerySet:
    # Every role reads everything for now; entity-scoped users arrive with the screens issue.
    return qs if can_view(user) else qs.none()


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
    return AuditEntry.objects.filter(object_type=obj_type, object_id=obj_id).select_related("actor")
