"""Alerts: SLA breaches (one per breach) until someone acknowledges them."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied as Forbidden
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from controltower.views.base import paginate, render_screen, screen
from sync.errors import DomainError
from sync.errors import PermissionDenied as Refused
from sync.models import Notification
from sync.permissions import FINANCE_OPS, INTEGRATION_ADMIN, has_role
from sync.selectors import alerts_visible_to
from sync.services.notifications import notification_acknowledge

TEMPLATE = "controltower/alerts.html"


@screen
@require_GET
def alert_list(request: HttpRequest) -> HttpResponse:
    show_all = request.GET.get("all") == "1"
    qs = alerts_visible_to(request.user)
    if not show_all:
        qs = qs.filter(acknowledged_at__isnull=True)
    context = {
        "page_obj": paginate(request, qs.order_by("-created_at", "-id")),
        "show_all": show_all,
        "can_acknowledge": has_role(request.user, FINANCE_OPS, INTEGRATION_ADMIN),
    }
    return render_screen(request, TEMPLATE, context)


@screen
@require_POST
def alert_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    if not alerts_visible_to(request.user).filter(pk=pk).exists():
        raise Http404("No such alert.")
    try:
        notification_acknowledge(notification_id=pk, actor=request.user)
    except Refused as exc:
        raise Forbidden(str(exc)) from exc
    except (DomainError, Notification.DoesNotExist) as exc:
        messages.error(request, str(exc) or "No such alert.")
    return redirect("alert-list")
