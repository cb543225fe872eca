"""The exception queue: what finance ops work every day; replay from a row or a selection."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_http_methods, require_POST

from controltower.views.base import (
    filter_data,
    filtered,
    paginate,
    render_screen,
    replay_from_request,
    required_reason,
    screen,
    wants_partial,
)
from sync.errors import DomainError
from sync.errors import PermissionDenied as Refused
from sync.filters import ExceptionFilter
from sync.journeys import registry
from sync.models import ExceptionCase
from sync.permissions import can_replay
from sync.selectors import exceptions_visible_to
from sync.services.journeys import journeys_replay_bulk

TEMPLATE = "controltower/exceptions.html"
DEFAULT_STATES = [ExceptionCase.State.OPEN, ExceptionCase.State.IN_PROGRESS]


@screen
@require_http_methods(["GET", "POST"])
def exception_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return exception_replay_selected(request)
    filterset = ExceptionFilter(
        filter_data(request.GET, {"state": [str(s) for s in DEFAULT_STATES]}),
        queryset=exceptions_visible_to(request.user).order_by("-created_at", "-id"),
        request=request,
    )
    context = {
        "filterset": filterset,
        "page_obj": paginate(request, filtered(filterset)),
        "journey_types": sorted(registry()),
        "selected_states": filterset.form["state"].value() or [],
        "selected_categories": filterset.form["category"].value() or [],
    }
    return render_screen(request, TEMPLATE, context, partial="results")


@screen
@require_POST
def exception_replay(request: HttpRequest, pk: int) -> HttpResponse:
    """Replay the journey of one exception; answers htmx with the row re-rendered in place."""
    case = get_object_or_404(exceptions_visible_to(request.user), pk=pk)
    notice, error = replay_from_request(request, case.journey_id)
    if not wants_partial(request):
        return redirect("exception-list")
    case = exceptions_visible_to(request.user).get(pk=pk)
    context = {"case": case, "row_notice": notice, "row_error": error, "with_open_count": True}
    return render_screen(request, TEMPLATE, context, partial="replayed-row")


def exception_replay_selected(request: HttpRequest) -> HttpResponse:
    """ "Replay selected": the journeys of the ticked cases, with a required reason (finance
    ops only). Answers htmx with a summary, the rows re-rendered out of band and the open
    count refreshed."""
    if not can_replay(request.user):
        raise PermissionDenied("Only finance ops may replay journeys.")
    reason, error = required_reason(request, "the selection is replayed")
    case_ids = [int(v) for v in request.POST.getlist("case") if v.strip().isdigit()]
    cases = exceptions_visible_to(request.user).filter(pk__in=case_ids)
    rows: list[dict] = []
    notice = ""
    if not case_ids:
        error = "Tick the exceptions to replay first."
    elif not error:
        try:
            summary = journeys_replay_bulk(journeys=cases, actor=request.user, reason=reason)
        except Refused as exc:
            raise PermissionDenied(str(exc)) from exc
        except DomainError as exc:
            error = str(exc)
        else:
            refused = {r["journey"]: r["reason"] for r in summary.refused}
            for case in exceptions_visible_to(request.user).filter(pk__in=case_ids):
                jid = case.journey_id
                rows.append(
                    {
                        "case": case,
                        "notice": "Replay queued."
                        if jid in summary.requeued
                        else "Already completed; nothing to replay."
                        if jid in summary.already_completed
                        else "",
                        "error": refused.get(jid, ""),
                    }
                )
            notice = (
                f"{len(summary.requeued)} replay{'s' if len(summary.requeued) != 1 else ''} "
                f"queued, {len(summary.already_completed)} already completed, "
                f"{len(summary.refused)} refused."
            )
    if not wants_partial(request):
        (messages.error if error else messages.success)(request, error or notice)
        return redirect("exception-list")
    context = {"bulk_notice": notice, "bulk_error": error, "bulk_rows": rows}
    context["with_open_count"] = True
    return render_screen(request, TEMPLATE, context, partial="bulk-result")
