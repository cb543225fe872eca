"""Writing journal entries: the one place entries and their lines are created."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction

from sync.accounting.entries import DraftLine, is_balanced
from sync.models import JournalEntry, JournalLine, LegalEntity
from sync.services.bulk import objs_insert, rows_insert


class UnbalancedEntry(ValueError):
    """The application refuses to write an entry that does not balance in both currencies."""


@dataclass(frozen=True)
class EntrySpec:
    """What ``journal_entry_create`` takes, for creating many entries at once."""

    entity: LegalEntity
    kind: str
    external_id: str
    posting_date: dt.date
    currency: str
    lines: Sequence[DraftLine]
    memo: str
    journey: Any = None
    fx_rate: Decimal | None = None
    reverses: JournalEntry | None = None
    document_ref: str = ""
    rule_versions: dict[str, Any] | None = None


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
    spec = EntrySpec(
        entity=entity,
        kind=kind,
        external_id=external_id,
        posting_date=posting_date,
        currency=currency,
        lines=lines,
        memo=memo,
        journey=journey,
        fx_rate=fx_rate,
        reverses=reverses,
        document_ref=document_ref,
        rule_versions=rule_versions,
    )
    return journal_entries_create([spec])[0]


def journal_entry_check(spec: EntrySpec) -> None:
    """Refuse an entry with no lines or that does not balance (``UnbalancedEntry``)."""
    if not spec.lines:
        raise UnbalancedEntry(f"entry {spec.external_id} has no lines")
    if not is_balanced(list(spec.lines)):
        raise UnbalancedEntry(f"entry {spec.external_id} does not balance")


_LINE_COLUMNS = (
    "entry_id",
    "line_no",
    "account_id",
    "debit_minor",
    "credit_minor",
    "functional_debit_minor",
    "functional_credit_minor",
    "memo",
    "customer_ref",
    "product_code",
    "tax_code",
)


def journal_entries_create(specs: Sequence[EntrySpec]) -> list[JournalEntry]:
    """Create many draft entries in one transaction: each checked first (one that does not
    balance refuses them all; check them with ``journal_entry_check`` to sort them out
    before), then one insert of the entries and one of all their lines."""
    for spec in specs:
        journal_entry_check(spec)
    with transaction.atomic():
        entries = [
            JournalEntry(
                legal_entity=spec.entity,
                kind=spec.kind,
                journey=spec.journey,
                posting_date=spec.posting_date,
                currency=spec.currency,
                functional_currency=spec.entity.functional_currency,
                fx_rate=spec.fx_rate,
                memo=spec.memo[:500],
                external_id=spec.external_id,
                erp_system="netsuite",
                reverses=spec.reverses,
                document_ref=spec.document_ref,
                rule_versions=spec.rule_versions or {},
            )
            for spec in specs
        ]
        objs_insert(entries)
        rows_insert(
            JournalLine,
            _LINE_COLUMNS,
            (
                (
                    entry.pk,
                    i,
                    d.account_id,
                    d.debit_minor,
                    d.credit_minor,
                    d.functional_debit_minor,
                    d.functional_credit_minor,
                    d.memo[:500],
                    d.customer_ref,
                    d.product_code,
                    d.tax_code,
                )
                for entry, spec in zip(entries, specs, strict=True)
                for i, d in enumerate(spec.lines, start=1)
            ),
        )
    return entries
