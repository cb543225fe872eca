"""What people do to journeys: replay (one, from a chosen step, or a selection) and cancel.

Every write here is finance ops only and audited with the user and the reason. Nothing here
posts twice: a posted entry is immutable (replaying from a step that would rebuild or re-post
it is refused; post a correction instead), a draft entry that never reached the ERP is
discarded with its revenue schedules before its build step runs again, and an entry whose
last posting attempt has an unknown outcome is first read back from the ERP by external id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from connectors.base import ConnectorError
from sync.errors import DomainError, PermissionDenied
from sync.models import (
    AuditEntry,
    ExceptionCase,
    JournalEntry,
    JournalLine,
    Journey,
    RevenueSchedule,
    RevenueScheduleLine,
    Step,
)
from sync.permissions import can_replay, may_see_entity
from sync.services.audit import audit_record

# The step that sends an entry to the ERP (sync.journeys.common.POSTING_STEPS).
POSTING_STEP = "post_entry"
BULK_LIMIT = 500


@dataclass(frozen=True)
class ReplayOutcome:
    journey: Journey
    outcome: str  # "requeued" | "already_completed"
    from_step: str = ""
    discarded: tuple[str, ...] = ()  # external ids of draft entries discarded for the rebuild


@dataclass
class BulkReplaySummary:
    """What a bulk replay did to each journey of the selection."""

    requeued: list[int] = field(default_factory=list)
    already_completed: list[int] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)  # {"journey", "reason"}

    @property
    def total(self) -> int:
        return len(self.requeued) + len(self.already_completed) + len(self.refused)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requeued": self.requeued,
            "already_completed": self.already_completed,
            "refused": self.refused,
        }


# --- the rules shared by replay, cancel and the dry run ----------------------------------------


def start_step_for(journey: Journey, steps: list[Step], from_step: str | None) -> Step:
    """The step a replay starts from: the first not-done step, or ``from_step`` when it is at
    or before that one (a later step cannot run while an earlier one has not succeeded)."""
    first_open = next((s for s in steps if s.state not in Step.DONE), None)
    if not from_step:
        if first_open is None:
            raise DomainError(f"Journey {journey.business_key} has no step left to run.")
        return first_open
    chosen = next((s for s in steps if s.name == from_step), None)
    if chosen is None:
        names = ", ".join(s.name for s in steps)
        raise DomainError(
            f"Journey {journey.business_key} has no step “{from_step}” (its steps: {names})."
        )
    if first_open is not None and chosen.position > first_open.position:
        raise DomainError(
            f"Journey {journey.business_key} cannot be replayed from “{from_step}”: the "
            f"earlier step “{first_open.name}” has not succeeded. Replay from it, or from an "
            "earlier step."
        )
    return chosen


def _posted_refusal(journey: Journey, entry: JournalEntry, what: str) -> DomainError:
    return DomainError(
        f"Journey {journey.business_key} cannot be {what}: its entry is already posted as "
        f"{entry.external_id} (ERP document {entry.erp_document_id or 'unknown'}); posted "
        "entries are immutable, post a correction instead."
    )


def _in_erp(journey: Journey, entry: JournalEntry, what: str) -> None:
    """An entry whose last posting attempt has an unknown outcome: read it back by external id
    and refuse if the ERP holds it (or cannot be asked)."""
    from sync.services.connectors import erp_connector

    try:
        found = erp_connector(entry.erp_system).find_journal_entry(entry.external_id)
    except ConnectorError as exc:
        raise DomainError(
            f"Journey {journey.business_key} cannot be {what} now: the ERP could not be asked "
            f"whether it holds {entry.external_id} ({exc.message}). Try again later."
        ) from exc
    if found is not None:
        raise DomainError(
            f"Journey {journey.business_key} cannot be {what}: an earlier attempt reached the "
            f"ERP, which holds {entry.external_id} as document {found.document_id}; replay from "
            f"“{POSTING_STEP}” to record it, or post a correction instead."
        )


def entries_to_discard(
    journey: Journey,
    steps: list[Step],
    start: Step,
    *,
    what: str = "replayed from that step",
    read_erp: bool = True,
) -> list[JournalEntry]:
    """The journey's unposted entries that replaying from ``start`` would rebuild, checked
    discardable; refuses when the replay would rebuild or re-post a posted entry."""
    entries = list(JournalEntry.objects.select_for_update().filter(journey=journey).order_by("pk"))
    if not entries:
        return []
    posting_pos = next(
        (s.position for s in steps if s.name == POSTING_STEP), max(s.position for s in steps)
    )
    if start.position > posting_pos:
        return []  # only steps after the posting (the read-back) run again
    posted = [e for e in entries if e.state == JournalEntry.State.POSTED]
    if posted:
        raise _posted_refusal(journey, posted[0], what)
    if start.position == posting_pos:
        return []  # the draft is posted as it is
    for entry in entries:
        _check_discardable(journey, entry, what, read_erp=read_erp)
    return entries


def _check_discardable(journey: Journey, entry: JournalEntry, what: str, *, read_erp: bool):
    if entry.kind != JournalEntry.Kind.INVOICE:
        raise DomainError(
            f"Journey {journey.business_key} cannot be {what}: its draft "
            f"{entry.get_kind_display().lower()} entry {entry.external_id} already changed "
            f"revenue schedules when it was built, so it is not rebuilt. Replay from "
            f"“{POSTING_STEP}” instead."
        )
    recognized_elsewhere = (
        RevenueScheduleLine.objects.filter(schedule__in=_schedules_of(entry))
        .exclude(recognition_entry__isnull=True)
        .exclude(recognition_entry=entry)
        .exists()
    )
    if recognized_elsewhere:
        raise DomainError(
            f"Journey {journey.business_key} cannot be {what}: revenue of its draft entry "
            f"{entry.external_id} has already been recognized by another entry."
        )
    if entry.state != JournalEntry.State.DRAFT and read_erp:
        _in_erp(journey, entry, what)


def _schedules_of(entry: JournalEntry) -> QuerySet[RevenueSchedule]:
    return RevenueSchedule.objects.filter(
        journey_id=entry.journey_id, source_kind=RevenueSchedule.Source.INVOICE_LINE
    )


def entry_discard(entry: JournalEntry) -> dict[str, Any]:
    """Delete a never-posted invoice entry, its lines and the revenue schedules built with it
    (call inside the caller's transaction, after ``entries_to_discard`` checked it)."""
    schedules = _schedules_of(entry)
    summary = {
        "id": entry.pk,
        "external_id": entry.external_id,
        "state": entry.state,
        "lines": entry.lines.count(),
        "schedules": schedules.count(),
        "rule_versions": entry.rule_versions,
    }
    RevenueScheduleLine.objects.filter(schedule__in=schedules).delete()
    schedules.delete()
    JournalLine.objects.filter(entry=entry).delete()
    entry.delete()
    return summary


def steps_reset(journey: Journey, steps: list[Step], start: Step) -> list[dict[str, Any]]:
    """Put ``start`` and every later step back to pending; returns their previous snapshots.
    Keys the reset steps had put in the journey context are removed (the rerun writes them)."""
    reset = [s for s in steps if s.position >= start.position]
    kept_keys = {
        key
        for s in steps
        if s.position < start.position and isinstance(s.response_snapshot, dict)
        for key in s.response_snapshot
    }
    before = []
    drop: set[str] = set()
    for s in reset:
        before.append(
            {
                "name": s.name,
                "state": s.state,
                "attempts": s.attempts,
                "response_snapshot": s.response_snapshot,
                "error_class": s.error_class,
                "error_message": s.error_message,
            }
        )
        if s.state in Step.DONE and isinstance(s.response_snapshot, dict):
            drop |= set(s.response_snapshot) - kept_keys
        if s.state == Step.State.PENDING and s.pk != start.pk:
            continue
        s.state = Step.State.PENDING
        s.next_attempt_at = None
        s.claim_token = None
        # attempts are kept: a rerun of the posting step (attempts > 1) reads the ERP back first
        if s.pk != start.pk or s.response_snapshot:
            s.response_snapshot = None
            s.finished_at = None
        s.save(
            update_fields=[
                "state",
                "next_attempt_at",
                "claim_token",
                "response_snapshot",
                "finished_at",
            ]
        )
    if drop:
        journey.context = {k: v for k, v in journey.context.items() if k not in drop}
    return before


# --- replay ------------------------------------------------------------------------------------


def _check_entity(actor: AbstractBaseUser, journey: Journey) -> None:
    if not may_see_entity(actor, journey.legal_entity_id):
        raise PermissionDenied("You may not act on journeys of that legal entity.")


def journey_replay(
    *,
    journey_id: int,
    actor: AbstractBaseUser,
    reason: str = "",
    from_step: str | None = None,
) -> ReplayOutcome:
    """Run a stopped journey again, after the cause is fixed: from its failed step (the
    default) or from ``from_step``, which resets that step and every later one.

    Succeeded steps before the start are not redone. A posted entry is never rebuilt or
    re-sent (refused: post a correction); a draft entry is discarded, with its revenue
    schedules, so the rebuild uses the fixed mappings; the posting step reads the ERP back by
    external id after an attempt with an unknown outcome. Replaying a completed journey
    without ``from_step`` changes nothing; with it, only if nothing posted. Every replay is
    audited with the user, the reason and the previous step snapshots.
    """
    from sync import tasks

    if not can_replay(actor):
        raise PermissionDenied("You may not replay journeys.")
    from_step = (from_step or "").strip() or None
    with transaction.atomic():
        journey = Journey.objects.select_for_update().get(pk=journey_id)
        _check_entity(actor, journey)
        corr = str(journey.correlation_id)
        if journey.state == Journey.State.COMPLETED and from_step is None:
            audit_record(
                actor=actor,
                action="journey.replay",
                obj=journey,
                reason=reason,
                before={"state": journey.state},
                after={"outcome": "already_completed"},
                correlation_id=corr,
            )
            return ReplayOutcome(journey, "already_completed")
        if journey.state not in (Journey.State.EXCEPTION, Journey.State.COMPLETED):
            raise DomainError(
                f"Journey {journey.business_key} is {journey.get_state_display().lower()}; only "
                "a journey in exception can be replayed."
            )
        steps = list(Step.objects.select_for_update().filter(journey=journey).order_by("position"))
        start = start_step_for(journey, steps, from_step)
        if journey.state == Journey.State.COMPLETED:
            posted = JournalEntry.objects.filter(
                journey=journey, state=JournalEntry.State.POSTED
            ).first()
            if posted is not None:
                raise _posted_refusal(journey, posted, f"replayed from “{start.name}”")
        discard = entries_to_discard(journey, steps, start, what=f"replayed from “{start.name}”")
        discarded = []
        for entry in discard:
            audit_record(
                actor=actor,
                action="journal_entry.discard",
                obj=entry,
                reason=reason,
                before={"state": entry.state, "rule_versions": entry.rule_versions},
                after={"discarded": True, "for": f"replay from {start.name}"},
                correlation_id=corr,
            )
            discarded.append(entry_discard(entry))
        before = {
            "state": journey.state,
            "step": start.name,
            "step_state": start.state,
            "steps": steps_reset(journey, steps, start),
        }
        journey.state = Journey.State.PENDING
        journey.completed_at = None
        journey.save(update_fields=["state", "context", "completed_at", "updated_at"])
        ExceptionCase.objects.filter(journey=journey, state=ExceptionCase.State.OPEN).update(
            state=ExceptionCase.State.IN_PROGRESS
        )
        audit_record(
            actor=actor,
            action="journey.replay",
            obj=journey,
            reason=reason,
            before=before,
            after={
                "outcome": "requeued",
                "from_step": start.name,
                "chosen": from_step is not None,
                "discarded_entries": discarded,
                "at": timezone.now().isoformat(),
            },
            correlation_id=corr,
        )
        step_id = start.pk
        transaction.on_commit(lambda: tasks.enqueue_step(step_id))
    return ReplayOutcome(
        journey, "requeued", start.name, tuple(d["external_id"] for d in discarded)
    )


def _journey_ids(journeys: Iterable[int] | QuerySet) -> list[int]:
    if isinstance(journeys, QuerySet):
        column = "journey_id" if journeys.model is ExceptionCase else "pk"
        raw: Iterable[int] = journeys.order_by().values_list(column, flat=True)
    else:
        raw = journeys
    seen: dict[int, None] = {}
    for pk in raw:
        seen.setdefault(int(pk), None)
    return list(seen)


def journeys_replay_bulk(
    *, journeys: Iterable[int] | QuerySet, actor: AbstractBaseUser, reason: str
) -> BulkReplaySummary:
    """Replay a selection (journey ids, or a queryset of journeys or of exception cases) from
    each one's failed step. Each journey is replayed, and audited, on its own, so one refusal
    does not stop the others; one more audit entry records the selection and the summary."""
    if not can_replay(actor):
        raise PermissionDenied("You may not replay journeys.")
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("A reason is required to replay a selection of journeys.")
    ids = _journey_ids(journeys)
    if not ids:
        raise DomainError("No journey selected.")
    if len(ids) > BULK_LIMIT:
        raise DomainError(
            f"{len(ids)} journeys selected; replay at most {BULK_LIMIT} at once (narrow the "
            "filter)."
        )
    summary = BulkReplaySummary()
    for pk in ids:
        try:
            outcome = journey_replay(journey_id=pk, actor=actor, reason=reason)
        except Journey.DoesNotExist:
            summary.refused.append({"journey": pk, "reason": "No such journey."})
        except PermissionDenied as exc:
            # Out of the actor's entities: refused like an unknown id, the others go on.
            if not can_replay(actor):
                raise
            summary.refused.append({"journey": pk, "reason": str(exc)})
        except DomainError as exc:
            summary.refused.append({"journey": pk, "reason": str(exc)})
        else:
            bucket = (
                summary.requeued if outcome.outcome == "requeued" else summary.already_completed
            )
            bucket.append(pk)
    # Not one object, so not audit_record: the selection is recorded on the journey table.
    AuditEntry.objects.create(
        actor=actor if actor.is_authenticated else None,
        actor_label=actor.get_username(),
        action="journey.replay_bulk",
        object_type=Journey._meta.label_lower,
        object_id="selection",
        object_repr=f"{len(ids)} journeys",
        before={"journeys": ids},
        after=summary.as_dict(),
        reason=reason,
    )
    return summary


# --- cancel ------------------------------------------------------------------------------------


def journey_cancel(*, journey_id: int, actor: AbstractBaseUser, reason: str) -> Journey:
    """Stop a journey in exception for good (the business event will not be posted).

    Refused when an entry of the journey is posted (post a correction instead) or may be in
    the ERP; a draft invoice entry is discarded with its schedules. Its open exceptions are
    resolved with the reason; audited.
    """
    if not can_replay(actor):
        raise PermissionDenied("You may not cancel journeys.")
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("A reason is required to cancel a journey.")
    now = timezone.now()
    with transaction.atomic():
        journey = Journey.objects.select_for_update().get(pk=journey_id)
        _check_entity(actor, journey)
        corr = str(journey.correlation_id)
        if journey.state != Journey.State.EXCEPTION:
            raise DomainError(
                f"Journey {journey.business_key} is {journey.get_state_display().lower()}; only "
                "a journey in exception can be cancelled."
            )
        steps = list(Step.objects.filter(journey=journey).order_by("position"))
        discard = entries_to_discard(journey, steps, steps[0], what="cancelled") if steps else []
        discarded = []
        for entry in discard:
            audit_record(
                actor=actor,
                action="journal_entry.discard",
                obj=entry,
                reason=reason,
                before={"state": entry.state, "rule_versions": entry.rule_versions},
                after={"discarded": True, "for": "cancel"},
                correlation_id=corr,
            )
            discarded.append(entry_discard(entry))
        before = {"state": journey.state}
        journey.state = Journey.State.CANCELLED
        journey.completed_at = now
        journey.save(update_fields=["state", "completed_at", "updated_at"])
        note = f"Resolved: the journey was cancelled by {actor.get_username()} ({reason})."
        for case in ExceptionCase.objects.filter(journey=journey, state__in=ExceptionCase.ACTIVE):
            case_before = {"state": case.state}
            case.state = ExceptionCase.State.RESOLVED
            case.resolved_at = now
            case.resolution_note = (case.resolution_note + "\n" if case.resolution_note else "") + (
                note
            )
            case.save(update_fields=["state", "resolved_at", "resolution_note"])
            audit_record(
                actor=actor,
                action="exception.resolve",
                obj=case,
                reason=reason,
                before=case_before,
                after={"state": case.state, "by": "journey.cancel"},
                correlation_id=corr,
            )
        audit_record(
            actor=actor,
            action="journey.cancel",
            obj=journey,
            reason=reason,
            before=before,
            after={"state": journey.state, "discarded_entries": discarded},
            correlation_id=corr,
        )
    return journey
