"""Journeys: the list, and one journey with its steps, exceptions, journal entry and trail."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from controltower.forms import ReplayForm
from controltower.views.base import (
    filter_data,
    filtered,
    paginate,
    render_screen,
    replay_from_request,
    screen,
    wants_partial,
)
from sync.filters import JourneyFilter
from sync.journeys import registry
from sync.models import Journey
from sync.selectors import audit_for, journey_detail, journeys_visible_to

DETAIL = "controltower/journey_detail.html"


@screen
@require_GET
def journey_list(request: HttpRequest) -> HttpResponse:
    filterset = JourneyFilter(
        filter_data(request.GET),
        queryset=journeys_visible_to(request.user).order_by("-created_at", "-id"),
        request=request,
    )
    context = {
        "filterset": filterset,
        "page_obj": paginate(request, filtered(filterset)),
        "journey_types": sorted(registry()),
        "selected_states": filterset.form["state"].value() or [],
    }
    return render_screen(request, "controltower/journeys.html", context, partial="results")


def _detail_context(request: HttpRequest, pk: int) -> dict:
    try:
        journey = journey_detail(request.user, pk)
    except Journey.DoesNotExist:
        raise Http404("No such journey.") from None
    return {
        "journey": journey,
        "audit_entries": audit_for("sync.journey", str(journey.pk)),
        "replay_form": ReplayForm(),
    }


@screen
@require_GET
def journey_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    return render_screen(request, DETAIL, _detail_context(request, pk), partial="journey")


@screen
@require_POST
def journey_replay_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Replay from the detail page; answers htmx with the journey re-rendered in place."""
    if not journeys_visible_to(request.user).filter(pk=pk).exists():
        raise Http404("No such journey.")
    notice, error = replay_from_request(request, pk)
    if not wants_partial(request):
        return redirect("journey-detail", pk=pk)
    context = {
        **_detail_context(request, pk),
        "notice": notice,
        "error": error,
        "with_open_count": True,
    }
    if error:
        context["replay_form"] = ReplayForm(request.POST)
    return render_screen(request, DETAIL, context, partial="journey")
