"""Revenue recognition runs as pure functions: Dr deferred revenue / Cr revenue for what falls due.

A run covers one legal entity, one month and one transaction currency. Every planned schedule
line that falls in the month is recognized: Dr deferred revenue / Cr revenue, aggregated per
(deferred account, revenue account, product). A negative net (a proration credit) flips the
sides: Dr revenue / Cr deferred revenue.

Late arrivals: a line whose month is already closed cannot post there; it is recognized in the
first open month (``target_period``), never in a closed one.

Foreign currency (IAS 21.23): deferred revenue is a non-monetary liability, carried at the
historical rate of the deferral and never revalued. Recognition releases it at that same rate,
so each item's functional amount is converted at its own historical rate and both lines of a
group carry the same functional sum: every entry balances in both currencies by construction.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sync.accounting.entries import DraftLine, convert_minor
from sync.accounting.schedules import allocate, month_start


@dataclass(frozen=True)
class DueAmount:
    """A planned schedule line to recognize.

    ``fx_rate`` is the historical rate of the deferral (functional units per transaction
    unit; ``None`` when the currencies are equal). ``functional_amount_minor``, when given,
    is the line's share of the deferral's functional carrying amount (see
    ``spread_functional``) and is used instead of converting at ``fx_rate``.
    """

    key: Hashable
    deferred_account_id: int
    revenue_account_id: int
    product_code: str
    period: date
    amount_minor: int
    currency: str
    fx_rate: Decimal | None
    functional_currency: str
    functional_amount_minor: int | None = None


def target_period(period: date, first_open: date) -> date:
    """The month a line of ``period`` is recognized in: its own month when open, otherwise
    the first open month (a late invoice for a closed month lands in the first open one)."""
    return max(month_start(period), month_start(first_open))


def due_in_run(
    items: Sequence[DueAmount], *, run_period: date, first_open: date
) -> list[DueAmount]:
    """The items a run for ``run_period`` recognizes: those whose target period it is.

    The run for the first open month also takes every earlier planned line that closed months
    left behind. A closed month takes nothing: ValueError.
    """
    run = month_start(run_period)
    if run < month_start(first_open):
        raise ValueError(f"{run:%Y-%m} is closed; the first open period is {first_open:%Y-%m}")
    return [it for it in items if target_period(it.period, first_open) == run]


def spread_functional(amounts_minor: Sequence[int], functional_total_minor: int) -> list[int]:
    """Split a deferral's functional carrying amount over its schedule lines.

    Largest remainder in proportion to the transaction amounts (which must share one sign),
    so the functional shares sum exactly to what the invoice deferred: recognizing the whole
    schedule then empties deferred revenue in functional currency too, with no stray cent
    that converting each line separately could leave.
    """
    if any(a > 0 for a in amounts_minor) and any(a < 0 for a in amounts_minor):
        raise ValueError("schedule amounts must share one sign")
    weights = [abs(a) for a in amounts_minor]
    if functional_total_minor == 0:
        return [0] * len(weights)
    return allocate(functional_total_minor, weights)


def _functional(item: DueAmount) -> int:
    if item.functional_amount_minor is not None:
        return item.functional_amount_minor
    if item.currency == item.functional_currency:
        return item.amount_minor
    if item.fx_rate is None:
        raise ValueError(
            f"item {item.key!r}: the deferral's {item.currency}->{item.functional_currency} "
            "rate is required"
        )
    return convert_minor(item.amount_minor, item.fx_rate, item.currency, item.functional_currency)


def _pair(
    deferred_id: int, revenue_id: int, txn: int, func: int, product: str, memo: str
) -> list[DraftLine]:
    """Dr deferred / Cr revenue for a non-negative (txn, func); flipped for a non-positive."""
    a, f = abs(txn), abs(func)
    dr, cr = (
        (deferred_id, revenue_id)
        if txn > 0 or (txn == 0 and func > 0)
        else (
            revenue_id,
            deferred_id,
        )
    )
    return [
        DraftLine(dr, a, 0, f, 0, memo=memo, product_code=product),
        DraftLine(cr, 0, a, 0, f, memo=memo, product_code=product),
    ]


def recognition_lines(
    items: Sequence[DueAmount],
    *,
    currency: str,
    functional_currency: str,
    memo: str = "Revenue recognition",
) -> list[DraftLine]:
    """Dr deferred revenue / Cr revenue per (deferred account, revenue account, product).

    Groups come out in key order whatever the order of ``items``, and the result is additive:
    recognizing a subset and then the rest posts, per account, exactly what recognizing all at
    once does. A group whose net is zero in both currencies is omitted. In the rare group whose
    transaction and functional nets have opposite signs (items at different historical rates
    that nearly cancel), the functional amounts post on a pair of their own, so no line is
    ever two-sided.
    """
    groups: dict[tuple[int, int, str], list[int]] = {}
    for it in items:
        if it.currency != currency or it.functional_currency != functional_currency:
            raise ValueError(
                f"item {it.key!r} is {it.currency}->{it.functional_currency}, "
                f"not {currency}->{functional_currency}"
            )
        totals = groups.setdefault(
            (it.deferred_account_id, it.revenue_account_id, it.product_code), [0, 0]
        )
        totals[0] += it.amount_minor
        totals[1] += _functional(it)
    lines: list[DraftLine] = []
    for (deferred_id, revenue_id, product), (txn, func) in sorted(groups.items()):
        if txn == 0 and func == 0:
            continue
        if txn * func >= 0:
            lines += _pair(deferred_id, revenue_id, txn, func, product, memo)
        else:
            lines += _pair(deferred_id, revenue_id, txn, 0, product, memo)
            lines += _pair(deferred_id, revenue_id, 0, func, product, memo)
    return lines
