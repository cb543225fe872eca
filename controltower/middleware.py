"""Request middleware of our own."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from sync.services.audit import access_denied_record

log = logging.getLogger("controltower.access")


class DeniedAccessLog:
    """Every 403 — a screen's ``PermissionDenied``, the API's refusal, a CSRF failure — is
    logged and written to the audit trail (``access.denied``) with the user, the request and
    the reason, so an auditor sees who tried what."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code == 403:
            self._record(request, response)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        if isinstance(exception, PermissionDenied):
            request._rct_denied_reason = str(exception)  # type: ignore[attr-defined]

    def _record(self, request: HttpRequest, response: HttpResponse) -> None:
        reason = getattr(request, "_rct_denied_reason", "")
        data = getattr(response, "data", None)
        if not reason and isinstance(data, dict):
            reason = str(data.get("detail", ""))
        user = getattr(request, "user", None)
        log.warning(
            "access denied: %s %s for %s: %s",
            request.method,
            request.path,
            user.get_username() if user is not None and user.is_authenticated else "anonymous",
            reason or "forbidden",
            extra={"status": 403, "path": request.path, "method": request.method},
        )
        try:
            access_denied_record(
                actor=user, method=request.method or "", path=request.path, reason=reason
            )
        except Exception:  # the refusal stands even if the trail cannot be written
            log.exception("could not record the refused request in the audit trail")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Django's CSRF refusal, with the reason kept for the audit entry of the 403."""
    from django.views.csrf import csrf_failure as django_csrf_failure

    request._rct_denied_reason = f"CSRF check failed: {reason}"  # type: ignore[attr-defined]
    return django_csrf_failure(request, reason=reason)
