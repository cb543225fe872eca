"""revenue_recognition: one entity, one month, one currency — Dr deferred / Cr revenue for
every planned schedule line that falls due, posted once.

The build step locks the due lines, writes the entry and marks each line recognized with it
in one transaction, so a line can never be recognized twice; a run that finds nothing due
completes without posting.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from django.db import transaction

from sync.accounting.recognition import DueAmount, recognition_lines
from sync.journeys import JourneyType, StepContext, StepDef
from sync.journeys.common import POSTING_STEPS
from sync.models import JournalEntry, LegalEntity, RevenueSchedule, RevenueScheduleLine
from sync.services.ledger import journal_entry_create
from sync.services.periods import first_open_period


def due_lines(entity: LegalEntity, period: dt.date, currency: str, first_open: dt.date):
    """Planned lines recognized in ``period``: those of the month itself, and, when it is the
    first open month, every earlier one a closed month left behind."""
    qs = RevenueScheduleLine.objects.filter(
        schedule__legal_entity=entity,
        schedule__state=RevenueSchedule.State.ACTIVE,
        schedule__currency=currency,
        state=RevenueScheduleLine.State.PLANNED,
        period__isnull=False,
    )
    return qs.filter(period__lte=period) if period == first_open else qs.filter(period=period)


def build_recognition(ctx: StepContext) -> dict[str, Any]:
    entity = LegalEntity.objects.get(pk=ctx.data["legal_entity_id"])
    period = dt.date.fromisoformat(ctx.data["period"])
    currency = ctx.data["currency"]
    journey = ctx.journey
    existing = JournalEntry.objects.filter(journey=journey).first()
    if existing:
        return {"entry_id": existing.pk}
    with transaction.atomic():
        first_open = first_open_period(entity)
        lines = list(
            due_lines(entity, period, currency, first_open)
            .select_for_update(of=("self",))
            .select_related("schedule")
            .order_by("pk")
        )
        if not lines:
            return {"entry_id": None, "recognized_lines": 0}
        items = [
            DueAmount(
                key=ln.pk,
                deferred_account_id=ln.schedule.deferred_account_id,
                revenue_account_id=ln.schedule.revenue_account_id,
                product_code=ln.schedule.product_code,
                period=ln.period,
                amount_minor=ln.amount_minor,
                currency=currency,
                fx_rate=ln.schedule.fx_rate,
                functional_currency=entity.functional_currency,
                functional_amount_minor=ln.functional_amount_minor,
            )
            for ln in lines
        ]
        drafts = recognition_lines(
            items, currency=currency, functional_currency=entity.functional_currency
        )
        last_day = period.replace(day=calendar.monthrange(period.year, period.month)[1])
        entry = (
            journal_entry_create(
                entity=entity,
                kind=JournalEntry.Kind.RECOGNITION,
                journey=journey,
                posting_date=last_day,
                currency=currency,
                memo=f"Revenue recognition {entity.code} {period:%Y-%m} ({currency})",
                external_id=f"RCT-REVREC-{journey.business_key}",
                lines=drafts,
            )
            if drafts
            else None
        )
        RevenueScheduleLine.objects.filter(pk__in=[ln.pk for ln in lines]).update(
            state=RevenueScheduleLine.State.RECOGNIZED,
            recognized_period=period,
            recognition_entry=entry,
        )
    return {
        "entry_id": entry.pk if entry else None,
        "recognized_lines": len(lines),
        "recognized_minor": sum(ln.amount_minor for ln in lines),
    }


JOURNEY = JourneyType(
    name="revenue_recognition",
    source_system="schedule",
    event_types=frozenset(),
    steps=(
        StepDef("build_recognition", build_recognition, "Lock due schedule lines, build entry"),
        *POSTING_STEPS,
    ),
    default_sla_minutes=24 * 60,
)
