"""Ledger reports over the API, read-only for every role: the trial balance, the deferred revenue
roll-forward, and the journal lines behind any of their figures.

The figures come from ``sync.reports`` (aggregated in the database, posted entries only); this
module checks the query, picks the entity among those the user may see and shapes the answer.
Amounts are integers of functional minor units next to their ``currency``; a period is a month
written ``YYYY-MM``. A bad entity code, period, account or column is a 400 naming the parameter.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controltower.api.permissions import CanView
from controltower.api.serializers import ErrorSerializer
from sync import reports
from sync.models import GLAccount, JournalLine, LegalEntity

# --- query parameters ---------------------------------------------------------------------------


@extend_schema_field({"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-04"})
class PeriodField(serializers.Field):
    """A month as ``YYYY-MM`` (the first day of the month inside)."""

    def to_internal_value(self, data: Any) -> dt.date:
        try:
            return reports.parse_period(str(data))
        except reports.ReportError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_representation(self, value: dt.date) -> str:
        return value.strftime("%Y-%m")


class EntityCodeField(serializers.SlugRelatedField):
    """A legal entity named by its code, among those the requesting user may see."""

    default_error_messages = {
        "does_not_exist": "No legal entity has the code “{value}”.",
        "invalid": "Give a legal entity code, e.g. us-inc.",
    }

    def __init__(self, **kwargs: Any) -> None:
        # The queryset names the model for the schema; lookups go through get_queryset.
        super().__init__(slug_field="code", queryset=LegalEntity.objects.all(), **kwargs)

    def get_queryset(self) -> QuerySet:
        return reports.report_entities(self.context["request"].user)


class ReportQuerySerializer(serializers.Serializer):
    """Which report: the entity and the month."""

    entity = EntityCodeField(help_text="Legal entity code, e.g. us-inc.")
    period = PeriodField(help_text="Month, YYYY-MM.")


class LinesQuerySerializer(ReportQuerySerializer):
    """Which figure: a column of one report, for one account or product (or the totals row)."""

    column = serializers.ChoiceField(
        choices=reports.COLUMNS, help_text="The figure's column in its report."
    )
    report = serializers.ChoiceField(
        choices=reports.REPORTS,
        required=False,
        help_text=(
            "The report of the figure. Without it: deferred_revenue when a product is given or "
            "the column is billed, recognized, credited or break; trial_balance otherwise."
        ),
    )
    account = serializers.IntegerField(
        required=False, min_value=1, help_text="GL account id (a trial balance row)."
    )
    product = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text=(
            "Product code (a roll-forward row); present but empty means lines without a product."
            " Leave it out for the totals row."
        ),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        report = attrs.get("report") or reports.infer_report(
            column=attrs["column"], product=attrs.get("product")
        )
        allowed = (
            reports.TRIAL_BALANCE_COLUMNS
            if report == reports.TRIAL_BALANCE
            else reports.ROLLFORWARD_COLUMNS
        )
        if attrs["column"] not in allowed:
            raise serializers.ValidationError(
                {"column": [f"The {report} report has no column “{attrs['column']}”."]}
            )
        attrs["report"] = report
        if "account" in attrs:
            entity = attrs["entity"]
            account = (
                GLAccount.objects.filter(pk=attrs["account"], legal_entity=entity)
                .order_by()
                .first()
            )
            if account is None:
                raise serializers.ValidationError(
                    {"account": [f"No GL account {attrs['account']} in entity {entity.code}."]}
                )
            attrs["account"] = account
        return attrs


# --- answers ------------------------------------------------------------------------------------


class ReportAccountSerializer(serializers.Serializer):
    """A GL account of the entity."""

    id = serializers.IntegerField()
    number = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=GLAccount.Kind.choices)


class TrialBalanceAccountSerializer(ReportAccountSerializer):
    id = serializers.IntegerField(source="account_id")


class TrialBalanceFiguresSerializer(serializers.Serializer):
    """Balances debit-positive; debits and credits of the period as positive amounts."""

    opening_minor = serializers.IntegerField(source="opening")
    debits_minor = serializers.IntegerField(source="debits")
    credits_minor = serializers.IntegerField(source="credits")
    closing_minor = serializers.IntegerField(source="closing")


class TrialBalanceRowSerializer(serializers.Serializer):
    """One GL account with a balance or a movement (debit positive)."""

    account = TrialBalanceAccountSerializer(source="*")
    opening_minor = serializers.IntegerField(source="opening")
    debits_minor = serializers.IntegerField(source="debits")
    credits_minor = serializers.IntegerField(source="credits")
    closing_minor = serializers.IntegerField(source="closing")


class TrialBalanceSerializer(serializers.Serializer):
    """The trial balance of one entity and month, in its functional currency."""

    entity = serializers.CharField(source="entity.code")
    period = PeriodField()
    currency = serializers.CharField(help_text="Functional currency of the entity.")
    rows = TrialBalanceRowSerializer(many=True)
    totals = TrialBalanceFiguresSerializer(source="*")
    is_balanced = serializers.BooleanField(
        help_text="Period debits equal credits and all balances sum to zero."
    )
    difference_minor = serializers.IntegerField(
        source="difference", help_text="Period debits minus credits."
    )
    excluded_entries = serializers.IntegerField(
        help_text="Posted entries left out because they are in another functional currency."
    )


class RollForwardRowSerializer(serializers.Serializer):
    """One product (null: all products); balances credit-positive.

    ``closing_minor`` = opening + billed - recognized - credited; ``actual_closing_minor`` is
    the balance on the accounts; ``break_minor`` their difference, never hidden.
    """

    product_code = serializers.CharField(allow_null=True)
    opening_minor = serializers.IntegerField(source="opening")
    billed_minor = serializers.IntegerField(source="billed")
    recognized_minor = serializers.IntegerField(source="recognized")
    credited_minor = serializers.IntegerField(source="credited")
    closing_minor = serializers.IntegerField(source="closing")
    actual_closing_minor = serializers.IntegerField(source="actual_closing")
    break_minor = serializers.IntegerField()


class RollForwardSerializer(serializers.Serializer):
    """Deferred revenue of one entity and month per product, in its functional currency."""

    entity = serializers.CharField(source="entity.code")
    period = PeriodField()
    currency = serializers.CharField(help_text="Functional currency of the entity.")
    accounts = ReportAccountSerializer(
        many=True, help_text="The deferred revenue accounts of the entity's posting rules."
    )
    rows = RollForwardRowSerializer(many=True)
    totals = RollForwardRowSerializer()
    has_break = serializers.BooleanField()
    excluded_entries = serializers.IntegerField(
        help_text="Posted entries left out because they are in another functional currency."
    )


class ReportLineEntrySerializer(serializers.Serializer):
    """The journal entry a line belongs to."""

    id = serializers.IntegerField()
    external_id = serializers.CharField()
    kind = serializers.CharField(
        help_text="invoice, recognition, credit_note, payment, refund or reversal."
    )
    posting_date = serializers.DateField()
    journey = serializers.IntegerField(source="journey_id", allow_null=True)
    business_key = serializers.CharField(source="journey.business_key", allow_null=True)


class ReportLineSerializer(serializers.ModelSerializer):
    """A posted journal line behind a figure; ``signed_minor`` is what it adds to the figure."""

    entry = ReportLineEntrySerializer(read_only=True)
    account = ReportAccountSerializer(read_only=True)
    signed_minor = serializers.IntegerField(read_only=True)

    class Meta:
        model = JournalLine
        fields = [
            "id",
            "entry",
            "line_no",
            "account",
            "functional_debit_minor",
            "functional_credit_minor",
            "signed_minor",
            "product_code",
            "memo",
        ]
        read_only_fields = fields


class ReportLinesPagination(LimitOffsetPagination):
    """A page of lines, with the figure they add up to (all pages together) and its currency."""

    count: int | None = None
    total_minor = 0
    currency = ""

    def get_count(self, queryset: QuerySet) -> int:
        return self.count if self.count is not None else super().get_count(queryset)

    def get_paginated_response(self, data: list[dict[str, Any]]) -> Response:
        response = super().get_paginated_response(data)
        response.data = {
            "count": response.data["count"],
            "next": response.data["next"],
            "previous": response.data["previous"],
            "currency": self.currency,
            "total_minor": self.total_minor,
            "results": response.data["results"],
        }
        return response

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        paginated = super().get_paginated_response_schema(schema)
        paginated["properties"] = {
            **paginated["properties"],
            "currency": {"type": "string", "example": "USD"},
            "total_minor": {
                "type": "integer",
                "description": "Sum of signed_minor over all pages: the figure.",
            },
        }
        paginated["required"] = [*paginated.get("required", []), "currency", "total_minor"]
        return paginated


# --- views --------------------------------------------------------------------------------------

_BAD_QUERY = OpenApiResponse(
    description="A parameter is missing or wrong: a list of messages per parameter name."
)
_NO_ROLE = OpenApiResponse(ErrorSerializer, description="No Control Tower role.")


def _query(request: Request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    query = serializer_class(data=request.query_params, context={"request": request})
    query.is_valid(raise_exception=True)
    return query.validated_data


class TrialBalanceView(APIView):
    """Trial balance of one entity and month."""

    permission_classes = [CanView]

    @extend_schema(
        summary="Trial balance of an entity for a month",
        description=(
            "Per GL account: opening balance before the month (debit positive), the month's "
            "debits and credits, and the closing balance, from posted entries only, in the "
            "entity's functional currency (minor units)."
        ),
        parameters=[ReportQuerySerializer],
        responses={200: TrialBalanceSerializer, 400: _BAD_QUERY, 403: _NO_ROLE},
    )
    def get(self, request: Request) -> Response:
        q = _query(request, ReportQuerySerializer)
        tb = reports.trial_balance(entity=q["entity"], period=q["period"])
        return Response(TrialBalanceSerializer(tb).data)


class DeferredRevenueView(APIView):
    """Deferred revenue roll-forward of one entity and month."""

    permission_classes = [CanView]

    @extend_schema(
        summary="Deferred revenue roll-forward of an entity for a month",
        description=(
            "Per product on the entity's deferred revenue accounts: opening + billed - "
            "recognized - credited = closing (credit positive), checked against the balance "
            "actually on the accounts; any difference is reported as break_minor."
        ),
        parameters=[ReportQuerySerializer],
        responses={200: RollForwardSerializer, 400: _BAD_QUERY, 403: _NO_ROLE},
    )
    def get(self, request: Request) -> Response:
        q = _query(request, ReportQuerySerializer)
        rf = reports.deferred_revenue_rollforward(entity=q["entity"], period=q["period"])
        return Response(RollForwardSerializer(rf).data)


class ReportLinesView(GenericAPIView):
    """The posted journal lines behind one figure of a report."""

    permission_classes = [CanView]
    serializer_class = ReportLineSerializer
    pagination_class = ReportLinesPagination
    filter_backends: list = []

    def get_queryset(self) -> QuerySet[JournalLine]:
        return JournalLine.objects.none()  # the lines depend on validated parameters; see get

    @extend_schema(
        summary="Journal lines behind a report figure",
        description=(
            "The posted lines behind a figure, oldest first; total_minor (the sum of their "
            "signed_minor over all pages) equals the figure."
        ),
        parameters=[LinesQuerySerializer],
        responses={200: ReportLineSerializer(many=True), 400: _BAD_QUERY, 403: _NO_ROLE},
    )
    def get(self, request: Request) -> Response:
        q = _query(request, LinesQuerySerializer)
        lines = reports.lines_behind(
            entity=q["entity"],
            period=q["period"],
            account=q.get("account"),
            product=q.get("product"),
            column=q["column"],
            report=q["report"],
        )
        paginator: ReportLinesPagination = self.paginator  # type: ignore[assignment]
        summary = reports.lines_summary(lines)
        paginator.count, paginator.total_minor = summary.count, summary.total
        paginator.currency = q["entity"].functional_currency
        page = self.paginate_queryset(lines)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


urlpatterns = [
    path("reports/trial-balance/", TrialBalanceView.as_view(), name="report-trial-balance"),
    path(
        "reports/deferred-revenue/", DeferredRevenueView.as_view(), name="report-deferred-revenue"
    ),
    path("reports/lines/", ReportLinesView.as_view(), name="report-lines"),
]
