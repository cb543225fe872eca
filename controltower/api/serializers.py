"""Read serializers for journeys, exceptions and journal entries.

Money leaves the API as integers of minor units next to their currency code (``debit_minor``,
``functional_credit_minor``...), and rates as decimal strings: never floats. The serializers
only read attributes the selectors already loaded (``select_related`` / ``prefetch_related``),
so a list costs a fixed number of queries whatever its length.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sync.models import ExceptionCase, JournalEntry, JournalLine, Journey, Step

_JOURNEY_FIELDS = [
    "id",
    "journey_type",
    "business_key",
    "aggregate_key",
    "correlation_id",
    "source_system",
    "legal_entity",
    "state",
    "sla_state",
    "business_at",
    "sla_warning_at",
    "sla_due_at",
    "created_at",
    "updated_at",
    "completed_at",
]


class ErrorSerializer(serializers.Serializer):
    """The body of a 403 / 404 / 409 answer."""

    detail = serializers.CharField()


class JourneySerializer(serializers.ModelSerializer):
    """A journey as listed: state, SLA state and keys."""

    legal_entity = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Journey
        fields = _JOURNEY_FIELDS
        read_only_fields = fields


class StepSerializer(serializers.ModelSerializer):
    """One step of a journey, with its attempts, payloads and last error."""

    class Meta:
        model = Step
        fields = [
            "id",
            "position",
            "name",
            "state",
            "attempts",
            "next_attempt_at",
            "idempotency_key",
            "error_class",
            "error_message",
            "started_at",
            "finished_at",
            "request_snapshot",
            "response_snapshot",
        ]
        read_only_fields = fields


class JournalAccountSerializer(serializers.Serializer):
    """The GL account of a line."""

    id = serializers.IntegerField()
    number = serializers.CharField()
    name = serializers.CharField()


class JournalLineSerializer(serializers.ModelSerializer):
    """A debit or a credit, in transaction and functional currency minor units."""

    account = JournalAccountSerializer(read_only=True)

    class Meta:
        model = JournalLine
        fields = [
            "line_no",
            "account",
            "debit_minor",
            "credit_minor",
            "functional_debit_minor",
            "functional_credit_minor",
            "memo",
            "customer_ref",
            "product_code",
            "tax_code",
        ]
        read_only_fields = fields


class JournalTotalsSerializer(serializers.Serializer):
    """Sums of the lines: debit equals credit in both currencies for every entry."""

    debit_minor = serializers.IntegerField()
    credit_minor = serializers.IntegerField()
    functional_debit_minor = serializers.IntegerField()
    functional_credit_minor = serializers.IntegerField()


_TOTAL_FIELDS = tuple(JournalTotalsSerializer().fields)

_ENTRY_FIELDS = [
    "id",
    "external_id",
    "state",
    "posting_date",
    "currency",
    "functional_currency",
    "fx_rate",
    "memo",
    "erp_system",
    "erp_document_id",
    "reverses",
    "rule_versions",
    "created_at",
    "posted_at",
    "totals",
    "lines",
]


class JournalEntryInJourneySerializer(serializers.ModelSerializer):
    """An entry inside its journey (the entity and journey are the journey's own)."""

    fx_rate = serializers.DecimalField(
        max_digits=20, decimal_places=10, read_only=True, allow_null=True
    )
    reverses = serializers.PrimaryKeyRelatedField(read_only=True)
    totals = serializers.SerializerMethodField()
    lines = JournalLineSerializer(many=True, read_only=True)

    class Meta:
        model = JournalEntry
        fields = _ENTRY_FIELDS
        read_only_fields = fields

    @extend_schema_field(JournalTotalsSerializer)
    def get_totals(self, entry: JournalEntry) -> dict[str, int]:
        lines = entry.lines.all()  # prefetched by the selector
        return {name: sum(getattr(line, name) for line in lines) for name in _TOTAL_FIELDS}


class JournalEntrySerializer(JournalEntryInJourneySerializer):
    """A journal entry of one legal entity with its lines; amounts in minor units."""

    legal_entity = serializers.SlugRelatedField(slug_field="code", read_only=True)
    business_key = serializers.CharField(
        source="journey.business_key", read_only=True, allow_null=True
    )
    journey_type = serializers.CharField(
        source="journey.journey_type", read_only=True, allow_null=True
    )

    class Meta(JournalEntryInJourneySerializer.Meta):
        fields = [
            *_ENTRY_FIELDS[:2],
            "legal_entity",
            "journey",
            "journey_type",
            "business_key",
            *_ENTRY_FIELDS[2:],
        ]
        read_only_fields = fields


class JourneyExceptionSerializer(serializers.ModelSerializer):
    """An exception inside its journey."""

    step = serializers.SlugRelatedField(slug_field="name", read_only=True)
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ExceptionCase
        fields = [
            "id",
            "step",
            "category",
            "severity",
            "state",
            "summary",
            "context",
            "assignee",
            "resolution_note",
            "created_at",
            "resolved_at",
        ]
        read_only_fields = fields


class ExceptionSerializer(JourneyExceptionSerializer):
    """A failure in the exception queue, with the context needed to act on it."""

    legal_entity = serializers.SlugRelatedField(slug_field="code", read_only=True)
    journey_type = serializers.CharField(source="journey.journey_type", read_only=True)
    business_key = serializers.CharField(source="journey.business_key", read_only=True)
    correlation_id = serializers.UUIDField(source="journey.correlation_id", read_only=True)

    class Meta(JourneyExceptionSerializer.Meta):
        fields = [
            "id",
            "journey",
            "journey_type",
            "business_key",
            "correlation_id",
            "legal_entity",
            *JourneyExceptionSerializer.Meta.fields[1:],
        ]
        read_only_fields = fields


class JourneyDetailSerializer(JourneySerializer):
    """A journey with its steps in order, its exceptions and the entries it built."""

    steps = StepSerializer(many=True, read_only=True)
    exceptions = JourneyExceptionSerializer(many=True, read_only=True)
    journal_entries = JournalEntryInJourneySerializer(many=True, read_only=True)

    class Meta(JourneySerializer.Meta):
        fields = [*_JOURNEY_FIELDS, "context", "steps", "exceptions", "journal_entries"]
        read_only_fields = fields


class ReplayRequestSerializer(serializers.Serializer):
    """Why the journey is replayed (kept in the audit trail), and from which step."""

    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    from_step = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=64,
        default=None,
        help_text="Replay from this step (it and every later step run again); by default "
        "from the failed step. Refused at or before the posting step once the entry posted.",
    )


class ReplayResultSerializer(serializers.Serializer):
    """``requeued`` from ``from_step``, or ``already_completed`` (nothing to do)."""

    journey = serializers.IntegerField()
    outcome = serializers.ChoiceField(choices=["requeued", "already_completed"])
    from_step = serializers.CharField(allow_null=True)

    @staticmethod
    def of(journey_id: int, outcome: str, from_step: str) -> dict[str, Any]:
        return {"journey": journey_id, "outcome": outcome, "from_step": from_step or None}


class BulkReplayRequestSerializer(serializers.Serializer):
    """A selection to replay: journey ids, or the filters of the journey list or of the
    exception queue (the same parameters as their GET), and the reason (required)."""

    reason = serializers.CharField(max_length=2000, allow_blank=False, trim_whitespace=True)
    journeys = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        allow_empty=False,
        max_length=500,
        help_text="Journey ids.",
    )
    journey_filter = serializers.DictField(
        required=False,
        help_text="Parameters of GET /journeys/ (state defaults to exception).",
    )
    exception_filter = serializers.DictField(
        required=False,
        help_text="Parameters of GET /exceptions/ (state defaults to open and in progress).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [k for k in ("journeys", "journey_filter", "exception_filter") if k in attrs]
        if len(given) != 1:
            raise serializers.ValidationError(
                "Give exactly one of journeys, journey_filter or exception_filter."
            )
        return attrs


class RefusedReplaySerializer(serializers.Serializer):
    journey = serializers.IntegerField()
    reason = serializers.CharField()


class BulkReplayResultSerializer(serializers.Serializer):
    """What the bulk replay did to each selected journey."""

    requeued = serializers.ListField(child=serializers.IntegerField())
    already_completed = serializers.ListField(child=serializers.IntegerField())
    refused = RefusedReplaySerializer(many=True)


class CancelRequestSerializer(serializers.Serializer):
    """Why the journey is cancelled (required; kept in the audit trail and on its cases)."""

    reason = serializers.CharField(max_length=2000, allow_blank=False, trim_whitespace=True)


class DryRunLineSerializer(serializers.Serializer):
    line_no = serializers.IntegerField()
    account_number = serializers.CharField()
    account_name = serializers.CharField()
    debit_minor = serializers.IntegerField()
    credit_minor = serializers.IntegerField()
    functional_debit_minor = serializers.IntegerField()
    functional_credit_minor = serializers.IntegerField()
    memo = serializers.CharField(allow_blank=True)
    product_code = serializers.CharField(allow_blank=True)
    tax_code = serializers.CharField(allow_blank=True)


class DryRunEntrySerializer(serializers.Serializer):
    """The entry a replay would post (``state`` is ``new`` when the dry run built it)."""

    external_id = serializers.CharField()
    state = serializers.CharField()
    posting_date = serializers.DateField()
    currency = serializers.CharField()
    functional_currency = serializers.CharField()
    fx_rate = serializers.CharField(allow_null=True)
    memo = serializers.CharField(allow_blank=True)
    totals = JournalTotalsSerializer()
    lines = DryRunLineSerializer(many=True)


class DryRunCallSerializer(serializers.Serializer):
    """An ERP request the replay would send (the body as the NetSuite client builds it)."""

    method = serializers.CharField()
    path = serializers.CharField()
    purpose = serializers.CharField()
    params = serializers.DictField(child=serializers.CharField())
    body = serializers.JSONField(allow_null=True)


class DryRunDefectSerializer(serializers.Serializer):
    """The exception the replay would stop on."""

    step = serializers.CharField()
    category = serializers.ChoiceField(choices=ExceptionCase.Category.choices)
    summary = serializers.CharField()


class DryRunSerializer(serializers.Serializer):
    """What a replay would do, computed without writing or sending anything."""

    journey_id = serializers.IntegerField()
    business_key = serializers.CharField()
    from_step = serializers.CharField(allow_blank=True)
    steps_run = serializers.ListField(child=serializers.CharField())
    stopped_before = serializers.CharField(allow_blank=True)
    entry = DryRunEntrySerializer(allow_null=True)
    calls = DryRunCallSerializer(many=True)
    defect = DryRunDefectSerializer(allow_null=True)
    refused = serializers.CharField(allow_blank=True)
    notes = serializers.ListField(child=serializers.CharField())
