"""invoice_void: a voided invoice is reversed, never edited.

If the invoice was posted, a reversing entry (``reverses`` the original) swaps every line of
the original, and moves back out of revenue whatever a recognition run had already taken from
deferred revenue; planned schedule lines are cancelled. If it never posted, its journey is
cancelled and nothing is posted.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import F, Sum
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
from sync.services.ledger import EntrySpec, journal_entries_create
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
    """Reverse the posted invoice (or cancel its unposted journey), atomically."""
    outcome = build_reversals([ctx])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _reversal_pending(
    invoice_id: str,
    original_journey: Journey | None,
    original: JournalEntry | None,
    credited: list[str],
) -> dict[str, Any] | Exception | None:
    """What the void does instead of reversing, or None when it reverses ``original``."""
    if original_journey is None:
        # Stripe voids only finalized invoices, so its invoice.finalized event is on its way
        # (webhooks arrive in any order). Completing now would let that invoice post later
        # with nothing to reverse it: wait for it instead.
        return DependencyPending(
            Cat.INVALID_PAYLOAD,
            f"Invoice {invoice_id} was voided, but its invoice.finalized event has not arrived; "
            "the void waits for it so that the reversal follows the posting.",
            context={"invoice": invoice_id},
        )
    if original is None or original.state == JournalEntry.State.DRAFT:
        if original_journey.state in (Journey.State.EXCEPTION, Journey.State.PENDING):
            try:
                return _cancel_unposted(original_journey, invoice_id)
            except Exception as exc:  # that journey's outcome, not the batch's
                return exc
        return DependencyPending(
            Cat.INVALID_PAYLOAD,
            f"Invoice {invoice_id} was voided while its posting is still in flight.",
        )
    if original.state != JournalEntry.State.POSTED:
        return DependencyPending(
            Cat.INVALID_PAYLOAD, f"Invoice {invoice_id} was voided while it is being posted."
        )
    if credited:
        return DataDefect(
            Cat.AMOUNT_MISMATCH,
            f"Invoice {invoice_id} was voided after credit notes ({', '.join(credited)}); "
            "reversing the invoice would reverse what they already reversed. Post the void by "
            "hand, net of the credits.",
            context={"invoice": invoice_id, "credit_notes": credited},
        )
    return None


def _take_back_recognized(schedule: RevenueSchedule, amount: int, functional: int) -> list:
    """Two lines moving what recognition took into revenue back to deferred revenue."""
    memo = f"Void: take back recognized {schedule.product_code}"
    dr_revenue = amount > 0
    first, second = (
        (schedule.revenue_account_id, schedule.deferred_account_id)
        if dr_revenue
        else (schedule.deferred_account_id, schedule.revenue_account_id)
    )
    functional = abs(functional)
    return [
        DraftLine(first, abs(amount), 0, functional, 0, memo, schedule.product_code),
        DraftLine(second, 0, abs(amount), 0, functional, memo, schedule.product_code),
    ]


def build_reversals(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``build_reversal`` for many voids. A void whose entry exists gets it back; one whose
    invoice has not arrived, is still posting, or was credited gets that outcome alone. For
    the rest, in one transaction: their invoices' active schedules locked in one query (only
    the schedule rows: the model's ordering joins the legal entity, and a bare
    ``select_for_update()`` locked its row too, holding up every insert whose foreign key
    names that entity), recognized amounts summed in one, planned lines and schedules
    cancelled in one update each, the reversing entries and their lines inserted in one
    insert each. The only implementation: one journey's step is this with one context."""
    outcomes: list[dict[str, Any] | Exception] = [{} for _ in ctxs]
    invoice_ids = [ctx.journey.business_key.removesuffix(":void") for ctx in ctxs]
    existing: dict[int, int] = {}
    for journey_id, pk in (
        JournalEntry.objects.filter(journey_id__in=[ctx.journey.pk for ctx in ctxs])
        .order_by("created_at")
        .values_list("journey_id", "pk")
    ):
        existing[journey_id] = pk  # the latest, as .first() under the model's ordering
    originals_journeys = {
        j.business_key: j
        for j in Journey.objects.filter(
            journey_type="invoice_to_ledger", business_key__in=set(invoice_ids)
        ).order_by()
    }
    originals = {
        e.external_id: e
        for e in JournalEntry.objects.select_related("legal_entity")
        .prefetch_related("lines")
        .filter(external_id__in=[external_id_for(j) for j in originals_journeys.values()])
        .order_by()
    }
    credited: dict[str, list[str]] = {}
    refs = {e.document_ref for e in originals.values()}
    for ref, external_id in (
        JournalEntry.objects.filter(kind=JournalEntry.Kind.CREDIT_NOTE, document_ref__in=refs)
        .order_by("pk")
        .values_list("document_ref", "external_id")
    ):
        credited.setdefault(ref, []).append(external_id)
    work: list[tuple[int, str, JournalEntry]] = []
    for i, (ctx, invoice_id) in enumerate(zip(ctxs, invoice_ids, strict=True)):
        journey = originals_journeys.get(invoice_id)
        original = originals.get(external_id_for(journey)) if journey is not None else None
        if ctx.journey.pk in existing:
            outcomes[i] = {"entry_id": existing[ctx.journey.pk]}
            continue
        instead = _reversal_pending(
            invoice_id,
            journey,
            original,
            credited.get(original.document_ref, []) if original is not None else [],
        )
        if instead is None:
            work.append((i, invoice_id, original))
        else:
            outcomes[i] = instead
    if not work:
        return outcomes
    open_from: dict[int, dt.date] = {}
    with transaction.atomic():
        schedules: dict[str, list[RevenueSchedule]] = {}
        for s in (
            RevenueSchedule.objects.select_for_update(of=("self",))
            .filter(
                invoice_line__invoice__source_id__in=[invoice_id for _, invoice_id, _ in work],
                state=RevenueSchedule.State.ACTIVE,
            )
            .annotate(invoice_source_id=F("invoice_line__invoice__source_id"))
            .order_by("pk")
        ):
            schedules.setdefault(s.invoice_source_id, []).append(s)
        by_schedule = {s.pk: s for group in schedules.values() for s in group}
        recognized: dict[int, tuple[int, int]] = {
            row["schedule_id"]: (row["total"], row["functional"])
            for row in RevenueScheduleLine.objects.filter(
                schedule_id__in=list(by_schedule),
                state=RevenueScheduleLine.State.RECOGNIZED,
                recognition_entry__kind=JournalEntry.Kind.RECOGNITION,
            )
            .order_by()
            .values("schedule_id")
            .annotate(total=Sum("amount_minor"), functional=Sum("functional_amount_minor"))
        }
        specs: list[EntrySpec] = []
        for i, invoice_id, original in work:
            lines = [_swap(ln) for ln in original.lines.all()]
            for s in schedules.get(invoice_id, []):
                if s.pk in recognized:
                    lines.extend(_take_back_recognized(s, *recognized[s.pk]))
            entity = original.legal_entity
            if entity.pk not in open_from:
                open_from[entity.pk] = first_open_period(entity)
            specs.append(
                EntrySpec(
                    entity=entity,
                    kind=JournalEntry.Kind.REVERSAL,
                    journey=ctxs[i].journey,
                    posting_date=max(ctxs[i].journey.business_at.date(), open_from[entity.pk]),
                    currency=original.currency,
                    fx_rate=original.fx_rate,
                    memo=f"Void of {original.memo}",
                    external_id=f"{original.external_id}-VOID",
                    document_ref=original.document_ref,
                    lines=lines,
                    reverses=original,
                )
            )
        RevenueScheduleLine.objects.filter(
            schedule_id__in=list(by_schedule), state=RevenueScheduleLine.State.PLANNED
        ).update(state=RevenueScheduleLine.State.CANCELLED)
        RevenueSchedule.objects.filter(pk__in=list(by_schedule)).update(
            state=RevenueSchedule.State.CANCELLED
        )
        entries = journal_entries_create(specs)
    for (i, _, _), spec, entry in zip(work, specs, entries, strict=True):
        outcomes[i] = {
            "entry_id": entry.pk,
            "reverses": spec.reverses.external_id,
            "posting_month": month_start(spec.posting_date).isoformat(),
        }
    return outcomes


JOURNEY = JourneyType(
    name="invoice_void",
    source_system="stripe",
    event_types=frozenset({"invoice.voided"}),
    steps=(
        StepDef(
            "build_reversal", build_reversal, "Build the reversing entry", batch=build_reversals
        ),
        *POSTING_STEPS,
    ),
    business_key=lambda env: f"{env.object_id}:void",
    aggregate_key=lambda env: f"stripe:{env.object_id}",
    default_sla_minutes=60,
)
