"""GET /metrics/: the operational metrics in the Prometheus text format.

A scraper sends ``Authorization: Bearer <METRICS_TOKEN>``. A signed-in user with a role may
read it too (handy from a browser); everyone else gets 401 (not identified) or 403 (no role).
With ``METRICS_TOKEN`` unset, no token is accepted.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from sync import metrics
from sync.permissions import can_view, is_entity_limited


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _refuse(status: int, message: str) -> HttpResponse:
    response = HttpResponse(message + "\n", status=status, content_type="text/plain")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    expected = settings.METRICS_TOKEN
    presented = _bearer(request)
    if presented is not None:
        if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
            return _refuse(401, "Invalid metrics token.")
    elif not request.user.is_authenticated:
        return _refuse(401, "Authentication required: send the metrics bearer token.")
    elif not can_view(request.user):
        return _refuse(403, "Your account has no role that may read the metrics.")
    elif is_entity_limited(request.user):
        return _refuse(403, "The metrics cover every legal entity; your account sees only some.")
    return HttpResponse(metrics.metrics_text(), content_type=metrics.CONTENT_TYPE)
