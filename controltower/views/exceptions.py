"""The exception queue: what finance ops work every day. Filter, sort and search; replay a row;
on a selection replay, assign, resolve, ignore or tag (rows re-rendered in place, the open count
refreshed out of band); and the same cases grouped by root cause, each group with its fix."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from controltower.fixes import fix_url
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
from sync.models import ExceptionCase, Tag
from sync.permissions import can_replay
from sync.root_causes import describe
from sync.selectors import entities_visible_to, exceptions_visible_to
from sync.services.exceptions import (
    exceptions_assign,
    exceptions_close,
    exceptions_tag,
    finance_ops_people,
)
from sync.services.journeys import journeys_replay_bulk

TEMPLATE = "controltower/exceptions.html"
CAUSES_TEMPLATE = "controltower/exception_causes.html"
SOURCE_SYSTEMS = ("stripe", "chargebee", "salesforce", "hubspot")
DEFAULT_STATES = [ExceptionCase.State.OPEN, ExceptionCase.State.IN_PROGRESS]


SORTS = (
    ("-created", "Newest first"),
    ("created", "Oldest first"),
    ("category", "Category"),
    ("entity", "Entity"),
    ("journey_type", "Journey type"),
    ("assignee", "Assignee"),
    ("state", "State"),
)


def _queue(request: HttpRequest) -> ExceptionFilter:
    return ExceptionFilter(
        filter_data(request.GET, {"state": [str(s) for s in DEFAULT_STATES]}),
        queryset=exceptions_visible_to(request.user)
        .prefetch_related("tags")
        .order_by("-created_at", "-id"),
        request=request,
    )


@screen
@require_http_methods(["GET", "POST"])
def exception_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return exception_bulk(request)
    filterset = _queue(request)
    context = {
        "filterset": filterset,
        "page_obj": paginate(request, filtered(filterset)),
        "journey_types": sorted(registry()),
        "selected_states": filterset.form["state"].value() or [],
        "selected_categories": filterset.form["category"].value() or [],
        "sorts": SORTS,
        "people": finance_ops_people() if can_replay(request.user) else [],
        "tags": list(Tag.objects.values_list("name", flat=True)),
        "source_systems": SOURCE_SYSTEMS,
    }
    return render_screen(request, TEMPLATE, context, partial="results")


@screen
@require_GET
def exception_causes(request: HttpRequest) -> HttpResponse:
    """Open cases grouped by what blocks them, biggest group first, each with the fix."""
    groups = [
        {
            **row,
            "cause": describe(row["root_cause"] or row["category"]),
            "queue": f"{reverse('exception-list')}?{urlencode({'root_cause': row['root_cause']})}",
        }
        for row in exceptions_visible_to(request.user)
        .filter(state__in=DEFAULT_STATES)
        .values("root_cause", "category")
        # No COUNT(DISTINCT journey): a journey has one open case at a time (a later cause
        # supersedes the earlier), and the distinct count doubled the cost at 100k cases.
        .annotate(n=Count("id"), oldest=Min("created_at"))
        .order_by("-n", "root_cause")[:200]
    ]
    entity_ids = {e.code: e.pk for e in entities_visible_to(request.user)}
    for group in groups:
        group["fix_url"] = fix_url(group["cause"], entity_ids)
    context = {"groups": groups}
    return render_screen(request, CAUSES_TEMPLATE, context)


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


def exception_bulk(request: HttpRequest) -> HttpResponse:
    """A selection of cases and an action: replay, assign, resolve, ignore, tag or untag."""
    action = request.POST.get("action", "replay")
    if action == "replay":
        return exception_replay_selected(request)
    if action not in {"assign", "resolve", "ignore", "tag", "untag"}:
        return _bulk_answer(request, "", "Unknown action.", [])
    if not can_replay(request.user):
        raise PermissionDenied("Only finance ops work exceptions.")
    case_ids = [int(v) for v in request.POST.getlist("case") if v.strip().isdigit()]
    try:
        if action == "assign":
            name = request.POST.get("assignee", "").strip()
            assignee = None
            if name != "-":
                assignee = next((p for p in finance_ops_people() if p.get_username() == name), None)
                if assignee is None:
                    raise DomainError("Choose who to assign to (or nobody).")
            outcomes = exceptions_assign(case_ids=case_ids, assignee=assignee, actor=request.user)
        elif action in {"resolve", "ignore"}:
            outcomes = exceptions_close(
                case_ids=case_ids,
                actor=request.user,
                reason=request.POST.get("reason", ""),
                ignore=action == "ignore",
            )
        else:
            tags = request.POST.get("tag", "").replace(",", " ").split()
            outcomes = exceptions_tag(
                case_ids=case_ids,
                actor=request.user,
                add=tags if action == "tag" else (),
                remove=tags if action == "untag" else (),
            )
    except Refused as exc:
        raise PermissionDenied(str(exc)) from exc
    except DomainError as exc:
        return _bulk_answer(request, "", str(exc), [])
    by_id = {
        c.pk: c
        for c in exceptions_visible_to(request.user)
        .prefetch_related("tags")
        .filter(pk__in=[o.case_id for o in outcomes])
    }
    done = sum(1 for o in outcomes if not o.error)
    unseen = sum(1 for o in outcomes if o.case_id not in by_id)
    refused = len(outcomes) - done - unseen
    notice = f"{done} of {len(outcomes)} done."
    if refused:
        notice += f" {refused} refused (see the rows)."
    if unseen:
        notice += f" {unseen} not found."
    rows = [
        {"case": by_id[o.case_id], "notice": o.notice, "error": o.error}
        for o in outcomes
        if o.case_id in by_id
    ]
    if not done:
        return _bulk_answer(request, "", notice, rows)
    return _bulk_answer(request, notice, "", rows)


def _bulk_answer(request: HttpRequest, notice: str, error: str, rows: list[dict]) -> HttpResponse:
    if not wants_partial(request):
        (messages.error if error else messages.success)(request, error or notice)
        return redirect("exception-list")
    context = {
        "bulk_notice": notice,
        "bulk_error": error,
        "bulk_rows": rows,
        "with_open_count": True,
    }
    return render_screen(request, TEMPLATE, context, partial="bulk-result")


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
