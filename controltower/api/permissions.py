"""API permissions: thin wrappers over ``sync.permissions`` so the API and the screens agree.

An anonymous request gets 401 (DRF answers ``NotAuthenticated`` when a permission fails and no
authenticator succeeded); an authenticated user outside the needed role gets 403.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from sync.permissions import can_edit_mappings, can_replay, can_view


class CanView(BasePermission):
    """Any role (finance ops, integration admin, manager, auditor) may read."""

    message = "Your account has no Control Tower role."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request.user.is_authenticated and can_view(request.user))


class CanEditMappingsOrReadOnly(BasePermission):
    """Every role reads master data and mappings; only integration admins change them."""

    message = "Only integration admins may change mappings."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            if not can_view(user):
                self.message = CanView.message  # type: ignore[misc]
                return False
            return True
        return can_edit_mappings(user)


class CanReplay(BasePermission):
    """Replaying a journey is a finance ops action."""

    message = "Only finance ops may replay journeys."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request.user.is_authenticated and can_replay(request.user))
