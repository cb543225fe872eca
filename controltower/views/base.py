"""What every screen shares: who may open it, and the one decision full page vs htmx partial."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import resolve_url
from django.template.response import TemplateResponse
from django.utils.cache import patch_vary_headers
from django_filters import FilterSet
from django_htmx.http import HttpResponseClientRedirect

from controltower.forms import ReplayForm
from sync.errors import DomainError
from sync.errors import PermissionDenied as Refused
from sync.models import ExceptionCase
from sync.permissions import can_view
from sync.selectors import exceptions_visible_to
from sync.services.journeys import journey_replay

PAGE_SIZE = 50

View = Callable[..., HttpResponse]


def screen(view: View) -> View:
    """Signed-in users with a role only: others go to the login page, or get a 403.

    An htmx request from an expired session is told to load the login page as a whole page
    instead of having it swapped into a table row.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            if getattr(request, "htmx", False):
                return HttpResponseClientRedirect(resolve_url("login"))
            return redirect_to_login(request.get_full_path())
        if not can_view(request.user):
            raise PermissionDenied("Your account has no role in the Control Tower.")
        return view(request, *args, **kwargs)

    return wrapper


def wants_partial(request: HttpRequest) -> bool:
    """True for an htmx request that swaps a fragment; a history restore needs the full page."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request


def render_screen(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    partial: str | None = None,
    status: int = 200,
) -> HttpResponse:
    """The one place that decides full page or named partial (``template#partial``).

    Full pages carry the open-exceptions counter shown in the navigation; partials that change
    it add ``with_open_count=True`` to the context to send it out of band.
    """
    if partial and wants_partial(request):
        name = f"{template}#{partial}"
    else:
        name = template
        context = {**context, "open_count": open_exception_count(request.user)}
    if context.get("with_open_count") and "open_count" not in context:
        context = {**context, "open_count": open_exception_count(request.user)}
    response = TemplateResponse(request, name, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def open_exception_count(user: Any) -> int:
    return exceptions_visible_to(user).filter(state=ExceptionCase.State.OPEN).count()


def filter_data(query: QueryDict, defaults: dict[str, list[str]] | None = None) -> QueryDict:
    """The query without blank values ("All ..." options), plus defaults for a first visit.

    The filter form sends ``filtered=1``: once a person has used it, an empty state means all
    states; a bare link to the queue shows what still needs work.
    """
    data = QueryDict(mutable=True)
    for key in query:
        values = [v for v in query.getlist(key) if v.strip()]
        if values:
            data.setlist(key, values)
    if "filtered" not in query:
        for key, values in (defaults or {}).items():
            if key not in data:
                data.setlist(key, values)
    return data


def filtered(filterset: FilterSet) -> QuerySet:
    """The filtered rows, or none when a filter value is invalid (an unknown entity code
    must not silently widen the list to every entity); the template shows the errors."""
    return filterset.qs if filterset.is_valid() else filterset.queryset.none()


def paginate(request: HttpRequest, qs: QuerySet) -> Page:
    return Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))


def replay_from_request(request: HttpRequest, journey_id: int) -> tuple[str, str]:
    """Run the replay service for a POSTed replay form: returns ``(notice, error)``.

    The form may name ``from_step`` (default: the failed step). A permission refusal becomes
    a 403; any other refusal is the error to show. Without htmx the outcome is also put in
    the messages, for the redirect that follows.
    """
    form = ReplayForm(request.POST)
    from_step = request.POST.get("from_step", "").strip()[:64] or None
    notice = error = ""
    if not form.is_valid():
        error = " ".join(form.errors.get("reason", ["The reason is not valid."]))
    else:
        try:
            outcome = journey_replay(
                journey_id=journey_id,
                actor=request.user,
                reason=form.reason_or_default(),
                from_step=from_step,
            )
        except Refused as exc:
            raise PermissionDenied(str(exc)) from exc
        except DomainError as exc:
            error = str(exc)
        else:
            if outcome.outcome == "already_completed":
                notice = (
                    f"Journey {outcome.journey.business_key} had already completed; "
                    "nothing to replay."
                )
            else:
                notice = f"Replay queued from step “{outcome.from_step}”."
                if outcome.discarded:
                    notice += (
                        f" The draft entry {', '.join(outcome.discarded)} was discarded and "
                        "will be built again."
                    )
    if not wants_partial(request):
        (messages.error if error else messages.success)(request, error or notice)
    return notice, error


def required_reason(request: HttpRequest, why: str) -> tuple[str, str]:
    """The POSTed ``reason`` for an action that must say why: ``(reason, error)``."""
    reason = request.POST.get("reason", "").strip()
    if not reason:
        return reason, f"Say why {why}: the reason is required."
    if len(reason) > 500:
        return reason, "The reason is too long (500 characters at most)."
    return reason, ""
