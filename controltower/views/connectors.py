"""Connectors: each external system's health (circuit state, failures, next probe) and the
pause/resume switch for integration admins."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied as Forbidden
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from controltower.views.base import render_screen, screen
from sync.errors import DomainError
from sync.errors import PermissionDenied as Refused
from sync.models import ConnectorHealth, Journey, Step
from sync.permissions import can_edit_global_mappings
from sync.selectors import scoped
from sync.services.connector_health import (
    WAITING_ERROR_CLASS,
    connector_pause,
    connector_resume,
    connectors_list,
    label,
)

TEMPLATE = "controltower/connectors.html"
PAUSED = ConnectorHealth.State.PAUSED


@screen
@require_GET
def connector_list(request: HttpRequest) -> HttpResponse:
    waiting = scoped(
        Step.objects.filter(
            state=Step.State.PENDING,
            error_class=WAITING_ERROR_CLASS,
            journey__state=Journey.State.WAITING,
        ),
        request.user,
        "journey__legal_entity",
    ).count()
    rows = [
        {"row": row, "label": label(row.system), "paused": row.state == PAUSED}
        for row in connectors_list()
    ]
    context = {
        "connectors": rows,
        "waiting_steps": waiting,
        "can_pause": can_edit_global_mappings(request.user),
    }
    return render_screen(request, TEMPLATE, context)


@screen
@require_POST
def connector_action(request: HttpRequest, system: str, action: str) -> HttpResponse:
    if not can_edit_global_mappings(request.user):
        raise Forbidden("Only integration admins pause and resume connectors.")
    change = {"pause": connector_pause, "resume": connector_resume}.get(action)
    if change is None:
        raise Forbidden("Unknown connector action.")
    try:
        change(system=system, actor=request.user, reason=request.POST.get("reason", ""))
    except Refused as exc:
        raise Forbidden(str(exc)) from exc
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        done = "paused" if action == "pause" else "resumed"
        messages.success(request, f"{label(system)} {done}.")
    return redirect("connector-list")
