"""Journeys: the list, and one journey with its steps, exceptions, journal entry and trail;
its actions: replay (from the failed or a chosen step), cancel, and the dry run."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from controltower.forms import ReplayForm
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
from sync.filters import JourneyFilter
from sync.journeys import registry
from sync.models import ExceptionCase, Journey
from sync.permissions import can_replay
from sync.selectors import audit_for, journey_detail, journeys_visible_to
from sync.services.dry_run import DryRun, journey_dry_run
from sync.services.journeys import journey_cancel

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


def _dry_run_context(dry: DryRun) -> dict:
    return {
        "dry_run": dry,
        "dry_run_calls": [
            {
                "call": call,
                "body_json": json.dumps(call.body, indent=2, cls=DjangoJSONEncoder)
                if call.body is not None
                else "",
            }
            for call in dry.calls
        ],
        "dry_run_defect_label": ExceptionCase.Category(dry.defect.category).label
        if dry.defect
        else "",
    }


def _journey_dry_run(request: HttpRequest, pk: int) -> HttpResponse:
    """What a replay would post and call, computed without writing or sending anything."""
    dry = journey_dry_run(
        journey_id=pk, actor=request.user, from_step=request.GET.get("from_step", "")[:64]
    )
    if wants_partial(request):
        return render_screen(request, DETAIL, _dry_run_context(dry), partial="dry-run")
    context = {**_detail_context(request, pk), **_dry_run_context(dry)}
    return render_screen(request, DETAIL, context)


def _journey_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel with a required reason (finance ops only; others get a 403)."""
    if not can_replay(request.user):
        raise PermissionDenied("Only finance ops may cancel journeys.")
    reason, error = required_reason(request, "the journey is cancelled")
    notice = ""
    if not error:
        try:
            journey = journey_cancel(journey_id=pk, actor=request.user, reason=reason)
        except Refused as exc:
            raise PermissionDenied(str(exc)) from exc
        except DomainError as exc:
            error = str(exc)
        else:
            notice = f"Journey {journey.business_key} cancelled; its exceptions are resolved."
    if not wants_partial(request):
        (messages.error if error else messages.success)(request, error or notice)
        return redirect("journey-detail", pk=pk)
    context = {
        **_detail_context(request, pk),
        "notice": notice,
        "error": error,
        "with_open_count": True,
    }
    return render_screen(request, DETAIL, context, partial="journey")


_ACTIONS = {"dry-run": ("GET", _journey_dry_run), "cancel": ("POST", _journey_cancel)}


@screen
@require_http_methods(["GET", "POST"])
def journey_action_view(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """``/journeys/<pk>/dry-run/`` (GET, any role) and ``/journeys/<pk>/cancel/`` (POST)."""
    if action not in _ACTIONS:
        raise Http404("No such action.")
    method, view = _ACTIONS[action]
    if request.method != method:
        return HttpResponseNotAllowed([method])
    if not journeys_visible_to(request.user).filter(pk=pk).exists():
        raise Http404("No such journey.")
    return view(request, pk)
