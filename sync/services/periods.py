"""Accounting periods: which months of an entity's books are still open."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from sync.accounting.schedules import next_month
from sync.errors import DomainError, PermissionDenied
from sync.models import AccountingPeriod, Journey, LegalEntity, RevenueSchedule, RevenueScheduleLine
from sync.permissions import FINANCE_OPS, has_role, may_see_entity
from sync.services.audit import audit_record

BEGINNING = dt.date(1900, 1, 1)


def first_open_period(entity: LegalEntity) -> dt.date:
    """The month after the latest closed one (periods close in order); ``BEGINNING`` when
    the entity has closed nothing yet."""
    last = (
        AccountingPeriod.objects.filter(legal_entity=entity, state=AccountingPeriod.State.CLOSED)
        .order_by("-period")
        .values_list("period", flat=True)
        .first()
    )
    return next_month(last) if last else BEGINNING


def check_month(period: dt.date) -> None:
    if period.day != 1:
        raise DomainError(f"{period} is not the first day of a month.")


def period_close(
    *, entity: LegalEntity, period: dt.date, actor: AbstractBaseUser | None, reason: str = ""
) -> AccountingPeriod:
    """Close a month once everything due in it is recognized. Months close in order; what
    arrives later for a closed month is recognized in the first open one."""
    if actor is not None and not has_role(actor, FINANCE_OPS):
        raise PermissionDenied("Only finance ops may close periods.")
    if actor is not None and not may_see_entity(actor, entity.pk):
        raise PermissionDenied("You may not close periods of that legal entity.")
    check_month(period)
    with transaction.atomic():
        LegalEntity.objects.select_for_update().get(pk=entity.pk)  # one close at a time
        first_open = first_open_period(entity)
        if first_open != BEGINNING and period != first_open:
            raise DomainError(
                f"{entity.code}: the next period to close is {first_open:%Y-%m}, not "
                f"{period:%Y-%m}."
            )
        pending = RevenueScheduleLine.objects.filter(
            schedule__legal_entity=entity,
            schedule__state=RevenueSchedule.State.ACTIVE,
            state=RevenueScheduleLine.State.PLANNED,
            period__lte=period,
        ).count()
        if pending:
            raise DomainError(
                f"{entity.code} {period:%Y-%m} still has {pending} schedule line(s) to "
                "recognize; run revenue recognition first."
            )
        running = Journey.objects.filter(
            journey_type="revenue_recognition",
            legal_entity=entity,
            state__in=Journey.ACTIVE | {Journey.State.EXCEPTION},
        ).count()
        if running:
            raise DomainError(
                f"{entity.code} has {running} recognition run(s) not yet posted; finish them first."
            )
        row, _ = AccountingPeriod.objects.update_or_create(
            legal_entity=entity,
            period=period,
            defaults={"state": AccountingPeriod.State.CLOSED, "closed_at": timezone.now()},
        )
        audit_record(
            actor=actor,
            action="period.close",
            obj=row,
            reason=reason,
            after={"entity": entity.code, "period": period.isoformat()},
        )
    return row
