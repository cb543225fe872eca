"""The audit log: every human and system action, filterable; auditors export it as CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from controltower.views.base import filter_data, filtered, paginate, render_screen, screen
from sync.filters import AuditFilter
from sync.permissions import AUDITOR, has_role
from sync.selectors import audit_visible_to
from sync.services.audit import audit_export_record

TEMPLATE = "controltower/audit.html"
CSV_COLUMNS = (
    "at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "object",
    "reason",
    "before",
    "after",
    "correlation_id",
    "entity_id",
)


def _audit(request: HttpRequest) -> AuditFilter:
    return AuditFilter(
        filter_data(request.GET),
        queryset=audit_visible_to(request.user).order_by("-at", "-id"),
        request=request,
    )


@screen
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    filterset = _audit(request)
    context = {
        "filterset": filterset,
        "page_obj": paginate(request, filtered(filterset)),
        "can_export": has_role(request.user, AUDITOR),
        "query": request.GET.urlencode(),
    }
    return render_screen(request, TEMPLATE, context, partial="results")


class _Echo:
    def write(self, value: str) -> str:
        return value


def _rows(qs) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for entry in qs.iterator(chunk_size=2000):
        yield writer.writerow(
            [
                entry.at.isoformat(),
                entry.actor_label,
                entry.action,
                entry.object_type,
                entry.object_id,
                entry.object_repr,
                entry.reason,
                json.dumps(entry.before, sort_keys=True) if entry.before is not None else "",
                json.dumps(entry.after, sort_keys=True) if entry.after is not None else "",
                entry.correlation_id,
                entry.entity_id if entry.entity_id is not None else "",
            ]
        )


@screen
@require_GET
def audit_export(request: HttpRequest) -> HttpResponse:
    """The filtered trail as CSV, streamed (any size, constant memory). Auditors only."""
    if not has_role(request.user, AUDITOR):
        raise PermissionDenied("Only auditors export the audit log.")
    filterset = _audit(request)
    if not filterset.is_valid():
        return HttpResponse(
            "Invalid filter: " + json.dumps(filterset.errors), status=400, content_type="text/plain"
        )
    qs = filterset.qs.select_related(None).order_by("at", "id")
    audit_export_record(actor=request.user, query=request.GET.urlencode())
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(_rows(qs), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response
