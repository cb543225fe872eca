"""API errors as JSON: domain refusals become 403/409 with a message, a model validation error
a 400 naming each field, and a delete that other rows depend on a 409."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from sync.errors import DomainError, PermissionDenied


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, PermissionDenied):
        return _answer({"detail": str(exc)}, status.HTTP_403_FORBIDDEN)
    if isinstance(exc, DomainError):
        return _answer({"detail": str(exc)}, status.HTTP_409_CONFLICT)
    if isinstance(exc, DjangoValidationError):
        return _answer(_validation_body(exc), status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, (ProtectedError, RestrictedError)):
        return _answer({"detail": _still_used(exc)}, status.HTTP_409_CONFLICT)
    if isinstance(exc, IntegrityError):
        # A race the validation could not see (e.g. two creates of the same key at once).
        return _answer(
            {"detail": "The change conflicts with existing data; reload and try again."},
            status.HTTP_409_CONFLICT,
        )
    return drf_exception_handler(exc, context)


def _answer(body: dict[str, Any], code: int) -> Response:
    set_rollback()
    return Response(body, status=code)


def _validation_body(exc: DjangoValidationError) -> dict[str, list[str]]:
    """Messages per field, the shape DRF uses: model-wide errors under ``non_field_errors``."""
    if not hasattr(exc, "error_dict"):
        return {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
    return {
        (api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field): messages
        for field, messages in exc.message_dict.items()
    }


def _still_used(exc: ProtectedError | RestrictedError) -> str:
    objects = exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
    counts = Counter(obj._meta for obj in objects)
    users = ", ".join(
        f"{n} {meta.verbose_name if n == 1 else meta.verbose_name_plural}"
        for meta, n in sorted(counts.items(), key=lambda item: str(item[0].verbose_name))
    )
    return (
        f"This row cannot be deleted: it is still used by {users}. "
        "Deactivate it or change those rows first."
    )
