"""Writing journal entries: the one place entries and their lines are created."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db import transaction

from sync.accounting.entries import DraftLine, is_balanced
from sync.models import JournalEntry, JournalLine, LegalEntity


class UnbalancedEntry(ValueError):
    """The application refuses to write an entry that does not balance in both currencies."""


def journal_entry_create(
    *,
    entity: LegalEntity,
    kind: str,
    external_id: str,
    posting_date: dt.date,
    currency: str,
    lines: Sequence[DraftLine],
    memo: str,
    journey: Any = None,
    fx_rate: Decimal | None = None,
    reverses: JournalEntry | None = None,
    document_ref: str = "",
    rule_versions: dict[str, Any] | None = None,
) -> JournalEntry:
    """Create a draft entry with its lines, checked balanced in both currencies first (the
    PostgreSQL trigger checks again at commit). Posting is the ERP step's job."""
    if not lines:
        raise UnbalancedEntry(f"entry {external_id} has no lines")
    if not is_balanced(list(lines)):
        raise UnbalancedEntry(f"entry {external_id} does not balance")
    with transaction.atomic():
        entry = JournalEntry.objects.create(
            legal_entity=entity,
            kind=kind,
            journey=journey,
            posting_date=posting_date,
            currency=currency,
            functional_currency=entity.functional_currency,
            fx_rate=fx_rate,
            memo=memo[:500],
            external_id=external_id,
            erp_system="netsuite",
            reverses=reverses,
            document_ref=document_ref,
            rule_versions=rule_versions or {},
        )
        JournalLine.objects.bulk_create(
            JournalLine(
                entry=entry,
                line_no=i,
                account_id=d.account_id,
                debit_minor=d.debit_minor,
                credit_minor=d.credit_minor,
                functional_debit_minor=d.functional_debit_minor,
                functional_credit_minor=d.functional_credit_minor,
                memo=d.memo[:500],
                customer_ref=d.customer_ref,
                product_code=d.product_code,
                tax_code=d.tax_code,
            )
            for i, d in enumerate(lines, start=1)
        )
    return entry
