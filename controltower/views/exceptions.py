"""The exception queue: what finance ops work every day, and replay from a row."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied as Forbidden
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET, require_POST

from controltower.forms import ReplayForm
from controltower.views.base import (
    filter_data,
    filtered,
    paginate,
    render_screen,
    screen,
    wants_partial,
)
from sync.errors import DomainError, PermissionDenied
from sync.filters import ExceptionFilter
from sync.journeys import registry
from sync.models import ExceptionCase
from sync.selectors import exceptions_visible_to
from sync.services.journeys import ReplayOutcome, journey_replay

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


def replay_notice(outcome: ReplayOutcome) -> str:
    if outcome.outcome == "already_completed":
        return f"Journey {outcome.journey.business_key} had already completed; nothing to replay."
    return f"Replay queued from step “{outcome.from_step}”."


@screen
@require_POST
def exception_replay(request: HttpRequest, pk: int) -> HttpResponse:
    """Replay the journey of one exception; answers htmx with the row re-rendered in place."""
    case = get_object_or_404(exceptions_visible_to(request.user), pk=pk)
    form = ReplayForm(request.POST)
    notice = error = ""
    if not form.is_valid():
        error = " ".join(form.errors.get("reason", ["The reason is not valid."]))
    else:
        try:
            outcome = journey_replay(
                journey_id=case.journey_id, actor=request.user, reason=form.reason_or_default()
            )
        except PermissionDenied as exc:
            raise Forbidden(str(exc)) from exc
        except DomainError as exc:
            error = str(exc)
        else:
            notice = replay_notice(outcome)
    if not wants_partial(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(request, notice)
        return redirect("exception-list")
    case = exceptions_visible_to(request.user).get(pk=pk)
    context = {"case": case, "row_notice": notice, "row_error": error, "with_open_count": True}
    return render_screen(request, TEMPLATE, context, partial="replayed-row")
