"""Create, change and delete master data and mappings: validated, audited, one transaction.

The Django admin and the API both come through here, so a rule holds whichever door is used.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.forms.models import model_to_dict

from sync.errors import DomainError, PermissionDenied
from sync.models import (
    AccountingPeriod,
    CustomerLink,
    EntityAccounts,
    FxRate,
    GLAccount,
    LegalEntity,
    PostingRule,
    ProductMapping,
    SlaPolicy,
    TaxMapping,
)
from sync.permissions import can_edit_global_mappings, can_edit_mappings, may_see_entity
from sync.services.audit import audit_record

MAPPING_MODELS: tuple[type[models.Model], ...] = (
    LegalEntity,
    GLAccount,
    PostingRule,
    ProductMapping,
    TaxMapping,
    CustomerLink,
    FxRate,
    SlaPolicy,
    EntityAccounts,
    AccountingPeriod,
)


def _snapshot(obj: models.Model) -> dict[str, Any]:
    data = model_to_dict(obj)
    return {
        k: (str(v) if not isinstance(v, (int, bool, str, type(None))) else v)
        for k, v in data.items()
    }


def _check_same_entity(obj: models.Model) -> None:
    """Accounts named by a rule or tax mapping must belong to the rule's own entity: an entry
    never mixes entities."""
    entity_id = getattr(obj, "legal_entity_id", None)
    errors: dict[str, str] = {}
    for field in obj._meta.fields:
        if isinstance(field, models.ForeignKey) and field.related_model is GLAccount:
            account = getattr(obj, field.name)
            if account is not None and account.legal_entity_id != entity_id:
                errors[field.name] = f"Account {account.number} belongs to another legal entity."
    if errors:
        raise ValidationError(errors)


def check_entity_access(actor: AbstractBaseUser | None, obj: models.Model) -> None:
    """An entity-limited admin changes only mappings of their own entities (before and after
    the change); mappings every entity shares are changed by admins who see every entity."""
    if not hasattr(obj, "legal_entity_id"):
        if not can_edit_global_mappings(actor):
            raise PermissionDenied(
                "Only integration admins who see every legal entity may change mappings that "
                "apply to all entities."
            )
        return
    entities = {obj.legal_entity_id}
    if obj.pk:
        entities |= set(
            type(obj).objects.filter(pk=obj.pk).values_list("legal_entity_id", flat=True)
        )
    if not all(may_see_entity(actor, e) for e in entities):
        raise PermissionDenied("You may not change mappings of that legal entity.")


def validate_mapping(instance: models.Model) -> None:
    """Every field and constraint, and the same-entity rule; ``ValidationError`` per field."""
    instance.full_clean()
    _check_same_entity(instance)


def _needs_approval(instance: models.Model, approved: bool) -> None:
    from sync.mapping_kinds import needs_approval

    if needs_approval(instance) and not approved:
        raise DomainError(
            "Changes to posting rules and product mappings need a second integration admin's "
            "approval: propose the change (POST /api/v1/mapping-changes/ or the Mappings "
            "screen) instead."
        )


def mapping_save(
    *,
    actor: AbstractBaseUser | None,
    instance: models.Model,
    reason: str = "",
    check_permission: bool = True,
    approved: bool = False,
) -> models.Model:
    """Validate (every field and constraint) and save a mapping, auditing before/after.

    Raises ``ValidationError`` with a message per field; nothing is written then. A person's
    change to a posting rule or product mapping applies only as an approved ``MappingChange``
    (``approved=True`` comes from ``mapping_change_approve``); system set-up
    (``check_permission=False``) is not a person's change.
    """
    if type(instance) not in MAPPING_MODELS:
        raise TypeError(f"{type(instance).__name__} is not a mapping")
    if check_permission:
        if not can_edit_mappings(actor):
            raise PermissionDenied("Only integration admins may change mappings.")
        check_entity_access(actor, instance)
        _needs_approval(instance, approved)
    validate_mapping(instance)
    with transaction.atomic():
        before = None
        if instance.pk:
            old = type(instance).objects.select_for_update().filter(pk=instance.pk).first()
            before = _snapshot(old) if old else None
        instance.save()
        audit_record(
            actor=actor,
            action=f"{instance._meta.model_name}.{'update' if before else 'create'}",
            obj=instance,
            before=before,
            after=_snapshot(instance),
            reason=reason,
        )
    return instance


def mapping_delete(
    *,
    actor: AbstractBaseUser | None,
    instance: models.Model,
    reason: str = "",
    approved: bool = False,
) -> None:
    """Delete a mapping that nothing posted depends on (PROTECT foreign keys refuse otherwise)."""
    if not can_edit_mappings(actor):
        raise PermissionDenied("Only integration admins may change mappings.")
    check_entity_access(actor, instance)
    _needs_approval(instance, approved)
    with transaction.atomic():
        before = _snapshot(instance)
        audit_record(
            actor=actor,
            action=f"{instance._meta.model_name}.delete",
            obj=instance,
            before=before,
            reason=reason,
        )
        instance.delete()
