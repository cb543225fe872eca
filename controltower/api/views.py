"""Read-only API over journeys, exceptions and journal entries, plus journey actions.

Querysets come from ``sync.selectors`` (already scoped to what the user may see) and filters
from ``sync.filters`` (the same FilterSets as the screens). The writes (replay, bulk replay,
cancel) delegate to ``sync.services.journeys``, which checks the role again and writes the
audit entries; the dry run (``sync.services.dry_run``) writes nothing.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404, QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from controltower.api.permissions import CanReplay, CanView
from controltower.api.serializers import (
    BulkReplayRequestSerializer,
    BulkReplayResultSerializer,
    CancelRequestSerializer,
    DryRunSerializer,
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
from sync.services.dry_run import journey_dry_run
from sync.services.journeys import journey_cancel, journey_replay, journeys_replay_bulk

_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="Unknown, or not visible to you.")
_CONFLICT = OpenApiResponse(ErrorSerializer, description="The journey cannot be replayed now.")
_FORBIDDEN = OpenApiResponse(ErrorSerializer, description="Not a finance ops user.")
_INVALID = OpenApiResponse(
    OpenApiTypes.OBJECT, description="The request is not valid (messages per field)."
)


class CanCancel(CanReplay):
    """Cancelling a journey is a finance ops action."""

    message = "Only finance ops may cancel journeys."


def _query(params: dict) -> QueryDict:
    """A filter's parameters from a JSON object (a list value is a repeated parameter)."""
    query = QueryDict(mutable=True)
    for key, value in params.items():
        values = value if isinstance(value, list) else [value]
        query.setlist(key, [str(v) for v in values if v is not None and str(v).strip()])
    return query


def _selection(request: Request, data: dict) -> QuerySet | list[int]:
    """The journeys a bulk replay names: ids (only those the user may see) or a filter."""
    if "journeys" in data:
        visible = selectors.journeys_visible_to(request.user).filter(pk__in=data["journeys"])
        known = set(visible.values_list("pk", flat=True))
        return [pk for pk in data["journeys"] if pk in known]
    if "journey_filter" in data:
        query = _query(data["journey_filter"])
        if "state" not in query:
            query.setlist("state", [Journey.State.EXCEPTION])
        filterset = JourneyFilter(
            query, queryset=selectors.journeys_visible_to(request.user), request=request
        )
        field = "journey_filter"
    else:
        query = _query(data["exception_filter"])
        if "state" not in query:
            query.setlist("state", [str(s) for s in ExceptionCase.ACTIVE])
        filterset = ExceptionFilter(
            query, queryset=selectors.exceptions_visible_to(request.user), request=request
        )
        field = "exception_filter"
    if not filterset.is_valid():
        raise ValidationError({field: filterset.errors})
    return filterset.qs


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
            journey_id=journey.pk,
            actor=request.user,
            reason=body.validated_data["reason"],
            from_step=body.validated_data["from_step"],
        )
        return Response(
            ReplayResultSerializer.of(journey.pk, result.outcome, result.from_step),
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        operation_id="v1_journeys_replay_bulk",
        summary="Replay a selection of journeys from their failed steps",
        description=(
            "For finance ops. The selection is journey ids, or the parameters of the journey "
            "list (state defaults to exception) or of the exception queue (state defaults to "
            "open and in progress); at most 500 journeys. Each journey is replayed and audited "
            "on its own (one refusal does not stop the others), plus one audit entry for the "
            "selection. The reason is required."
        ),
        request=BulkReplayRequestSerializer,
        responses={202: BulkReplayResultSerializer, 400: _INVALID, 403: _FORBIDDEN, 409: _CONFLICT},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="replay",
        url_name="replay-bulk",
        permission_classes=[CanReplay],
        filterset_class=None,
        pagination_class=None,
    )
    def replay_bulk(self, request: Request) -> Response:
        body = BulkReplayRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        summary = journeys_replay_bulk(
            journeys=_selection(request, data), actor=request.user, reason=data["reason"]
        )
        return Response(
            BulkReplayResultSerializer(summary.as_dict()).data, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(
        summary="Cancel a journey in exception",
        description=(
            "For finance ops, with a reason (required). Refused when an entry of the journey "
            "is posted (post a correction instead); a draft entry is discarded. Its open "
            "exceptions are resolved with the reason; audited."
        ),
        request=CancelRequestSerializer,
        responses={
            200: JourneySerializer,
            400: _INVALID,
            403: OpenApiResponse(ErrorSerializer, description="Not a finance ops user."),
            404: _NOT_FOUND,
            409: OpenApiResponse(ErrorSerializer, description="The journey cannot be cancelled."),
        },
    )
    @action(detail=True, methods=["post"], permission_classes=[CanCancel])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        journey = self.get_object()
        body = CancelRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        journey = journey_cancel(
            journey_id=journey.pk, actor=request.user, reason=body.validated_data["reason"]
        )
        return Response(JourneySerializer(journey).data)

    @extend_schema(
        summary="Dry run: what a replay would post and call",
        description=(
            "Runs the journey's remaining steps up to the first that calls the ERP in a "
            "transaction that is rolled back: the entry that would be posted, the ERP requests "
            "that would be sent (method, path, body) and any data defect it would stop on. "
            "Nothing is written, sent or audited; any role may ask."
        ),
        parameters=[
            OpenApiParameter(
                "from_step",
                OpenApiTypes.STR,
                description="Simulate a replay from this step (default: the failed step).",
            )
        ],
        responses={200: DryRunSerializer, 404: _NOT_FOUND},
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="dry-run",
        url_name="dry-run",
        filterset_class=None,
        pagination_class=None,
    )
    def dry_run(self, request: Request, pk: str | None = None) -> Response:
        journey = self.get_object()
        result = journey_dry_run(
            journey_id=journey.pk,
            actor=request.user,
            from_step=request.query_params.get("from_step"),
        )
        return Response(DryRunSerializer(result).data)


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
