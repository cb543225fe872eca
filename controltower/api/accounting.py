"""Accounting actions in the API: recognition runs, period close, deliveries, schedules.

Finance ops start runs, close periods and record deliveries (the services check it and
answer 403 otherwise); every role reads schedules.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controltower.api.permissions import CanView
from controltower.api.reports import EntityCodeField
from sync import selectors
from sync.errors import PermissionDenied as Refused
from sync.models import RevenueSchedule, RevenueScheduleLine
from sync.permissions import FINANCE_OPS, has_role
from sync.reports import ReportError, parse_period
from sync.services.periods import period_close
from sync.services.recognition import recognition_run
from sync.services.schedules_change import schedule_deliver


class PeriodField(serializers.CharField):
    """A month written YYYY-MM."""

    def to_internal_value(self, data):
        try:
            return parse_period(super().to_internal_value(data))
        except ReportError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class EntityPeriodSerializer(serializers.Serializer):
    entity = EntityCodeField()
    period = PeriodField()
    reason = serializers.CharField(required=False, allow_blank=True, default="")


RUN_RESULT = inline_serializer(
    "RecognitionRunResult",
    {
        "entity": serializers.CharField(),
        "period": serializers.CharField(),
        "journeys": serializers.ListField(child=serializers.DictField()),
        "in_flight": serializers.ListField(child=serializers.CharField()),
        "nothing_due": serializers.BooleanField(),
    },
)


class RecognitionRunView(APIView):
    permission_classes = [CanView]

    @extend_schema(request=EntityPeriodSerializer, responses={202: RUN_RESULT})
    def post(self, request: Request) -> Response:
        """Recognize everything due up to the month (finance ops). Running it again posts
        nothing new."""
        data = EntityPeriodSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        result = recognition_run(
            entity=data.validated_data["entity"],
            period=data.validated_data["period"],
            actor=request.user,
            reason=data.validated_data["reason"],
        )
        return Response(
            {
                "entity": result.entity,
                "period": f"{result.period:%Y-%m}",
                "journeys": [{"id": j.pk, "business_key": j.business_key} for j in result.journeys],
                "in_flight": result.skipped_in_flight,
                "nothing_due": result.nothing_due,
            },
            status=status.HTTP_202_ACCEPTED,
        )


class PeriodCloseView(APIView):
    permission_classes = [CanView]

    @extend_schema(
        request=EntityPeriodSerializer,
        responses={
            200: inline_serializer(
                "PeriodClosed",
                {
                    "entity": serializers.CharField(),
                    "period": serializers.CharField(),
                    "state": serializers.CharField(),
                },
            )
        },
    )
    def post(self, request: Request) -> Response:
        """Close a month (finance ops): months close in order, only once recognized."""
        data = EntityPeriodSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        row = period_close(
            entity=data.validated_data["entity"],
            period=data.validated_data["period"],
            actor=request.user,
            reason=data.validated_data["reason"],
        )
        return Response(
            {"entity": row.legal_entity.code, "period": f"{row.period:%Y-%m}", "state": row.state}
        )


class ScheduleLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = RevenueScheduleLine
        fields = [
            "id",
            "period",
            "amount_minor",
            "functional_amount_minor",
            "credited_minor",
            "state",
            "recognized_period",
            "recognition_entry",
        ]


class ScheduleSerializer(serializers.ModelSerializer):
    entity = serializers.CharField(source="legal_entity.code")
    lines = ScheduleLineSerializer(many=True)

    class Meta:
        model = RevenueSchedule
        fields = [
            "id",
            "entity",
            "source_kind",
            "source_ref",
            "customer_ref",
            "product_code",
            "revenue_type",
            "currency",
            "fx_rate",
            "total_minor",
            "service_start",
            "service_end",
            "state",
            "lines",
        ]


class DeliverySerializer(serializers.Serializer):
    delivered_on = serializers.DateField()
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class RevenueScheduleViewSet(viewsets.ReadOnlyModelViewSet):
    """Revenue schedules with their monthly lines; filter by entity code, invoice or state."""

    permission_classes = [CanView]
    serializer_class = ScheduleSerializer

    def get_queryset(self):
        qs = selectors.scoped(
            RevenueSchedule.objects.select_related("legal_entity").prefetch_related("lines"),
            self.request.user,
        )
        params = self.request.query_params
        if params.get("entity"):
            qs = qs.filter(legal_entity__code=params["entity"])
        if params.get("invoice"):
            qs = qs.filter(invoice_line__invoice__source_id=params["invoice"])
        if params.get("state"):
            qs = qs.filter(state=params["state"])
        return qs.order_by("pk")

    @extend_schema(request=DeliverySerializer, responses={200: ScheduleSerializer})
    @action(detail=True, methods=["post"])
    def deliver(self, request: Request, pk: str | None = None) -> Response:
        """Record the delivery of a services-on-delivery line (finance ops)."""
        if not has_role(request.user, FINANCE_OPS):  # refused before anything is looked up
            raise Refused("Only finance ops may record deliveries.")
        get_object_or_404(self.get_queryset(), pk=pk)
        data = DeliverySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = schedule_deliver(
            schedule_id=int(pk),
            actor=request.user,
            delivered_on=data.validated_data["delivered_on"],
            reason=data.validated_data["reason"],
        )
        return Response(ScheduleSerializer(self.get_queryset().get(pk=schedule.pk)).data)
