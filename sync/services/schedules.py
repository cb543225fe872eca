"""Revenue schedules for invoice lines, created with the entry that defers them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sync.accounting import schedules as calc
from sync.accounting.entries import convert_minor
from sync.accounting.recognition import spread_functional
from sync.models import (
    InvoiceLine,
    JournalEntry,
    LegalEntity,
    RevenueSchedule,
    RevenueScheduleLine,
    RevenueType,
    Subscription,
)
from sync.services.bulk import objs_insert, rows_insert
from sync.services.schedules_change import schedules_stop_if_ended


def _service_period(line: InvoiceLine, invoice_day: dt.date) -> tuple[dt.date, dt.date]:
    start = line.period_start.date() if line.period_start else invoice_day
    end = line.period_end.date() if line.period_end else start
    return start, end


@dataclass(frozen=True)
class InvoiceSchedules:
    """What ``schedules_create_for_invoice`` takes, for one invoice entry of many."""

    entity: LegalEntity
    entry: JournalEntry
    revenue_parts: list[dict[str, Any]]
    invoice_day: dt.date
    currency: str
    customer_ref: str
    fx_rate: Decimal | None


def schedules_create_for_invoice(
    *,
    entity: LegalEntity,
    entry: JournalEntry,
    revenue_parts: list[dict[str, Any]],
    invoice_day: dt.date,
    currency: str,
    customer_ref: str,
    fx_rate: Decimal | None,
) -> list[RevenueSchedule]:
    """One schedule per revenue part (invoice line), summing exactly to its net amount.
    Ratable lines spread by day over their service period; point-in-time lines are recognized
    by the invoice entry itself (their line is born recognized, pointing at it); on-delivery
    lines wait, with no month, for their delivery. Call inside the entry's transaction.
    """
    return schedules_create_for_invoices(
        [
            InvoiceSchedules(
                entity=entity,
                entry=entry,
                revenue_parts=revenue_parts,
                invoice_day=invoice_day,
                currency=currency,
                customer_ref=customer_ref,
                fx_rate=fx_rate,
            )
        ]
    )


def schedules_create_for_invoices(items: list[InvoiceSchedules]) -> list[RevenueSchedule]:
    """``schedules_create_for_invoice`` for many invoice entries: the invoice lines read in
    one query, the schedules inserted in one, their lines in one. An invoice whose
    subscription has already ended (a rare case) is done on its own afterwards, made and
    stopped in turn as one by one, so each stop is audited under its own journey. Call
    inside the entries' transaction."""
    lines_by_id = (
        InvoiceLine.objects.select_related("invoice")
        .order_by()
        .in_bulk([p["invoice_line_id"] for item in items for p in item.revenue_parts])
    )
    refs_by_item = [
        {lines_by_id[p["invoice_line_id"]].invoice.subscription_ref for p in item.revenue_parts}
        - {""}
        for item in items
    ]
    ended = set(
        Subscription.objects.filter(
            source_id__in={ref for refs in refs_by_item for ref in refs},
            service_ended_on__isnull=False,
        ).values_list("source_id", flat=True)
    )
    plain = [item for item, refs in zip(items, refs_by_item, strict=True) if not refs & ended]
    made = _schedules_insert(plain, lines_by_id)
    for item, refs in zip(items, refs_by_item, strict=True):
        if refs & ended:
            made += _schedules_insert([item], lines_by_id)
            # Cancellation applied before this invoice arrived (a final invoice, a late
            # delivery): it recognizes nothing after the last day of service here either.
            schedules_stop_if_ended(
                subscription_refs=refs,
                correlation_id=str(item.entry.journey.correlation_id)
                if item.entry.journey_id
                else "",
            )
    return made


def _schedules_insert(
    items: list[InvoiceSchedules], lines_by_id: dict[int, InvoiceLine]
) -> list[RevenueSchedule]:
    if not items:
        return []
    schedules: list[RevenueSchedule] = []
    planned: list[tuple[RevenueSchedule, list, list[int], bool, JournalEntry]] = []
    for item in items:
        entity, entry, invoice_day = item.entity, item.entry, item.invoice_day
        for part in item.revenue_parts:
            line = lines_by_id[part["invoice_line_id"]]
            start, end = _service_period(line, invoice_day)
            schedule = RevenueSchedule(
                legal_entity=entity,
                source_kind=RevenueSchedule.Source.INVOICE_LINE,
                source_ref=line.source_id,
                invoice_line=line,
                journey=entry.journey,
                customer_ref=item.customer_ref,
                product_code=part["product_code"],
                revenue_type=part["revenue_type"],
                currency=item.currency,
                fx_rate=item.fx_rate,
                total_minor=part["net_minor"],
                deferred_account_id=part["deferred_account_id"],
                revenue_account_id=part["revenue_account_id"],
                service_start=start,
                service_end=end,
            )
            net = part["net_minor"]
            # What the invoice entry deferred in functional currency, to the cent; the
            # schedule lines share it exactly, so recognizing everything empties deferred
            # revenue.
            functional_total = (
                convert_minor(net, item.fx_rate, item.currency, entity.functional_currency)
                if item.fx_rate is not None
                else net
            )
            rt = part["revenue_type"]
            if rt == RevenueType.RATABLE:
                months = calc.ratable(net, start, end)
            elif rt == RevenueType.POINT_IN_TIME:
                months = [(calc.month_start(invoice_day), net)]
            else:  # on delivery: no month until the delivery is recorded
                months = [(None, net)]
            functional = spread_functional([a for _, a in months], functional_total)
            born_recognized = rt == RevenueType.POINT_IN_TIME  # the invoice credits revenue
            schedules.append(schedule)
            planned.append((schedule, months, functional, born_recognized, entry))
    objs_insert(schedules)
    planned_state, recognized_state = (
        RevenueScheduleLine.State.PLANNED,
        RevenueScheduleLine.State.RECOGNIZED,
    )
    rows_insert(
        RevenueScheduleLine,
        (
            "schedule_id",
            "period",
            "amount_minor",
            "functional_amount_minor",
            "credited_minor",
            "state",
            "recognized_period",
            "recognition_entry_id",
        ),
        (
            (
                schedule.pk,
                month,
                amount,
                f_amount,
                0,
                recognized_state if born_recognized else planned_state,
                month if born_recognized else None,
                entry.pk if born_recognized and entry is not None else None,
            )
            for schedule, months, functional, born_recognized, entry in planned
            for (month, amount), f_amount in zip(months, functional, strict=True)
        ),
    )
    return schedules
