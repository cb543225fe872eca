"""invoice_void: a voided invoice is reversed, never edited.

If the invoice was posted, a reversing entry (``reverses`` the original) swaps every line of
the original, and moves back out of revenue whatever a recognition run had already taken from
deferred revenue; planned schedule lines are cancelled. If it never posted, its journey is
cancelled and nothing is posted.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from sync.accounting.entries import DraftLine
from sync.accounting.schedules import month_start
from sync.errors import DataDefect, DependencyPending
from sync.journeys import JourneyType, StepContext, StepDef
from sync.journeys.common import POSTING_STEPS
from sync.journeys.invoice_to_ledger import external_id_for
from sync.models import (
    ExceptionCase,
    JournalEntry,
    Journey,
    RevenueSchedule,
    RevenueScheduleLine,
)
from sync.services.audit import audit_record
from sync.services.ledger import journal_entry_create
from sync.services.periods import first_open_period

Cat = ExceptionCase.Category


def _swap(line) -> DraftLine:
    return DraftLine(
        account_id=line.account_id,
        debit_minor=line.credit_minor,
        credit_minor=line.debit_minor,
        functional_debit_minor=line.functional_credit_minor,
        functional_credit_minor=line.functional_debit_minor,
        memo=f"Void: {line.memo}"[:500],
        product_code=line.product_code,
        tax_code=line.tax_code,
        customer_ref=line.customer_ref,
    )


def _cancel_unposted(original_journey: Journey, invoice_id: str) -> dict[str, Any]:
    now = timezone.now()
    with transaction.atomic():
        j = Journey.objects.select_for_update().get(pk=original_journey.pk)
        if j.state == Journey.State.COMPLETED:
            return {}
        j.state = Journey.State.CANCELLED
        j.completed_at = now
        j.save(update_fields=["state", "completed_at", "updated_at"])
        for case in ExceptionCase.objects.filter(journey=j, state__in=ExceptionCase.ACTIVE):
            case.state = ExceptionCase.State.RESOLVED
            case.resolved_at = now
            case.resolution_note = "Resolved: the invoice was voided in billing."
            case.save(update_fields=["state", "resolved_at", "resolution_note"])
        audit_record(
            actor=None,
            action="journey.cancel",
            obj=j,
            reason=f"invoice {invoice_id} voided before it posted",
            after={"state": j.state},
        )
    return {"entry_id": None, "cancelled_journey": j.pk}


def build_reversal(ctx: StepContext) -> dict[str, Any]:
    invoice_id = ctx.journey.business_key.removesuffix(":void")
    original_journey = Journey.objects.filter(
        journey_type="invoice_to_ledger", business_key=invoice_id
    ).first()
    if original_journey is None:
        # Stripe voids only finalized invoices, so its invoice.finalized event is on its way
        # (webhooks arrive in any order). Completing now would let that invoice post later
        # with nothing to reverse it: wait for it instead.
        raise DependencyPending(
            Cat.INVALID_PAYLOAD,
            f"Invoice {invoice_id} was voided, but its invoice.finalized event has not arrived; "
            "the void waits for it so that the reversal follows the posting.",
            context={"invoice": invoice_id},
        )
    existing = JournalEntry.objects.filter(journey=ctx.journey).first()
    if existing:
        return {"entry_id": existing.pk}
    original = JournalEntry.objects.filter(external_id=external_id_for(original_journey)).first()
    if original is None or original.state == JournalEntry.State.DRAFT:
        if original_journey.state in (Journey.State.EXCEPTION, Journey.State.PENDING):
            return _cancel_unposted(original_journey, invoice_id)
        raise DependencyPending(
            Cat.INVALID_PAYLOAD,
            f"Invoice {invoice_id} was voided while its posting is still in flight.",
        )
    if original.state != JournalEntry.State.POSTED:
        raise DependencyPending(
            Cat.INVALID_PAYLOAD, f"Invoice {invoice_id} was voided while it is being posted."
        )
    credited = JournalEntry.objects.filter(
        kind=JournalEntry.Kind.CREDIT_NOTE, document_ref=original.document_ref
    ).values_list("external_id", flat=True)
    if credited:
        raise DataDefect(
            Cat.AMOUNT_MISMATCH,
            f"Invoice {invoice_id} was voided after credit notes ({', '.join(credited)}); "
            "reversing the invoice would reverse what they already reversed. Post the void by "
            "hand, net of the credits.",
            context={"invoice": invoice_id, "credit_notes": list(credited)},
        )
    entity = original.legal_entity
    void_day = ctx.journey.business_at.date()
    posting_date = max(void_day, first_open_period(entity))
    with transaction.atomic():
        # Only the schedule rows are locked: the model's ordering joins the legal entity, and
        # a bare select_for_update() locked its row too, holding up every insert whose
        # foreign key names that entity until this void committed.
        schedules = list(
            RevenueSchedule.objects.select_for_update(of=("self",))
            .filter(invoice_line__invoice__source_id=invoice_id, state=RevenueSchedule.State.ACTIVE)
            .order_by("pk")
        )
        schedule_ids = [s.pk for s in schedules]
        lines = [_swap(ln) for ln in original.lines.all()]
        recognized = (
            RevenueScheduleLine.objects.filter(
                schedule_id__in=schedule_ids,
                state=RevenueScheduleLine.State.RECOGNIZED,
                recognition_entry__kind=JournalEntry.Kind.RECOGNITION,
            )
            .values("schedule_id")
            .annotate(total=Sum("amount_minor"), functional=Sum("functional_amount_minor"))
        )
        by_schedule = {s.pk: s for s in schedules}
        for row in recognized:
            s = by_schedule[row["schedule_id"]]
            amount = row["total"]
            functional = abs(row["functional"])
            memo = f"Void: take back recognized {s.product_code}"
            dr_revenue = amount > 0
            lines.append(
                DraftLine(
                    s.revenue_account_id if dr_revenue else s.deferred_account_id,
                    abs(amount),
                    0,
                    functional,
                    0,
                    memo,
                    s.product_code,
                )
            )
            lines.append(
                DraftLine(
                    s.deferred_account_id if dr_revenue else s.revenue_account_id,
                    0,
                    abs(amount),
                    0,
                    functional,
                    memo,
                    s.product_code,
                )
            )
        RevenueScheduleLine.objects.filter(
            schedule_id__in=schedule_ids, state=RevenueScheduleLine.State.PLANNED
        ).update(state=RevenueScheduleLine.State.CANCELLED)
        RevenueSchedule.objects.filter(pk__in=schedule_ids).update(
            state=RevenueSchedule.State.CANCELLED
        )
        entry = journal_entry_create(
            entity=entity,
            kind=JournalEntry.Kind.REVERSAL,
            journey=ctx.journey,
            posting_date=posting_date,
            currency=original.currency,
            fx_rate=original.fx_rate,
            memo=f"Void of {original.memo}",
            external_id=f"{original.external_id}-VOID",
            document_ref=original.document_ref,
            lines=lines,
            reverses=original,
        )
    return {
        "entry_id": entry.pk,
        "reverses": original.external_id,
        "posting_month": month_start(posting_date).isoformat(),
    }


JOURNEY = JourneyType(
    name="invoice_void",
    source_system="stripe",
    event_types=frozenset({"invoice.voided"}),
    steps=(StepDef("build_reversal", build_reversal, "Build the reversing entry"), *POSTING_STEPS),
    business_key=lambda env: f"{env.object_id}:void",
    aggregate_key=lambda env: f"stripe:{env.object_id}",
    default_sla_minutes=60,
)
