"""Changes to revenue schedules after they are made: delivery and cancellation."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from sync.accounting.schedules import month_start
from sync.errors import DomainError, PermissionDenied
from sync.models import RevenueSchedule, RevenueScheduleLine, RevenueType, Subscription
from sync.permissions import FINANCE_OPS, has_role, may_see_entity
from sync.services.audit import audit_record
from sync.services.periods import first_open_period


def schedule_deliver(
    *,
    schedule_id: int,
    delivered_on: dt.date,
    actor: AbstractBaseUser | None,
    reason: str = "",
) -> RevenueSchedule:
    """Record the delivery of a services-on-delivery line: its revenue falls in the delivery
    month (or the first open month, if that one is closed) and the next recognition run
    for that month posts it."""
    if actor is not None and not has_role(actor, FINANCE_OPS):
        raise PermissionDenied("Only finance ops may record deliveries.")
    with transaction.atomic():
        schedule = RevenueSchedule.objects.select_for_update().get(pk=schedule_id)
        if not may_see_entity(actor, schedule.legal_entity_id):
            raise PermissionDenied("You may not change schedules of that legal entity.")
        if schedule.revenue_type != RevenueType.ON_DELIVERY:
            raise DomainError(f"Schedule {schedule} is not recognized on delivery.")
        pending = schedule.lines.filter(period__isnull=True, state="planned")
        if not pending.exists():
            raise DomainError(f"The delivery of {schedule} was already recorded.")
        month = max(month_start(delivered_on), first_open_period(schedule.legal_entity))
        pending.update(period=month)
        audit_record(
            actor=actor,
            action="schedule.deliver",
            obj=schedule,
            reason=reason,
            after={"delivered_on": delivered_on.isoformat(), "recognized_in": month.isoformat()},
        )
    return schedule


def schedules_stop_for_subscription(
    *, subscription_ref: str, ended_on: dt.date, correlation_id: str = ""
) -> int:
    """A subscription ended: no month after the end month recognizes anything more.

    ``ended_on`` is the last day of service (a subscription ending at May 1 00:00 served
    through April 30). What was still planned for later months moves to the end month: once
    the service has ended with no refund, nothing remains to deliver, so the remaining
    deferral is earned then (a later credit note for unused time reverses it). Returns how
    many lines moved.
    """
    end_month = month_start(ended_on)
    with transaction.atomic():
        # The subscription row is the lock a schedule being made for it takes too
        # (schedules_stop_if_ended): whichever commits second sees the other's work.
        Subscription.objects.filter(source_id=subscription_ref).update(service_ended_on=ended_on)
        lines = RevenueScheduleLine.objects.select_for_update(of=("self",)).filter(
            schedule__invoice_line__invoice__subscription_ref=subscription_ref,
            schedule__state=RevenueSchedule.State.ACTIVE,
            state=RevenueScheduleLine.State.PLANNED,
            period__gt=end_month,
        )
        schedules = list(RevenueSchedule.objects.filter(lines__in=lines).distinct())
        moved = lines.update(period=end_month)
        for schedule in schedules:
            audit_record(
                actor=None,
                action="schedule.stop",
                obj=schedule,
                after={"ended_on": ended_on.isoformat(), "moved_to": end_month.isoformat()},
                correlation_id=correlation_id,
            )
    return moved


def schedules_stop_if_ended(*, subscription_refs: set[str], correlation_id: str = "") -> int:
    """For schedules just made for invoices of these subscriptions: a subscription that has
    already ended (its cancellation ran first: events arrive in any order) stops recognizing
    after its last day of service here too. Call inside the transaction that made them."""
    moved = 0
    ended = Subscription.objects.select_for_update().filter(
        source_id__in=[ref for ref in subscription_refs if ref], service_ended_on__isnull=False
    )
    for sub in ended:
        moved += schedules_stop_for_subscription(
            subscription_ref=sub.source_id,
            ended_on=sub.service_ended_on,
            correlation_id=correlation_id,
        )
    return moved
