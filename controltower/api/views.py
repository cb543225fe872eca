"""Read-only API over journeys, exceptions and journal entries, plus journey replay.

Querysets come from ``sync.selectors`` (already scoped to what the user may see) and filters
from ``sync.filters`` (the same FilterSets as the screens). The one write, replay, delegates to
``sync.services.journeys.journey_replay``, which checks the role again and writes the audit entry.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from controltower.api.permissions import CanReplay, CanView
from controltower.api.serializers import (
    ErrorSerializer,
    ExceptionSerializer,
    JournalEntrySerializer,
    JourneyDetailSerializer,
    JourneySerializer,
    ReplayRequestSerializer,
    ReplayResultSerializer,
)
from sync import selectors
from sync.filters import ExceptionFilter, JournalEntryFilter, JourneyFilter
from sync.models import ExceptionCase, JournalEntry, Journey
from sync.services.journeys import journey_replay

_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="Unknown, or not visible to you.")
_CONFLICT = OpenApiResponse(ErrorSerializer, description="The journey cannot be replayed now.")
_FORBIDDEN = OpenApiResponse(ErrorSerializer, description="Not a finance ops user.")


class JourneyViewSet(viewsets.ReadOnlyModelViewSet):
    """Journeys: one commercial event each, with its steps and SLA state."""

    permission_classes = [CanView]
    filterset_class = JourneyFilter
    serializer_class = JourneySerializer

    def get_queryset(self) -> QuerySet[Journey]:
        return selectors.journeys_visible_to(self.request.user)

    def get_serializer_class(self):
        return JourneyDetailSerializer if self.action == "retrieve" else JourneySerializer

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        try:
            journey = selectors.journey_detail(request.user, int(pk or ""))
        except (Journey.DoesNotExist, ValueError) as exc:
            raise Http404("No such journey.") from exc
        self.check_object_permissions(request, journey)
        return Response(self.get_serializer(journey).data)

    @extend_schema(
        summary="Replay a journey from its failed step",
        description=(
            "For finance ops, after the cause is fixed. Steps that succeeded are not redone and "
            "nothing posts twice; replaying a completed journey changes nothing. Every replay "
            "is written to the audit trail with the user and the reason."
        ),
        request=ReplayRequestSerializer,
        responses={
            202: ReplayResultSerializer,
            403: _FORBIDDEN,
            404: _NOT_FOUND,
            409: _CONFLICT,
        },
    )
    @action(detail=True, methods=["post"], permission_classes=[CanReplay])
    def replay(self, request: Request, pk: str | None = None) -> Response:
        journey = self.get_object()
        body = ReplayRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = journey_replay(
            journey_id=journey.pk, actor=request.user, reason=body.validated_data["reason"]
        )
        return Response(
            ReplayResultSerializer.of(journey.pk, result.outcome, result.from_step),
            status=status.HTTP_202_ACCEPTED,
        )


class ExceptionViewSet(viewsets.ReadOnlyModelViewSet):
    """The exception queue: failures a person acts on, newest first."""

    permission_classes = [CanView]
    filterset_class = ExceptionFilter
    serializer_class = ExceptionSerializer

    def get_queryset(self) -> QuerySet[ExceptionCase]:
        return selectors.exceptions_visible_to(self.request.user)


class JournalEntryViewSet(viewsets.ReadOnlyModelViewSet):
    """Journal entries with their lines, as posted (or to be posted) to the ERP."""

    permission_classes = [CanView]
    filterset_class = JournalEntryFilter
    serializer_class = JournalEntrySerializer

    def get_queryset(self) -> QuerySet[JournalEntry]:
        return selectors.journal_entries_visible_to(self.request.user)
