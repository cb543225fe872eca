"""Maker-checker over the API: posting-rule and product-mapping writes answer 202 with the
proposed change; another integration admin approves (or rejects) it here."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controltower.api.permissions import CanView
from sync.mapping_kinds import kind_of, values_of
from sync.models import MappingChange
from sync.permissions import entity_scope
from sync.services.mapping_changes import (
    mapping_change_approve,
    mapping_change_propose,
    mapping_change_reject,
    mapping_change_withdraw,
)
from sync.services.mappings import check_entity_access, validate_mapping


class MappingChangeSerializer(serializers.ModelSerializer):
    proposed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    legal_entity = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = MappingChange
        fields = [
            "id",
            "kind",
            "operation",
            "target_id",
            "legal_entity",
            "values",
            "before",
            "reason",
            "state",
            "proposed_by",
            "proposed_at",
            "decided_by",
            "decided_at",
            "decision_note",
            "applied_id",
        ]
        read_only_fields = fields


class DecisionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class MappingChangeViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Proposed changes to posting rules and product mappings; filter with ``?state=pending``."""

    permission_classes = [CanView]
    serializer_class = MappingChangeSerializer
    queryset = MappingChange.objects.none()  # names the model for the schema

    def get_queryset(self) -> QuerySet[MappingChange]:
        qs = MappingChange.objects.select_related("proposed_by", "decided_by", "legal_entity")
        ids = entity_scope(self.request.user)
        if ids is not None:
            qs = qs.filter(legal_entity_id__in=ids)
        state = self.request.query_params.get("state")
        return qs.filter(state=state) if state else qs

    def _decide(self, request: Request, pk: str | None, service: Any) -> Response:
        self.get_object()  # 404 for a change the reader may not see
        data = DecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        change = service(change_id=int(pk), actor=request.user, note=data.validated_data["note"])
        return Response(MappingChangeSerializer(change).data)

    @extend_schema(request=DecisionSerializer, responses={200: MappingChangeSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        """Approve and apply (an integration admin other than the proposer)."""
        return self._decide(request, pk, mapping_change_approve)

    @extend_schema(request=DecisionSerializer, responses={200: MappingChangeSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        """Reject, with the reason in ``note``."""
        return self._decide(request, pk, mapping_change_reject)

    @extend_schema(request=DecisionSerializer, responses={200: MappingChangeSerializer})
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: str | None = None) -> Response:
        """The proposer takes the change back."""
        return self._decide(request, pk, mapping_change_withdraw)


class ProposeInsteadMixin:
    """For mapping kinds that need approval: a create, update or delete is validated and
    proposed (202 with the ``MappingChange``), not applied."""

    def _propose(self, request: Request, proposed: Any = None, **kwargs: Any) -> Response:
        if proposed is not None:
            check_entity_access(request.user, proposed)
            validate_mapping(proposed)  # field errors first, with the reason's if missing
        reason = (request.data.get("reason") if hasattr(request.data, "get") else "") or ""
        reason = reason or request.query_params.get("reason", "")
        if not str(reason).strip():
            raise serializers.ValidationError(
                {"reason": ["Say why: a change that needs approval needs a reason."]}
            )
        model = self.get_serializer_class().Meta.model
        change = mapping_change_propose(
            actor=request.user, kind=kind_of(model), reason=str(reason), **kwargs
        )
        return Response(MappingChangeSerializer(change).data, status=status.HTTP_202_ACCEPTED)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("reason", None)
        instance = serializer.Meta.model(**data)
        return self._propose(request, instance, values=values_of(instance))

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        current = self.get_object()
        serializer = self.get_serializer(current, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        proposed = type(current).objects.get(pk=current.pk)
        for name, value in serializer.validated_data.items():
            if name != "reason":
                setattr(proposed, name, value)
        return self._propose(request, proposed, values=values_of(proposed), target_id=current.pk)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        current = self.get_object()
        return self._propose(request, target_id=current.pk, delete=True)
