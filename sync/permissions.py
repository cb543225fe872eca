"""Who may do what. Roles are Django groups; superusers may do everything."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

FINANCE_OPS = "finance_ops"
INTEGRATION_ADMIN = "integration_admin"
MANAGER = "manager"
AUDITOR = "auditor"
ROLES = (FINANCE_OPS, INTEGRATION_ADMIN, MANAGER, AUDITOR)


def roles_of(user: AbstractBaseUser | None) -> set[str]:
    if user is None or not user.is_authenticated:
        return set()
    cached = getattr(user, "_rct_roles", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._rct_roles = cached
    return cached


def has_role(user: AbstractBaseUser | None, *roles: str) -> bool:
    if user is not None and user.is_authenticated and user.is_superuser:
        return True
    return bool(roles_of(user) & set(roles))


def can_view(user: AbstractBaseUser | None) -> bool:
    return has_role(user, *ROLES)


def can_replay(user: AbstractBaseUser | None) -> bool:
    return has_role(user, FINANCE_OPS)


def can_edit_mappings(user: AbstractBaseUser | None) -> bool:
    return has_role(user, INTEGRATION_ADMIN)
