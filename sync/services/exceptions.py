"""What finance ops do to exceptions besides replaying them: assign, resolve, ignore, tag.

Every action takes a selection (ids; only those the actor may see are touched, others are
reported as not found), is for finance ops, and is audited per case. Resolving or ignoring
needs a reason. A case whose journey still stands in exception cannot just be closed — the
journey would sit stopped with nothing pointing at it — so resolving ("handled outside the
Control Tower") or ignoring ("not a real problem") cancels the journey with the reason through
``journey_cancel``, which refuses when an entry of it is posted or may be in the ERP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from sync.errors import DomainError, PermissionDenied
from sync.models import ExceptionCase, Journey, Tag
from sync.permissions import FINANCE_OPS, can_replay, has_role, may_see_entity
from sync.selectors import scoped
from sync.services.audit import audit_record
from sync.services.journeys import BULK_LIMIT, journey_cancel

TAG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclass
class CaseOutcome:
    """What happened to one case of a selection."""

    case_id: int
    notice: str = ""
    error: str = ""


def _ids(case_ids: Iterable[int]) -> list[int]:
    ids = list(dict.fromkeys(int(i) for i in case_ids))
    if not ids:
        raise DomainError("Tick the exceptions first.")
    if len(ids) > BULK_LIMIT:
        raise DomainError(f"{len(ids)} exceptions selected; act on at most {BULK_LIMIT} at once.")
    return ids


def _check(actor: AbstractBaseUser) -> None:
    if not can_replay(actor):
        raise PermissionDenied("Only finance ops work exceptions.")


def _missing(ids: list[int], found: Iterable[int]) -> list[CaseOutcome]:
    seen = set(found)
    return [CaseOutcome(i, error="No such exception.") for i in ids if i not in seen]


def exceptions_assign(
    *, case_ids: Iterable[int], assignee: AbstractBaseUser | None, actor: AbstractBaseUser
) -> list[CaseOutcome]:
    """Give open cases to a finance ops person (they become "in progress"), or take them back
    (``assignee`` None: open again). Closed cases are left alone."""
    _check(actor)
    ids = _ids(case_ids)
    if assignee is not None and not has_role(assignee, FINANCE_OPS):
        raise DomainError(f"{assignee.get_username()} is not in finance ops.")
    now = timezone.now()
    outcomes: list[CaseOutcome] = []
    with transaction.atomic():
        cases = list(
            scoped(ExceptionCase.objects.filter(pk__in=ids), actor)
            .select_related("assignee")
            .select_for_update(of=("self",))
            .order_by("pk")
        )
        for case in cases:
            if case.state not in ExceptionCase.ACTIVE:
                outcomes.append(CaseOutcome(case.pk, error="Already closed."))
                continue
            if assignee is not None and not may_see_entity(assignee, case.legal_entity_id):
                outcomes.append(
                    CaseOutcome(case.pk, error=f"{assignee.get_username()} cannot see its entity.")
                )
                continue
            before = {
                "assignee": case.assignee.get_username() if case.assignee else None,
                "state": case.state,
            }
            case.assignee = assignee
            case.assigned_at = now if assignee is not None else None
            case.state = (
                ExceptionCase.State.IN_PROGRESS
                if assignee is not None
                else ExceptionCase.State.OPEN
            )
            case.save(update_fields=["assignee", "assigned_at", "state"])
            audit_record(
                actor=actor,
                action="exception.assign",
                obj=case,
                before=before,
                after={
                    "assignee": assignee.get_username() if assignee else None,
                    "state": case.state,
                },
            )
            who = assignee.get_username() if assignee else "nobody"
            outcomes.append(CaseOutcome(case.pk, notice=f"Assigned to {who}."))
    return outcomes + _missing(ids, (c.pk for c in cases))


def exceptions_close(
    *, case_ids: Iterable[int], actor: AbstractBaseUser, reason: str, ignore: bool = False
) -> list[CaseOutcome]:
    """Resolve (or, with ``ignore``, ignore) cases by hand with a reason. A case whose journey
    is in exception cancels that journey first (refused per case when something is posted);
    each case is its own transaction, so one refusal does not undo the others."""
    _check(actor)
    reason = (reason or "").strip()
    verb = "ignored" if ignore else "resolved"
    if not reason:
        raise DomainError(f"Say why the exceptions are {verb}: the reason is required.")
    if len(reason) > 500:
        raise DomainError("The reason is too long (500 characters at most).")
    ids = _ids(case_ids)
    visible = dict(
        scoped(ExceptionCase.objects.filter(pk__in=ids), actor).values_list("pk", "journey_id")
    )
    outcomes: list[CaseOutcome] = []
    for pk in ids:
        if pk not in visible:
            continue
        try:
            outcomes.append(_close_one(pk, actor, reason, ignore))
        except DomainError as exc:
            outcomes.append(CaseOutcome(pk, error=str(exc)))
    return outcomes + _missing(ids, visible)


def _close_one(pk: int, actor: AbstractBaseUser, reason: str, ignore: bool) -> CaseOutcome:
    now = timezone.now()
    new_state = ExceptionCase.State.IGNORED if ignore else ExceptionCase.State.RESOLVED
    with transaction.atomic():
        case = ExceptionCase.objects.select_for_update().select_related("journey").get(pk=pk)
        if case.state not in ExceptionCase.ACTIVE:
            return CaseOutcome(pk, error=f"Already {case.get_state_display().lower()}.")
        before = {"state": case.state}
        cancelled = False
        if case.journey.state == Journey.State.EXCEPTION:
            label = "Ignored" if ignore else "Resolved outside the Control Tower"
            journey_cancel(journey_id=case.journey_id, actor=actor, reason=f"{label}: {reason}")
            cancelled = True
            case.refresh_from_db()
        case.state = new_state
        case.closed_by = actor
        case.resolved_at = case.resolved_at or now
        note = f"{new_state.label} by {actor.get_username()}: {reason}"
        if note not in case.resolution_note:
            case.resolution_note = (case.resolution_note + "\n" if case.resolution_note else "") + (
                note
            )
        case.save(update_fields=["state", "closed_by", "resolved_at", "resolution_note"])
        audit_record(
            actor=actor,
            action=f"exception.{'ignore' if ignore else 'resolve'}",
            obj=case,
            reason=reason,
            before=before,
            after={"state": case.state, "journey_cancelled": cancelled},
        )
    notice = new_state.label + (" (its journey was cancelled)." if cancelled else ".")
    return CaseOutcome(pk, notice=notice)


def exceptions_tag(
    *,
    case_ids: Iterable[int],
    actor: AbstractBaseUser,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
) -> list[CaseOutcome]:
    """Add and remove tags (lower-case words with hyphens, up to 40 characters)."""
    _check(actor)
    ids = _ids(case_ids)
    add = sorted({t.strip().lower() for t in add if t.strip()})
    remove = sorted({t.strip().lower() for t in remove if t.strip()})
    bad = [t for t in add + remove if not TAG_RE.match(t)]
    if bad:
        raise DomainError(
            f"“{bad[0]}” is not a tag: use lower-case letters, digits and hyphens (up to 40)."
        )
    if not add and not remove:
        raise DomainError("Name a tag to add or remove.")
    with transaction.atomic():
        cases = list(scoped(ExceptionCase.objects.filter(pk__in=ids), actor).order_by("pk"))
        tags_add = [Tag.objects.get_or_create(name=t)[0] for t in add]
        tags_remove = list(Tag.objects.filter(name__in=remove))
        through = ExceptionCase.tags.through
        through.objects.bulk_create(
            [through(exceptioncase_id=c.pk, tag_id=t.pk) for c in cases for t in tags_add],
            ignore_conflicts=True,
        )
        through.objects.filter(
            exceptioncase_id__in=[c.pk for c in cases], tag_id__in=[t.pk for t in tags_remove]
        ).delete()
        for case in cases:
            audit_record(
                actor=actor,
                action="exception.tag",
                obj=case,
                after={"added": add, "removed": remove},
            )
    what = ", ".join([f"+{t}" for t in add] + [f"-{t}" for t in remove])
    return [CaseOutcome(c.pk, notice=f"Tags {what}.") for c in cases] + _missing(
        ids, (c.pk for c in cases)
    )


def finance_ops_people() -> list[AbstractBaseUser]:
    """Who can be given exceptions: active users in finance ops."""
    return list(
        get_user_model()
        .objects.filter(is_active=True, groups__name=FINANCE_OPS)
        .order_by("username")
        .distinct()
    )
