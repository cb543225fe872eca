"""Maker-checker for mappings that decide how entries post (``sync.mapping_kinds.NEEDS_APPROVAL``).

An integration admin *proposes* a create, update or delete; it is validated then (a change that
could never apply is refused at once) and waits. Another integration admin *approves* it —
never the proposer — and it applies through ``mapping_save`` / ``mapping_delete`` in the same
transaction, audited with both names; or *rejects* it with a reason; the proposer may
*withdraw* it. An approval is refused if the row changed since the proposal. One pending change
per row at a time.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from sync.errors import DomainError, PermissionDenied
from sync.mapping_kinds import KINDS, NEEDS_APPROVAL, apply_values, values_of
from sync.models import MappingChange
from sync.permissions import can_edit_mappings, may_see_entity
from sync.services.audit import audit_record
from sync.services.mappings import (
    check_entity_access,
    mapping_delete,
    mapping_save,
    validate_mapping,
)


def _reason(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(f"Say why {what}: the reason is required.")
    if len(reason) > 500:
        raise DomainError("The reason is too long (500 characters at most).")
    return reason


def mapping_change_propose(
    *,
    actor: AbstractBaseUser,
    kind: str,
    reason: str,
    values: dict[str, Any] | None = None,
    target_id: int | None = None,
    delete: bool = False,
) -> MappingChange:
    """Propose a change; returns it pending. ``values`` are field values by attribute name
    (``legal_entity_id``, ...): all of them for a create, the changed ones for an update."""
    if kind not in NEEDS_APPROVAL:
        raise DomainError(f"{kind} changes apply at once; they need no approval.")
    if not can_edit_mappings(actor):
        raise PermissionDenied("Only integration admins may change mappings.")
    reason = _reason(reason, "the mapping changes")
    model = KINDS[kind]
    current = None
    if target_id is not None:
        current = model.objects.filter(pk=target_id).first()
        if current is None:
            raise DomainError(f"There is no {kind.replace('_', ' ')} #{target_id}.")
        check_entity_access(actor, current)
    if delete:
        if current is None:
            raise DomainError("Name the mapping to delete.")
        proposed = current
        operation = MappingChange.Operation.DELETE
    else:
        proposed = apply_values(
            model.objects.get(pk=current.pk) if current else model(), values or {}
        )
        check_entity_access(actor, proposed)
        validate_mapping(proposed)  # a change that could never apply is refused now
        operation = MappingChange.Operation.UPDATE if current else MappingChange.Operation.CREATE
    with transaction.atomic():
        if current is not None:
            waiting = MappingChange.objects.filter(
                kind=kind, target_id=current.pk, state=MappingChange.State.PENDING
            ).first()
            if waiting is not None:
                raise DomainError(
                    f"Change #{waiting.pk} to this {kind.replace('_', ' ')} already awaits "
                    "approval: approve, reject or withdraw it first."
                )
        change = MappingChange.objects.create(
            kind=kind,
            operation=operation,
            target_id=current.pk if current else None,
            legal_entity_id=getattr(proposed, "legal_entity_id", None),
            values=values_of(proposed),
            before=values_of(current) if current else None,
            reason=reason,
            proposed_by=actor,
        )
        audit_record(
            actor=actor,
            action="mapping_change.propose",
            obj=change,
            before=change.before,
            after=change.values,
            reason=reason,
        )
    return change


def _pending(change_id: int, actor: AbstractBaseUser) -> MappingChange:
    change = MappingChange.objects.select_for_update().get(pk=change_id)
    if not may_see_entity(actor, change.legal_entity_id) and change.legal_entity_id is not None:
        raise PermissionDenied("You may not decide changes of that legal entity.")
    if change.state != MappingChange.State.PENDING:
        raise DomainError(f"Change #{change.pk} is already {change.get_state_display().lower()}.")
    return change


def mapping_change_approve(
    *, change_id: int, actor: AbstractBaseUser, note: str = ""
) -> MappingChange:
    """Approve and apply a pending change (another integration admin than the proposer)."""
    if not can_edit_mappings(actor):
        raise PermissionDenied("Only integration admins approve mapping changes.")
    with transaction.atomic():
        change = _pending(change_id, actor)
        if change.proposed_by_id == actor.pk:
            raise PermissionDenied(
                "You proposed this change: another integration admin must approve it."
            )
        model = KINDS[change.kind]
        current = None
        if change.target_id is not None:
            current = model.objects.select_for_update().filter(pk=change.target_id).first()
            if current is None:
                raise DomainError("The mapping was deleted since the change was proposed.")
            if values_of(current) != change.before:
                raise DomainError(
                    "The mapping has changed since this change was proposed; reject it and "
                    "propose again against what is there now."
                )
        why = (
            f"Change #{change.pk} proposed by {change.proposed_by.get_username()} "
            f"({change.reason}), approved by {actor.get_username()}"
            + (f": {note.strip()}" if note.strip() else "")
        )
        if change.operation == MappingChange.Operation.DELETE:
            mapping_delete(actor=actor, instance=current, reason=why, approved=True)
            applied_id = change.target_id
        else:
            instance = apply_values(current if current is not None else model(), change.values)
            mapping_save(actor=actor, instance=instance, reason=why, approved=True)
            applied_id = instance.pk
        change.state = MappingChange.State.APPLIED
        change.decided_by = actor
        change.decided_at = timezone.now()
        change.decision_note = note.strip()
        change.applied_id = applied_id
        change.save()
        audit_record(
            actor=actor,
            action="mapping_change.approve",
            obj=change,
            after={"applied_id": applied_id},
            reason=note.strip(),
        )
    return change


def mapping_change_reject(*, change_id: int, actor: AbstractBaseUser, note: str) -> MappingChange:
    """Refuse a pending change, with the reason (the proposer withdraws instead)."""
    if not can_edit_mappings(actor):
        raise PermissionDenied("Only integration admins reject mapping changes.")
    note = _reason(note, "the change is rejected")
    return _close(change_id, actor, note, MappingChange.State.REJECTED, "mapping_change.reject")


def mapping_change_withdraw(
    *, change_id: int, actor: AbstractBaseUser, note: str = ""
) -> MappingChange:
    """The proposer takes a pending change back."""
    return _close(
        change_id,
        actor,
        note,
        MappingChange.State.WITHDRAWN,
        "mapping_change.withdraw",
        proposer_only=True,
    )


def _close(
    change_id: int,
    actor: AbstractBaseUser,
    note: str,
    state: str,
    action: str,
    *,
    proposer_only: bool = False,
) -> MappingChange:
    with transaction.atomic():
        change = _pending(change_id, actor)
        if proposer_only and change.proposed_by_id != actor.pk:
            raise PermissionDenied("Only the person who proposed a change may withdraw it.")
        change.state = state
        change.decided_by = actor
        change.decided_at = timezone.now()
        change.decision_note = (note or "").strip()
        change.save()
        audit_record(actor=actor, action=action, obj=change, reason=change.decision_note)
    return change
