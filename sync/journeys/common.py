"""Steps every posting journey shares: post the entry to the ERP, then confirm it there."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from connectors.base import LedgerEntry, LedgerLine
from connectors.currency import exponent
from sync.errors import DataDefect
from sync.journeys import StepContext, StepDef
from sync.models import ExceptionCase, GLAccount, JournalEntry

Cat = ExceptionCase.Category


def ledger_entry_for(entry: JournalEntry) -> LedgerEntry:
    """The canonical entry the ERP connector posts."""
    numbers = dict(
        GLAccount.objects.filter(pk__in=entry.lines.values("account_id")).values_list(
            "pk", "number"
        )
    )
    return LedgerEntry(
        external_id=entry.external_id,
        subsidiary=entry.legal_entity.netsuite_subsidiary_id,
        currency=entry.currency,
        exponent=exponent(entry.currency),
        tran_date=entry.posting_date,
        memo=entry.memo,
        lines=tuple(
            LedgerLine(
                account=numbers[ln.account_id],
                debit_minor=ln.debit_minor,
                credit_minor=ln.credit_minor,
                memo=ln.memo,
                customer_ref=ln.customer_ref,
                product_ref=ln.product_code,
                tax_code=ln.tax_code,
            )
            for ln in entry.lines.all()
            if ln.debit_minor or ln.credit_minor
        ),
    )


def post_entry(ctx: StepContext) -> dict[str, Any]:
    """Post the entry under its external id. Exactly once: a posted entry is never sent again,
    and after an attempt with an unknown outcome the ERP is read back before writing."""
    from sync.services.connectors import erp_connector

    if not ctx.data.get("entry_id"):
        return {"skipped": "nothing to post"}
    entry = JournalEntry.objects.select_related("legal_entity").get(pk=ctx.data["entry_id"])
    if entry.state == JournalEntry.State.POSTED:
        return {"erp_document_id": entry.erp_document_id, "already_posted": True}
    erp = erp_connector(entry.erp_system)
    result = None
    if ctx.step.attempts > 1 or entry.state == JournalEntry.State.POSTING:
        result = erp.find_journal_entry(entry.external_id)
    if result is None:
        JournalEntry.objects.filter(pk=entry.pk, state=JournalEntry.State.DRAFT).update(
            state=JournalEntry.State.POSTING
        )
        result = erp.post_journal_entry(ledger_entry_for(entry))
    JournalEntry.objects.filter(pk=entry.pk).exclude(state=JournalEntry.State.POSTED).update(
        state=JournalEntry.State.POSTED,
        erp_document_id=result.document_id,
        posted_at=timezone.now(),
    )
    return {"erp_document_id": result.document_id}


def confirm_in_erp(ctx: StepContext) -> dict[str, Any]:
    """Read the entry back from the ERP and check it holds what we posted."""
    from sync.services.connectors import erp_connector

    if not ctx.data.get("entry_id"):
        return {"skipped": "nothing to post"}
    entry = JournalEntry.objects.get(pk=ctx.data["entry_id"])
    found = erp_connector(entry.erp_system).find_journal_entry(entry.external_id)
    if found is None or found.document_id != entry.erp_document_id:
        raise DataDefect(
            Cat.AMOUNT_MISMATCH,
            f"The ERP does not hold entry {entry.external_id} as document "
            f"{entry.erp_document_id} (it answered {found.document_id if found else 'nothing'}).",
            context={"external_id": entry.external_id},
        )
    return {"erp_confirmed": True}


POSTING_STEPS = (
    StepDef("post_entry", post_entry, "Post to the ERP under the external id", "netsuite"),
    StepDef("confirm_in_erp", confirm_in_erp, "Read the entry back from the ERP", "netsuite"),
)
