"""credit_note: a billing credit note becomes one entry and cuts the credited schedules.

Each credited line's share is spread over its invoice line's schedule (credits.split_credit):
the part on months already recognized reverses revenue (or the posting rule's contra-revenue
account), the part on months still planned reverses deferred revenue and cuts those planned
lines. Its tax reverses tax payable. Before payment the credit reduces AR; after payment it
is owed to the customer (customer credit balance) until a refund pays it out. A custom line
that credits no invoice line (a goodwill credit) is all earned.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import transaction

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
from sync.journeys.invoice_to_ledger import _entity, _tax_mapping, entity_accounts, external_id_for
from sync.models import (
    CreditNote,
    CreditNoteLine,
    ExceptionCase,
    JournalEntry,
    Journey,
    LegalEntity,
    PostingRule,
    RevenueSchedule,
    RevenueScheduleLine,
)
from sync.services.bulk import rows_update
from sync.services.ledger import EntrySpec, journal_entries_create, journal_entry_check
from sync.services.memo import memoized
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
    outcome = validate_credit_notes([ctx])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _checked(ctx: StepContext) -> BillingCreditNote:
    cn = _parse(ctx)
    if cn.timing not in (CreditNote.Timing.PRE_PAYMENT, CreditNote.Timing.POST_PAYMENT):
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"Credit note {cn.number or cn.source_id} is partly before and partly after payment "
            f"({cn.pre_payment_minor} / {cn.post_payment_minor}); split it in billing or post "
            "it by hand.",
            context={"credit_note": cn.source_id},
        )
    return cn


def _invoice_entries(refs: set[str]) -> tuple[dict[str, JournalEntry], set[int]]:
    """The ledger entries of the invoices ``refs`` names (by invoice), and which of them a
    void has reversed: three queries whatever the number."""
    external_ids = {
        external_id_for(j): j.business_key
        for j in Journey.objects.filter(
            journey_type="invoice_to_ledger", business_key__in=refs
        ).only("source_system", "business_key")
    }
    entries = {
        external_ids[e.external_id]: e
        for e in JournalEntry.objects.filter(external_id__in=list(external_ids))
    }
    reversed_ids = set(
        JournalEntry.objects.filter(reverses__in=[e.pk for e in entries.values()]).values_list(
            "reverses_id", flat=True
        )
    )
    return entries, reversed_ids


_NOTE_FIELDS = (
    "number",
    "invoice_ref",
    "customer_ref",
    "currency",
    "timing",
    "refunded",
    "subtotal_minor",
    "tax_minor",
    "total_minor",
    "issued_at",
)


def validate_credit_notes(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``validate`` for many journeys: each credit note parsed and checked on its own (a
    defect, or an invoice not yet in the ledger, is that journey's outcome); the invoices'
    entries read in three queries; then in one transaction the notes upserted in one
    statement, their old lines deleted in one and all lines inserted in one. The only
    implementation: one journey's step is this with one context."""
    outcomes: list[dict[str, Any] | Exception] = [{} for _ in ctxs]
    parsed: dict[int, BillingCreditNote] = {}
    for i, ctx in enumerate(ctxs):
        try:
            parsed[i] = _checked(ctx)
        except Exception as exc:
            outcomes[i] = exc
    if not parsed:
        return outcomes
    entries, reversed_ids = _invoice_entries({cn.invoice_ref for cn in parsed.values()})
    accepted: dict[int, tuple[BillingCreditNote, JournalEntry]] = {}
    for i, cn in parsed.items():
        invoice_entry = entries.get(cn.invoice_ref)
        if invoice_entry is None or invoice_entry.state != JournalEntry.State.POSTED:
            outcomes[i] = DependencyPending(
                Cat.AMOUNT_MISMATCH,
                f"Credit note {cn.number or cn.source_id} credits invoice {cn.invoice_ref}, "
                "which is not in the ledger. Post the invoice first, then replay.",
                context={"credit_note": cn.source_id, "invoice": cn.invoice_ref},
            )
        elif invoice_entry.pk in reversed_ids:
            outcomes[i] = DataDefect(
                Cat.AMOUNT_MISMATCH,
                f"Credit note {cn.number or cn.source_id} credits invoice {cn.invoice_ref}, "
                "which was voided: there is nothing left to credit.",
                context={"credit_note": cn.source_id, "invoice": cn.invoice_ref},
            )
        else:
            accepted[i] = (cn, invoice_entry)
    if not accepted:
        return outcomes
    by_source = {cn.source_id: cn for cn, _ in accepted.values()}
    with transaction.atomic():
        CreditNote.objects.bulk_create(
            [
                CreditNote(
                    source_system="stripe",
                    source_id=cn.source_id,
                    number=cn.number,
                    invoice_ref=cn.invoice_ref,
                    customer_ref=cn.customer_ref,
                    currency=cn.currency,
                    timing=cn.timing,
                    refunded=bool(cn.refunded_minor),
                    subtotal_minor=cn.subtotal_minor,
                    tax_minor=cn.tax_minor,
                    total_minor=cn.total_minor,
                    issued_at=cn.issued_at,
                )
                for cn in by_source.values()
            ],
            update_conflicts=True,
            unique_fields=["source_system", "source_id"],
            update_fields=list(_NOTE_FIELDS),
        )
        note_ids = dict(
            CreditNote.objects.filter(source_system="stripe", source_id__in=list(by_source))
            .order_by()
            .values_list("source_id", "pk")
        )
        CreditNoteLine.objects.filter(credit_note_id__in=list(note_ids.values())).delete()
        CreditNoteLine.objects.bulk_create(
            CreditNoteLine(
                credit_note_id=note_ids[cn.source_id],
                position=n,
                source_id=ln.source_id,
                invoice_line_ref=ln.invoice_line_ref,
                description=ln.description[:500],
                net_minor=ln.net_minor,
                tax_minor=ln.tax_minor,
                taxes=[{"rate_ref": t.rate_ref, "amount_minor": t.amount_minor} for t in ln.taxes],
            )
            for cn in by_source.values()
            for n, ln in enumerate(cn.lines, start=1)
        )
    for i, (cn, invoice_entry) in accepted.items():
        outcomes[i] = {
            "credit_note_id": note_ids[cn.source_id],
            "invoice_entry_id": invoice_entry.pk,
            "legal_entity_id": invoice_entry.legal_entity_id,
        }
    return outcomes


def build_credit_entry(ctx: StepContext) -> dict[str, Any]:
    """Split each line over its schedule, build the entry and cut the schedules, atomically."""
    outcome = build_credit_entries([ctx])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _default_rule(entity: LegalEntity) -> PostingRule | None:
    return memoized(
        ("default_rule", entity.pk),
        lambda: PostingRule.objects.filter(legal_entity=entity).order_by("-effective_from").first(),
    )


def _contra_account(entity: LegalEntity, deferred_id: int, revenue_id: int) -> int | None:
    return memoized(
        ("contra_revenue", entity.pk, deferred_id, revenue_id),
        lambda: (
            PostingRule.objects.filter(
                legal_entity=entity,
                deferred_revenue_account=deferred_id,
                revenue_account=revenue_id,
            )
            .exclude(contra_revenue_account=None)
            .values_list("contra_revenue_account_id", flat=True)
            .first()
        ),
    )


@dataclass
class _Schedules:
    """The active schedules of a batch's credited invoice lines and their lines not
    cancelled, locked; a note's cuts are applied to these rows as it is accepted, so a later
    note of the batch sees them, as it would one by one."""

    by_ref: dict[str, RevenueSchedule]
    lines: dict[int, list[RevenueScheduleLine]]

    @classmethod
    def locked(cls, refs: set[str]) -> _Schedules:
        found = list(
            RevenueSchedule.objects.select_for_update(of=("self",))
            .filter(
                source_kind=RevenueSchedule.Source.INVOICE_LINE,
                source_ref__in=refs,
                state=RevenueSchedule.State.ACTIVE,
            )
            .order_by("pk")
        )
        # The first by the model's order (entity code, service start, id), as ``.first()``.
        found.sort(key=lambda r: (_entity(r.legal_entity_id).code, r.service_start, r.pk))
        by_ref: dict[str, RevenueSchedule] = {}
        for schedule in found:
            by_ref.setdefault(schedule.source_ref, schedule)
        lines: dict[int, list[RevenueScheduleLine]] = {r.pk: [] for r in by_ref.values()}
        for row in (
            RevenueScheduleLine.objects.select_for_update()
            .filter(schedule_id__in=list(lines))
            .exclude(state=RevenueScheduleLine.State.CANCELLED)
            .order_by("schedule_id", "period", "pk")
        ):
            lines[row.schedule_id].append(row)
        return cls(by_ref, lines)

    def open_lines(self, schedule: RevenueSchedule) -> list[RevenueScheduleLine]:
        return [
            r for r in self.lines[schedule.pk] if r.state != RevenueScheduleLine.State.CANCELLED
        ]


@dataclass
class _CreditPlan:
    spec: EntrySpec
    parts: list[CreditPart]
    cuts: dict[int, tuple[int, int]]
    earned_by_line: dict[int, int]


def _credit_plan(
    ctx: StepContext,
    note: CreditNote,
    invoice_entry: JournalEntry,
    schedules: _Schedules,
    open_from: dict[int, dt.date],
) -> _CreditPlan:
    """What one credit note posts and cuts, from the locked schedule rows; raises the
    note's defect. Changes nothing."""
    entity = invoice_entry.legal_entity
    accounts = entity_accounts(entity)
    if accounts is None:
        raise DataDefect(
            Cat.MISSING_POSTING_RULE,
            f"{entity.code} has no entity accounts (customer credit, cash); set them, then replay.",
            context={"entity": entity.code},
        )
    default_rule = _default_rule(entity)
    parts: list[CreditPart] = []
    cuts: dict[int, tuple[int, int]] = {}
    earned_by_line: dict[int, int] = {}
    missing_tax: list[str] = []
    taxes: dict[str, TaxPart] = {}
    for ln in note.lines.all():
        schedule = schedules.by_ref.get(ln.invoice_line_ref) if ln.invoice_line_ref else None
        if schedule is None:  # goodwill credit on no invoice line: all earned
            rule = default_rule
            parts.append(
                CreditPart(
                    net_minor=ln.net_minor,
                    deferred_account_id=rule.deferred_revenue_account_id,
                    revenue_account_id=rule.contra_revenue_account_id or rule.revenue_account_id,
                    earned_minor=ln.net_minor,
                    unearned_minor=0,
                    product_code="",
                    memo=ln.description[:200],
                )
            )
        else:
            rows = schedules.open_lines(schedule)
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
            rule_contra = _contra_account(
                entity, schedule.deferred_account_id, schedule.revenue_account_id
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
            tm = _tax_mapping(entity, t["rate_ref"])
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
    if entity.pk not in open_from:
        open_from[entity.pk] = first_open_period(entity)
    spec = EntrySpec(
        entity=entity,
        kind=JournalEntry.Kind.CREDIT_NOTE,
        journey=ctx.journey,
        posting_date=max(note.issued_at.date(), open_from[entity.pk]),
        currency=note.currency,
        fx_rate=invoice_entry.fx_rate,
        memo=f"Credit note {note} on {note.invoice_ref}",
        external_id=f"RCT-STRIPE-{note.source_id}",
        document_ref=note.invoice_ref,
        lines=drafts,
    )
    journal_entry_check(spec)
    return _CreditPlan(spec, parts, cuts, earned_by_line)


def build_credit_entries(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``build_entry`` for many journeys. A journey whose entry exists gets it back. For the
    others, in one transaction: the credited schedules and their lines locked in two queries,
    each note split over them in turn (a defect is that journey's outcome and cuts nothing;
    an accepted note's cuts are seen by the next), the schedule lines that changed written
    in one update, the entries and their lines inserted in one insert each. The only
    implementation: one journey's step is this with one context."""
    outcomes: list[dict[str, Any] | Exception] = [{} for _ in ctxs]
    existing: dict[int, int] = {}
    for journey_id, pk in JournalEntry.objects.filter(
        journey_id__in=[ctx.journey.pk for ctx in ctxs]
    ).values_list("journey_id", "pk"):
        existing.setdefault(journey_id, pk)
    todo: list[int] = []
    for i, ctx in enumerate(ctxs):
        if ctx.journey.pk in existing:
            outcomes[i] = {"entry_id": existing[ctx.journey.pk]}
        else:
            todo.append(i)
    if not todo:
        return outcomes
    notes = (
        CreditNote.objects.prefetch_related("lines")
        .order_by()
        .in_bulk([ctxs[i].data["credit_note_id"] for i in todo])
    )
    invoice_entries = (
        JournalEntry.objects.select_related("legal_entity")
        .order_by()
        .in_bulk([ctxs[i].data["invoice_entry_id"] for i in todo])
    )
    work: list[tuple[int, CreditNote, JournalEntry]] = []
    for i in todo:
        note = notes.get(ctxs[i].data["credit_note_id"])
        invoice_entry = invoice_entries.get(ctxs[i].data["invoice_entry_id"])
        if note is None or invoice_entry is None:
            outcomes[i] = DataDefect(
                Cat.AMOUNT_MISMATCH,
                "The credit note or the invoice entry it credits is no longer here; "
                "replay from validate.",
            )
        else:
            work.append((i, note, invoice_entry))
    if not work:
        return outcomes
    with transaction.atomic():
        schedules = _Schedules.locked(
            {ln.invoice_line_ref for _, note, _ in work for ln in note.lines.all()} - {""}
        )
        rows = {r.pk: r for lines in schedules.lines.values() for r in lines}
        changed: set[int] = set()
        plans: dict[int, _CreditPlan] = {}
        open_from: dict[int, dt.date] = {}
        for i, note, invoice_entry in work:
            try:
                plan = _credit_plan(ctxs[i], note, invoice_entry, schedules, open_from)
            except Exception as exc:
                outcomes[i] = exc
                continue
            for key, (cut, f_cut) in plan.cuts.items():
                row = rows[key]
                row.amount_minor -= cut
                row.functional_amount_minor -= f_cut
                if row.amount_minor == 0:
                    row.state = RevenueScheduleLine.State.CANCELLED
            for key, share in plan.earned_by_line.items():
                rows[key].credited_minor += share
            changed.update(plan.cuts, plan.earned_by_line)
            plans[i] = plan
        fields = ("amount_minor", "functional_amount_minor", "credited_minor", "state")
        rows_update(
            RevenueScheduleLine,
            fields,
            ((key, [getattr(rows[key], f) for f in fields]) for key in sorted(changed)),
        )
        entries = journal_entries_create([plan.spec for plan in plans.values()]) if plans else []
    for (i, plan), entry in zip(plans.items(), entries, strict=True):
        outcomes[i] = {
            "entry_id": entry.pk,
            "earned_minor": sum(p.earned_minor for p in plan.parts),
            "unearned_minor": sum(p.unearned_minor for p in plan.parts),
        }
    return outcomes


JOURNEY = JourneyType(
    name="credit_note",
    source_system="stripe",
    event_types=frozenset({"credit_note.created"}),
    steps=(
        StepDef(
            "validate",
            validate_credit_note,
            "Read the credit note; wait for its invoice",
            batch=validate_credit_notes,
        ),
        StepDef(
            "build_entry",
            build_credit_entry,
            "Split over schedules; build the entry",
            batch=build_credit_entries,
        ),
        *POSTING_STEPS,
    ),
    business_key=lambda env: env.object_id,
    aggregate_key=lambda env: f"stripe:{env.payload['data']['object'].get('invoice', '')}",
)
