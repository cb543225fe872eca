"""What people do to journeys: replay."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from sync.errors import DomainError, PermissionDenied
from sync.models import ExceptionCase, Journey, Step
from sync.permissions import can_replay
from sync.services.audit import audit_record


@dataclass(frozen=True)
class ReplayOutcome:
    journey: Journey
    outcome: str  # "requeued" | "already_completed"
    from_step: str = ""


def journey_replay(*, journey_id: int, actor: AbstractBaseUser, reason: str = "") -> ReplayOutcome:
    """Run a stopped journey again from its failed step, after the cause is fixed.

    Steps that succeeded are not redone, and the posting step reads the ERP back by external
    id, so no number of replays posts twice. Replaying a completed journey changes nothing.
    Every replay is audited with the user; a journey still moving is refused.
    """
    from sync import tasks

    if not can_replay(actor):
        raise PermissionDenied("You may not replay journeys.")
    with transaction.atomic():
        journey = Journey.objects.select_for_update().get(pk=journey_id)
        corr = str(journey.correlation_id)
        if journey.state == Journey.State.COMPLETED:
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
        if journey.state != Journey.State.EXCEPTION:
            raise DomainError(
                f"Journey {journey.business_key} is {journey.get_state_display().lower()}; only "
                "a journey in exception can be replayed."
            )
        step = (
            Step.objects.select_for_update()
            .filter(journey=journey)
            .exclude(state__in=Step.DONE)
            .order_by("position")
            .first()
        )
        if step is None:  # every step done but the journey not marked: finish it via the engine
            raise DomainError(f"Journey {journey.business_key} has no step left to run.")
        before = {"state": journey.state, "step": step.name, "step_state": step.state}
        step.state = Step.State.PENDING
        step.next_attempt_at = None
        step.claim_token = None
        step.save(update_fields=["state", "next_attempt_at", "claim_token"])
        journey.state = Journey.State.PENDING
        journey.save(update_fields=["state", "updated_at"])
        ExceptionCase.objects.filter(journey=journey, state=ExceptionCase.State.OPEN).update(
            state=ExceptionCase.State.IN_PROGRESS
        )
        audit_record(
            actor=actor,
            action="journey.replay",
            obj=journey,
            reason=reason,
            before=before,
            after={"outcome": "requeued", "from_step": step.name, "at": timezone.now().isoformat()},
            correlation_id=corr,
        )
        step_id = step.pk
        transaction.on_commit(lambda: tasks.enqueue_step(step_id))
    return ReplayOutcome(journey, "requeued", step.name)
