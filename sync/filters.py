"""One FilterSet per model, shared by the HTML lists and the API."""

from __future__ import annotations

import django_filters as df
from django.db.models import Q, QuerySet

from sync.models import ExceptionCase, JournalEntry, Journey, LegalEntity


class EntityScopedFilterSet(df.FilterSet):
    """Offers (and accepts) only the legal entities the requesting user may see: another
    entity's code is an invalid choice, never a way to widen the list."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "entity" in self.filters:
            from sync.selectors import entities_visible_to

            user = getattr(self.request, "user", None)
            self.filters["entity"].queryset = entities_visible_to(user)


class JourneyFilter(EntityScopedFilterSet):
    business_key = df.CharFilter(lookup_expr="icontains")
    journey_type = df.CharFilter()
    state = df.MultipleChoiceFilter(choices=Journey.State.choices)
    sla_state = df.ChoiceFilter(choices=Journey.SlaState.choices)
    entity = df.ModelChoiceFilter(
        field_name="legal_entity", queryset=LegalEntity.objects.all(), to_field_name="code"
    )
    correlation_id = df.UUIDFilter()

    class Meta:
        model = Journey
        fields = ["business_key", "journey_type", "state", "sla_state", "entity", "correlation_id"]


class ExceptionFilter(EntityScopedFilterSet):
    category = df.MultipleChoiceFilter(choices=ExceptionCase.Category.choices)
    state = df.MultipleChoiceFilter(choices=ExceptionCase.State.choices)
    entity = df.ModelChoiceFilter(
        field_name="legal_entity", queryset=LegalEntity.objects.all(), to_field_name="code"
    )
    journey_type = df.CharFilter(field_name="journey__journey_type")
    business_key = df.CharFilter(field_name="journey__business_key", lookup_expr="icontains")
    q = df.CharFilter(method="search", label="Search")

    class Meta:
        model = ExceptionCase
        fields = ["category", "state", "entity", "journey_type", "business_key", "q"]

    def search(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        cond = Q(journey__business_key__icontains=value) | Q(summary__icontains=value)
        if _is_uuid(value):
            cond |= Q(journey__correlation_id=value)
        return qs.filter(cond)


class JournalEntryFilter(EntityScopedFilterSet):
    entity = df.ModelChoiceFilter(
        field_name="legal_entity", queryset=LegalEntity.objects.all(), to_field_name="code"
    )
    state = df.MultipleChoiceFilter(choices=JournalEntry.State.choices)
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
