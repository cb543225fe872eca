"""One FilterSet per model, shared by the HTML lists and the API."""

from __future__ import annotations

import datetime as dt

import django_filters as df
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from sync.dashboard import AGEING, ageing_window
from sync.models import AuditEntry, ExceptionCase, JournalEntry, Journey, LegalEntity


class EntityScopedFilterSet(df.FilterSet):
    """Offers (and accepts) only the legal entities the requesting user may see: another
    entity's code is an invalid choice, never a way to widen the list."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "entity" in self.filters:
            from sync.selectors import entities_visible_to

            user = getattr(self.request, "user", None)
            self.filters["entity"].queryset = entities_visible_to(user)


def _utc_day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


class UtcDayRangeFilter(df.DateFilter):
    """``<field>_from`` / ``<field>_to`` on a datetime by whole UTC days (the dashboard's
    days), both ends included."""

    def __init__(self, *args, end: bool = False, **kwargs):
        self.end = end
        super().__init__(*args, **kwargs)

    def filter(self, qs: QuerySet, value: dt.date | None) -> QuerySet:
        if value is None:
            return qs
        if self.end:
            return qs.filter(**{f"{self.field_name}__lt": _utc_day_start(value) + dt.timedelta(1)})
        return qs.filter(**{f"{self.field_name}__gte": _utc_day_start(value)})


class JourneyFilter(EntityScopedFilterSet):
    business_key = df.CharFilter(lookup_expr="icontains")
    journey_type = df.CharFilter()
    # No joins behind these: DISTINCT (django-filter's default for multiple choices) would only
    # make the count of a 100,000-row list slower.
    state = df.MultipleChoiceFilter(choices=Journey.State.choices, distinct=False)
    sla_state = df.ChoiceFilter(choices=Journey.SlaState.choices)
    entity = df.ModelChoiceFilter(
        field_name="legal_entity", queryset=LegalEntity.objects.all(), to_field_name="code"
    )
    no_entity = df.BooleanFilter(field_name="legal_entity", lookup_expr="isnull")
    correlation_id = df.UUIDFilter()
    unfinished = df.BooleanFilter(method="filter_unfinished", label="Not finished")
    created_from = UtcDayRangeFilter(field_name="created_at")
    created_to = UtcDayRangeFilter(field_name="created_at", end=True)
    completed_from = UtcDayRangeFilter(field_name="completed_at")
    completed_to = UtcDayRangeFilter(field_name="completed_at", end=True)
    sla_met = df.BooleanFilter(method="filter_sla_met", label="Completed by the SLA due time")

    class Meta:
        model = Journey
        fields = ["business_key", "journey_type", "state", "sla_state", "entity", "correlation_id"]

    def filter_unfinished(self, qs: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return qs
        terminal = [str(s) for s in Journey.TERMINAL]
        return qs.exclude(state__in=terminal) if value else qs.filter(state__in=terminal)

    def filter_sla_met(self, qs: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return qs
        qs = qs.filter(state=Journey.State.COMPLETED, completed_at__isnull=False)
        if value:
            return qs.filter(completed_at__lte=F("sla_due_at"))
        return qs.filter(completed_at__gt=F("sla_due_at"))


class ExceptionFilter(EntityScopedFilterSet):
    category = df.MultipleChoiceFilter(choices=ExceptionCase.Category.choices, distinct=False)
    state = df.MultipleChoiceFilter(choices=ExceptionCase.State.choices, distinct=False)
    entity = df.ModelChoiceFilter(
        field_name="legal_entity", queryset=LegalEntity.objects.all(), to_field_name="code"
    )
    journey_type = df.CharFilter(field_name="journey__journey_type")
    business_key = df.CharFilter(field_name="journey__business_key", lookup_expr="icontains")
    q = df.CharFilter(method="search", label="Search")
    no_entity = df.BooleanFilter(field_name="legal_entity", lookup_expr="isnull")
    age = df.ChoiceFilter(choices=[(a[0], a[1]) for a in AGEING], method="filter_age", label="Age")
    source_system = df.CharFilter(field_name="journey__source_system")
    assignee = df.CharFilter(method="filter_assignee", label="Assignee (username, me, none)")
    tag = df.CharFilter(field_name="tags__name")
    root_cause = df.CharFilter()
    o = df.OrderingFilter(
        fields=(
            ("created_at", "created"),
            ("category", "category"),
            ("legal_entity__code", "entity"),
            ("journey__journey_type", "journey_type"),
            ("assignee__username", "assignee"),
            ("state", "state"),
        ),
        label="Sort",
    )

    class Meta:
        model = ExceptionCase
        fields = ["category", "state", "entity", "journey_type", "business_key", "q"]

    def filter_assignee(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if value == "none":
            return qs.filter(assignee__isnull=True)
        if value == "me":
            user = getattr(self.request, "user", None)
            return qs.filter(assignee_id=getattr(user, "pk", None))
        return qs.filter(assignee__username=value)

    def filter_age(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        """By the hour of creation, exactly as the dashboard's ageing buckets count."""
        after, before = ageing_window(value, timezone.now())
        qs = qs.filter(created_at__lt=before)
        return qs.filter(created_at__gte=after) if after is not None else qs

    def search(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        # The case's own copy of the business key: one table, trigram-indexed on PostgreSQL.
        cond = Q(business_key__icontains=value) | Q(summary__icontains=value)
        if _is_uuid(value):
            cond |= Q(journey__correlation_id=value)
        return qs.filter(cond)


class JournalEntryFilter(EntityScopedFilterSet):
    entity = df.ModelChoiceFilter(
        field_name="legal_entity", queryset=LegalEntity.objects.all(), to_field_name="code"
    )
    state = df.MultipleChoiceFilter(choices=JournalEntry.State.choices, distinct=False)
    business_key = df.CharFilter(field_name="journey__business_key", lookup_expr="icontains")
    journey_type = df.CharFilter(field_name="journey__journey_type")
    external_id = df.CharFilter()
    posting_date_from = df.DateFilter(field_name="posting_date", lookup_expr="gte")
    posting_date_to = df.DateFilter(field_name="posting_date", lookup_expr="lte")

    class Meta:
        model = JournalEntry
        fields = ["entity", "state", "business_key", "journey_type", "external_id"]


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class AuditFilter(df.FilterSet):
    """The audit log's filters: who, what, which object, when (UTC days), why."""

    actor = df.CharFilter(field_name="actor_label", label="Who (username or system)")
    action = df.CharFilter(field_name="action", lookup_expr="startswith", label="Action")
    object_type = df.CharFilter()
    object_id = df.CharFilter()
    correlation_id = df.CharFilter()
    at_from = UtcDayRangeFilter(field_name="at", label="From (UTC day)")
    at_to = UtcDayRangeFilter(field_name="at", end=True, label="To (UTC day)")
    q = df.CharFilter(method="search", label="Reason or object contains")

    class Meta:
        model = AuditEntry
        fields = ["actor", "action", "object_type", "object_id", "correlation_id"]

    def search(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return qs.filter(Q(reason__icontains=value) | Q(object_repr__icontains=value))
