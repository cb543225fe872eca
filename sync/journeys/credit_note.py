"""credit_note: a billing credit note becomes one entry and cuts the credited schedules.

Each credited line's share is spread over its invoice line's schedule (credits.split_credit):
the part on months already recognized reverses revenue (or the posting rule's contra-revenue
account), the part on months still planned reverses deferred revenue and cuts those planned
lines. Its tax reverses tax payable. Before payment the credit reduces AR; after payment it
is owed to the customer (customer credit balance) until a refund pays it out. A custom line
that credits no invoice line (a goodwill credit) is all earned.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F

from connectors.base import BillingCreditNote, PermanentError
from connectors.stripe import payments as stripe_payments
from sync.accounting.credits import (
    CreditPart,
    ScheduledAmount,
    credit_note_lines,
    functional_reductions,
    split_credit,
)
from sync.accounting.entries import TaxPart, UnbalancedPlan
from sync.errors import DataDefect, DependencyPending
from sync.journeys import JourneyType, StepContext, StepDef
from sync.journeys.common import POSTING_STEPS
from sync.journeys.invoice_to_ledger import external_id_for
from sync.models import (
    CreditNote,
    CreditNoteLine,
    EntityAccounts,
    ExceptionCase,
    JournalEntry,
    Journey,
    PostingRule,
    RevenueSchedule,
    RevenueScheduleLine,
    TaxMapping,
)
from sync.services.ledger import journal_entry_create
from sync.services.periods import first_open_period

Cat = ExceptionCase.Category


def _parse(ctx: StepContext) -> BillingCreditNote:
    try:
        return stripe_payments.parse_credit_note(ctx.journey.source_event.payload["data"]["object"])
    except PermanentError as exc:
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"The credit note could not be read: {exc.message}",
            context={"event_id": ctx.journey.source_event.source_event_id},
        ) from exc


def validate_credit_note(ctx: StepContext) -> dict[str, Any]:
    """Store the credit note; wait until the invoice it credits is in the ledger."""
    cn = _parse(ctx)
    if cn.timing not in (CreditNote.Timing.PRE_PAYMENT, CreditNote.Timing.POST_PAYMENT):
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"Credit note {cn.number or cn.source_id} is partly before and partly after payment "
            f"({cn.pre_payment_minor} / {cn.post_payment_minor}); split it in billing or post "
            "it by hand.",
            context={"credit_note": cn.source_id},
        )
    invoice_journey = Journey.objects.filter(
        journey_type="invoice_to_ledger", business_key=cn.invoice_ref
    ).first()
    invoice_entry = (
        JournalEntry.objects.filter(external_id=external_id_for(invoice_journey)).first()
        if invoice_journey
        else None
    )
    if invoice_entry is None or invoice_entry.state != JournalEntry.State.POSTED:
        raise DependencyPending(
            Cat.AMOUNT_MISMATCH,
            f"Credit note {cn.number or cn.source_id} credits invoice {cn.invoice_ref}, which "
            "is not in the ledger. Post the invoice first, then replay.",
            context={"credit_note": cn.source_id, "invoice": cn.invoice_ref},
        )
    if JournalEntry.objects.filter(reverses=invoice_entry).exists():
        raise DataDefect(
            Cat.AMOUNT_MISMATCH,
            f"Credit note {cn.number or cn.source_id} credits invoice {cn.invoice_ref}, which "
            "was voided: there is nothing left to credit.",
            context={"credit_note": cn.source_id, "invoice": cn.invoice_ref},
        )
    with transaction.atomic():
        note, _ = CreditNote.objects.update_or_create(
            source_system="stripe",
            source_id=cn.source_id,
            defaults={
                "number": cn.number,
                "invoice_ref": cn.invoice_ref,
                "customer_ref": cn.customer_ref,
                "currency": cn.currency,
                "timing": cn.timing,
                "refunded": bool(cn.refunded_minor),
                "subtotal_minor": cn.subtotal_minor,
                "tax_minor": cn.tax_minor,
                "total_minor": cn.total_minor,
                "issued_at": cn.issued_at,
            },
        )
        note.lines.all().delete()
        CreditNoteLine.objects.bulk_create(
            CreditNoteLine(
                credit_note=note,
                position=i,
                source_id=ln.source_id,
                invoice_line_ref=ln.invoice_line_ref,
                description=ln.description[:500],
                net_minor=ln.net_minor,
                tax_minor=ln.tax_minor,
                taxes=[{"rate_ref": t.rate_ref, "amount_minor": t.amount_minor} for t in ln.taxes],
            )
            for i, ln in enumerate(cn.lines, start=1)
        )
    return {
        "credit_note_id": note.pk,
        "invoice_entry_id": invoice_entry.pk,
        "legal_entity_id": invoice_entry.legal_entity_id,
    }


def build_credit_entry(ctx: StepContext) -> dict[str, Any]:
    """Split each line over its schedule, build the entry and cut the schedules, atomically."""
    existing = JournalEntry.objects.filter(journey=ctx.journey).first()
    if existing:
        return {"entry_id": existing.pk}
    note = CreditNote.objects.get(pk=ctx.data["credit_note_id"])
    invoice_entry = JournalEntry.objects.select_related("legal_entity").get(
        pk=ctx.data["invoice_entry_id"]
    )
    entity = invoice_entry.legal_entity
    accounts = EntityAccounts.objects.filter(legal_entity=entity).first()
    if accounts is None:
        raise DataDefect(
            Cat.MISSING_POSTING_RULE,
            f"{entity.code} has no entity accounts (customer credit, cash); set them, then replay.",
            context={"entity": entity.code},
        )
    default_rule = (
        PostingRule.objects.filter(legal_entity=entity).order_by("-effective_from").first()
    )
    with transaction.atomic():
        parts: list[CreditPart] = []
        cuts: dict[int, tuple[int, int]] = {}
        earned_by_line: dict[int, int] = {}
        missing_tax: list[str] = []
        taxes: dict[str, TaxPart] = {}
        for ln in note.lines.all():
            schedule = (
                RevenueSchedule.objects.select_for_update()
                .filter(
                    source_kind=RevenueSchedule.Source.INVOICE_LINE,
                    source_ref=ln.invoice_line_ref,
                    state=RevenueSchedule.State.ACTIVE,
                )
                .first()
                if ln.invoice_line_ref
                else None
            )
            if schedule is None:  # goodwill credit on no invoice line: all earned
                rule = default_rule
                parts.append(
                    CreditPart(
                        net_minor=ln.net_minor,
                        deferred_account_id=rule.deferred_revenue_account_id,
                        revenue_account_id=rule.contra_revenue_account_id
                        or rule.revenue_account_id,
                        earned_minor=ln.net_minor,
                        unearned_minor=0,
                        product_code="",
                        memo=ln.description[:200],
                    )
                )
            else:
                rows = list(
                    schedule.lines.select_for_update()
                    .exclude(state=RevenueScheduleLine.State.CANCELLED)
                    .order_by("period", "pk")
                )
                sched = [
                    ScheduledAmount(
                        key=r.pk,
                        period=r.period,
                        amount_minor=r.amount_minor - r.credited_minor
                        if r.state == RevenueScheduleLine.State.RECOGNIZED
                        else r.amount_minor,
                        recognized=r.state == RevenueScheduleLine.State.RECOGNIZED,
                    )
                    for r in rows
                ]
                try:
                    split = split_credit(ln.net_minor, sched)
                except ValueError as exc:
                    raise DataDefect(
                        Cat.AMOUNT_MISMATCH,
                        f"Credit note {note} credits more of line "
                        f"{ln.invoice_line_ref} than remains: {exc}.",
                    ) from exc
                by_pk = {r.pk: r for r in rows}
                f_cuts = functional_reductions(
                    split.reductions,
                    {
                        k: (by_pk[k].amount_minor, by_pk[k].functional_amount_minor)
                        for k in split.reductions
                    },
                )
                for key, cut in split.reductions.items():
                    cuts[key] = (cut, f_cuts[key])
                earned_by_line.update(split.earned_shares)
                rule_contra = (
                    PostingRule.objects.filter(
                        legal_entity=entity,
                        deferred_revenue_account=schedule.deferred_account_id,
                        revenue_account=schedule.revenue_account_id,
                    )
                    .exclude(contra_revenue_account=None)
                    .values_list("contra_revenue_account_id", flat=True)
                    .first()
                )
                parts.append(
                    CreditPart(
                        net_minor=ln.net_minor,
                        deferred_account_id=schedule.deferred_account_id,
                        revenue_account_id=rule_contra or schedule.revenue_account_id,
                        earned_minor=split.earned_minor,
                        unearned_minor=split.unearned_minor,
                        product_code=schedule.product_code,
                        memo=ln.description[:200],
                        unearned_functional_minor=sum(f_cuts.values()),
                    )
                )
            for t in ln.taxes:
                tm = TaxMapping.objects.filter(
                    legal_entity=entity, source_system="stripe", source_rate_ref=t["rate_ref"]
                ).first()
                if tm is None:
                    missing_tax.append(t["rate_ref"])
                    continue
                prev = taxes.get(tm.erp_tax_code)
                taxes[tm.erp_tax_code] = TaxPart(
                    (prev.amount_minor if prev else 0) + t["amount_minor"],
                    tm.tax_account_id,
                    tm.erp_tax_code,
                    f"Tax {tm.erp_tax_code}",
                )
        if missing_tax:
            raise DataDefect(
                Cat.INVALID_TAX_JURISDICTION,
                f"Credit note {note}: no tax mapping in {entity.code} for "
                f"{', '.join(sorted(set(missing_tax)))}. Add it, then replay.",
            )
        try:
            drafts = credit_note_lines(
                parts=parts,
                taxes=list(taxes.values()),
                total_minor=note.total_minor,
                timing=note.timing,
                ar_account_id=default_rule.ar_account_id,
                customer_credit_account_id=accounts.customer_credit_account_id,
                currency=note.currency,
                functional_currency=entity.functional_currency,
                fx_rate=invoice_entry.fx_rate,
                rounding_account_id=default_rule.fx_rounding_account_id,
                customer_ref=note.customer_ref,
                memo=f"Credit note {note}",
            )
        except UnbalancedPlan as exc:
            raise DataDefect(Cat.AMOUNT_MISMATCH, f"Credit note {note}: {exc}.") from exc
        for key, (cut, f_cut) in cuts.items():
            RevenueScheduleLine.objects.filter(pk=key).update(
                amount_minor=F("amount_minor") - cut,
                functional_amount_minor=F("functional_amount_minor") - f_cut,
            )
        RevenueScheduleLine.objects.filter(pk__in=list(cuts), amount_minor=0).update(
            state=RevenueScheduleLine.State.CANCELLED
        )
        for key, share in earned_by_line.items():
            RevenueScheduleLine.objects.filter(pk=key).update(
                credited_minor=F("credited_minor") + share
            )
        issued = note.issued_at.date()
        entry = journal_entry_create(
            entity=entity,
            kind=JournalEntry.Kind.CREDIT_NOTE,
            journey=ctx.journey,
            posting_date=max(issued, first_open_period(entity)),
            currency=note.currency,
            fx_rate=invoice_entry.fx_rate,
            memo=f"Credit note {note} on {note.invoice_ref}",
            external_id=f"RCT-STRIPE-{note.source_id}",
            document_ref=note.invoice_ref,
            lines=drafts,
        )
    return {
        "entry_id": entry.pk,
        "earned_minor": sum(p.earned_minor for p in parts),
        "unearned_minor": sum(p.unearned_minor for p in parts),
    }


JOURNEY = JourneyType(
    name="credit_note",
    source_system="stripe",
    event_types=frozenset({"credit_note.created"}),
    steps=(
        StepDef("validate", validate_credit_note, "Read the credit note; wait for its invoice"),
        StepDef("build_entry", build_credit_entry, "Split over schedules; build the entry"),
        *POSTING_STEPS,
    ),
    business_key=lambda env: env.object_id,
    aggregate_key=lambda env: f"stripe:{env.payload['data']['object'].get('invoice', '')}",
)
