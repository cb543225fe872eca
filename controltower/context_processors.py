"""Template context: what the signed-in user may do, so templates hide what would 403."""

from __future__ import annotations

from django.http import HttpRequest

from sync.permissions import can_edit_mappings, can_replay, roles_of


def _open_alerts(user) -> int:
    from sync.selectors import alerts_visible_to

    return alerts_visible_to(user).filter(acknowledged_at__isnull=True).count()


def roles(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    return {
        "open_alerts": _open_alerts(user),
        "user_roles": sorted(roles_of(user)),
        "can_replay": can_replay(user),
        "can_edit_mappings": can_edit_mappings(user),
    }
