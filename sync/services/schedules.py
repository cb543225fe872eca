"""Revenue schedules for invoice lines, created with the entry that defers them."""

from __future__ import annotations

import datetime as dt
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
)
from sync.services.schedules_change import schedules_stop_if_ended


def _service_period(line: InvoiceLine, invoice_day: dt.date) -> tuple[dt.date, dt.date]:
    start = line.period_start.date() if line.period_start else invoice_day
    end = line.period_end.date() if line.period_end else start
    return start, end


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
    lines_by_id = InvoiceLine.objects.select_related("invoice").in_bulk(
        [p["invoice_line_id"] for p in revenue_parts]
    )
    made = []
    for part in revenue_parts:
        line = lines_by_id[part["invoice_line_id"]]
        start, end = _service_period(line, invoice_day)
        schedule = RevenueSchedule.objects.create(
            legal_entity=entity,
            source_kind=RevenueSchedule.Source.INVOICE_LINE,
            source_ref=line.source_id,
            invoice_line=line,
            journey=entry.journey,
            customer_ref=customer_ref,
            product_code=part["product_code"],
            revenue_type=part["revenue_type"],
            currency=currency,
            fx_rate=fx_rate,
            total_minor=part["net_minor"],
            deferred_account_id=part["deferred_account_id"],
            revenue_account_id=part["revenue_account_id"],
            service_start=start,
            service_end=end,
        )
        net = part["net_minor"]
        # What the invoice entry deferred in functional currency, to the cent; the schedule
        # lines share it exactly, so recognizing everything empties deferred revenue.
        functional_total = (
            convert_minor(net, fx_rate, currency, entity.functional_currency)
            if fx_rate is not None
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
        born_recognized = rt == RevenueType.POINT_IN_TIME  # the invoice credits revenue itself
        RevenueScheduleLine.objects.bulk_create(
            RevenueScheduleLine(
                schedule=schedule,
                period=month,
                amount_minor=amount,
                functional_amount_minor=f_amount,
                state=RevenueScheduleLine.State.RECOGNIZED
                if born_recognized
                else RevenueScheduleLine.State.PLANNED,
                recognized_period=month if born_recognized else None,
                recognition_entry=entry if born_recognized else None,
            )
            for (month, amount), f_amount in zip(months, functional, strict=True)
        )
        made.append(schedule)
    # A subscription whose cancellation was applied before this invoice arrived (a final
    # invoice, a late delivery) recognizes nothing after its last day of service here either.
    schedules_stop_if_ended(
        subscription_refs={line.invoice.subscription_ref for line in lines_by_id.values()},
        correlation_id=str(entry.journey.correlation_id) if entry.journey_id else "",
    )
    return made
