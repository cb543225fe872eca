"""Connector health over the API: every role reads it; integration admins pause and resume.

``GET  /api/v1/connectors/``                  each connector's circuit state
``GET  /api/v1/connectors/{system}/``         one connector
``POST /api/v1/connectors/{system}/pause/``   ``{"reason": "..."}`` (integration admins; audited)
``POST /api/v1/connectors/{system}/resume/``  ``{"reason": "..."}`` (integration admins; audited)
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controltower.api.permissions import CanView
from controltower.api.serializers import ErrorSerializer
from sync.models import ConnectorHealth
from sync.permissions import can_edit_global_mappings, can_view
from sync.services.connector_health import connector_pause, connector_resume, connectors_list


class CanViewOrPauseConnectors(BasePermission):
    """Every role reads connector health; only integration admins pause or resume."""

    message = "Only integration admins pause and resume connectors."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            if not can_view(user):
                self.message = CanView.message  # type: ignore[misc]
                return False
            return True
        return can_edit_global_mappings(user)


class ConnectorHealthSerializer(serializers.ModelSerializer):
    state_label = serializers.CharField(source="get_state_display", read_only=True)
    paused_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ConnectorHealth
        fields = [
            "system",
            "state",
            "state_label",
            "consecutive_failures",
            "open_seconds",
            "opened_at",
            "next_probe_at",
            "paused_by",
            "paused_reason",
            "last_error",
            "updated_at",
        ]
        read_only_fields = fields


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class ConnectorViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ConnectorHealthSerializer
    permission_classes = [CanViewOrPauseConnectors]
    lookup_field = "system"
    lookup_value_regex = r"[a-z0-9_-]+"
    pagination_class = None

    queryset = ConnectorHealth.objects.none()  # names the model for the schema

    def get_queryset(self) -> QuerySet[ConnectorHealth]:
        if getattr(self, "swagger_fake_view", False):
            return ConnectorHealth.objects.none()
        connectors_list()  # known connectors get their row on first sight
        return ConnectorHealth.objects.select_related("paused_by").order_by("system")

    def _change(self, request: Request, system: str, change) -> Response:
        data = ReasonSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = change(system=system, actor=request.user, reason=data.validated_data["reason"])
        return Response(ConnectorHealthSerializer(row).data)

    @extend_schema(
        request=ReasonSerializer,
        responses={
            200: ConnectorHealthSerializer,
            403: OpenApiResponse(ErrorSerializer, description="Not an integration admin."),
            409: OpenApiResponse(ErrorSerializer, description="Already paused / unknown."),
        },
    )
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, system: str) -> Response:
        """Stop sending to this connector; its steps wait without spending attempts."""
        return self._change(request, system, connector_pause)

    @extend_schema(
        request=ReasonSerializer,
        responses={
            200: ConnectorHealthSerializer,
            403: OpenApiResponse(ErrorSerializer, description="Not an integration admin."),
            409: OpenApiResponse(ErrorSerializer, description="Not paused / unknown."),
        },
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, system: str) -> Response:
        """Close the circuit and run the waiting steps now."""
        return self._change(request, system, connector_resume)
