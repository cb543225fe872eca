"""The exception queue: what finance ops work every day, and replay from a row."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET, require_POST

from controltower.views.base import (
    filter_data,
    filtered,
    paginate,
    render_screen,
    replay_from_request,
    screen,
    wants_partial,
)
from sync.filters import ExceptionFilter
from sync.journeys import registry
from sync.models import ExceptionCase
from sync.selectors import exceptions_visible_to

TEMPLATE = "controltower/exceptions.html"
DEFAULT_STATES = [ExceptionCase.State.OPEN, ExceptionCase.State.IN_PROGRESS]


@screen
@require_GET
def exception_list(request: HttpRequest) -> HttpResponse:
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
