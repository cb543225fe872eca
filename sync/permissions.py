"""Who may do what. Roles are Django groups; superusers may do everything."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

FINANCE_OPS = "finance_ops"
INTEGRATION_ADMIN = "integration_admin"
MANAGER = "manager"
AUDITOR = "auditor"
ROLES = (FINANCE_OPS, INTEGRATION_ADMIN, MANAGER, AUDITOR)


def _load_access(user: AbstractBaseUser) -> None:
    """Read the user's roles and entity limit in one query, once per user object (a request's
    ``request.user``): ``_rct_roles`` and ``_rct_entities`` (None: every entity)."""
    from django.contrib.auth.models import Group
    from django.db.models import CharField, F, Value
    from django.db.models.functions import Cast, Coalesce

    from sync.models import EntityAccess

    roles = (
        Group.objects.filter(user=user.pk)
        .annotate(kind=Value("role"), value=F("name"))
        .values_list("kind", "value")
    )
    # No row: not limited. A row: limited to its entities (a row without any: to none).
    limit = (
        EntityAccess.objects.filter(user_id=user.pk)
        .annotate(
            kind=Value("entity"),
            value=Coalesce(Cast("entities", output_field=CharField()), Value("")),
        )
        .values_list("kind", "value")
    )
    found_roles: set[str] = set()
    entities: set[int] | None = None
    for kind, value in roles.union(limit, all=True):
        if kind == "role":
            found_roles.add(value)
        else:
            entities = entities if entities is not None else set()
            if value:
                entities.add(int(value))
    user._rct_roles = found_roles
    user._rct_entities = frozenset(entities) if entities is not None else None


def roles_of(user: AbstractBaseUser | None) -> set[str]:
    if user is None or not user.is_authenticated:
        return set()
    if not hasattr(user, "_rct_roles"):
        _load_access(user)
    return user._rct_roles


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


def entity_scope(user: AbstractBaseUser | None) -> frozenset[int] | None:
    """The ids of the legal entities ``user`` may see, or None for every entity.

    Superusers and users without an ``EntityAccess`` row see every entity; a row limits the
    user to the entities it lists (none listed: none). Read once per request object.
    """
    if user is None or not user.is_authenticated:
        return frozenset()
    if user.is_superuser:
        return None
    if not hasattr(user, "_rct_entities"):
        _load_access(user)
    return user._rct_entities


def is_entity_limited(user: AbstractBaseUser | None) -> bool:
    return entity_scope(user) is not None


def can_edit_global_mappings(user: AbstractBaseUser | None) -> bool:
    """Mappings that apply to every entity (products, FX rates, SLA policies, entities
    themselves) are changed only by integration admins who are not limited to some entities."""
    return can_edit_mappings(user) and not is_entity_limited(user)


def may_see_entity(user: AbstractBaseUser | None, entity_id: int | None) -> bool:
    """True when ``user`` may see (and so act on) records of the entity ``entity_id``. A record
    with no entity yet is visible only to users who see every entity."""
    ids = entity_scope(user)
    return ids is None or (entity_id is not None and entity_id in ids)
