"""Starting revenue recognition runs: monthly on a schedule, or on demand for a period."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from sync.accounting.schedules import month_start
from sync.errors import DomainError, PermissionDenied
from sync.journeys import journey_type
from sync.models import Journey, LegalEntity, RevenueSchedule, RevenueScheduleLine
from sync.permissions import FINANCE_OPS, has_role, may_see_entity
from sync.services.audit import audit_record
from sync.services.dispatch import journey_start
from sync.services.periods import check_month, first_open_period


@dataclass
class RecognitionRunResult:
    entity: str
    period: dt.date
    journeys: list[Journey] = field(default_factory=list)
    skipped_in_flight: list[str] = field(default_factory=list)

    @property
    def nothing_due(self) -> bool:
        return not self.journeys and not self.skipped_in_flight


def recognition_run(
    *,
    entity: LegalEntity,
    period: dt.date,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
) -> RecognitionRunResult:
    """Start one recognition journey per (month, currency) with lines due up to ``period``.

    Lines of a closed month go to the first open month. Running a period again finds nothing
    new and starts nothing; a month whose run is still in flight is left to that run.
    """
    if actor is not None and not has_role(actor, FINANCE_OPS):
        raise PermissionDenied("Only finance ops may run revenue recognition.")
    if actor is not None and not may_see_entity(actor, entity.pk):
        raise PermissionDenied("You may not run recognition for that legal entity.")
    check_month(period)
    if period > month_start(timezone.now().date()):
        raise DomainError(f"{period:%Y-%m} has not started yet; nothing can be recognized.")
    first_open = first_open_period(entity)
    if period < first_open:
        raise DomainError(
            f"{entity.code} {period:%Y-%m} is closed; late items are recognized in "
            f"{first_open:%Y-%m}."
        )
    jt = journey_type("revenue_recognition")
    result = RecognitionRunResult(entity=entity.code, period=period)
    with transaction.atomic():
        due = (
            RevenueScheduleLine.objects.filter(
                schedule__legal_entity=entity,
                schedule__state=RevenueSchedule.State.ACTIVE,
                state=RevenueScheduleLine.State.PLANNED,
                period__isnull=False,
                period__lte=period,
            )
            .values("period", "schedule__currency")
            .annotate(n=Count("id"))
        )
        targets = sorted(
            {(max(row["period"], first_open), row["schedule__currency"]) for row in due}
        )
        for month, currency in targets:
            prefix = f"{entity.code}:{month:%Y-%m}:{currency}:"
            runs = Journey.objects.filter(journey_type=jt.name, business_key__startswith=prefix)
            if runs.filter(state__in=Journey.ACTIVE).exists():
                result.skipped_in_flight.append(prefix.rstrip(":"))
                continue
            journey, _ = journey_start(
                jt=jt,
                business_key=f"{prefix}{runs.count() + 1}",
                aggregate_key=f"revrec:{entity.code}",
                business_at=timezone.now(),
                source_system="schedule",
                legal_entity_id=entity.pk,
                context={
                    "legal_entity_id": entity.pk,
                    "period": month.isoformat(),
                    "currency": currency,
                },
            )
            result.journeys.append(journey)
        audit_record(
            actor=actor,
            action="recognition.run",
            obj=entity,
            reason=reason,
            after={
                "period": period.isoformat(),
                "journeys": [j.business_key for j in result.journeys],
                "in_flight": result.skipped_in_flight,
            },
        )
    return result


def recognition_run_monthly(*, today: dt.date | None = None) -> dict[str, int]:
    """The scheduled run: every active entity, for the month that just ended."""
    today = today or timezone.now().date()
    last_month = month_start(month_start(today) - dt.timedelta(days=1))
    started = {}
    for entity in LegalEntity.objects.filter(is_active=True):
        try:
            started[entity.code] = len(recognition_run(entity=entity, period=last_month).journeys)
        except DomainError:
            started[entity.code] = 0  # period closed already: nothing to do
    return started
