"""Revenue schedules as pure functions: how a line's amount spreads over calendar months.

* Ratable lines spread over their service period **by day**: each month gets the share of the
  amount that its days in the period bear to the period's days.
* Point-in-time lines (usage billed in arrears, one-off fees) fall in the invoice month.
* Rounding is by largest remainder, so a schedule always sums exactly to the line amount,
  negative amounts (proration credits) included.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` minor units in proportion to non-negative integer ``weights``.

    Largest remainder: each part gets the floor of its exact share (toward zero for negative
    totals), then the units left over go one each to the largest remainders (earliest first
    on ties). The parts always sum exactly to ``total``.
    """
    if not weights or any(w < 0 for w in weights):
        raise ValueError("weights must be non-empty and non-negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise ValueError("weights must not all be zero")
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    floors = [magnitude * w // weight_sum for w in weights]
    remainders = [magnitude * w % weight_sum for w in weights]
    left = magnitude - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        floors[i] += 1
    return [sign * f for f in floors]


def ratable(amount_minor: int, start: dt.date, end: dt.date) -> list[tuple[dt.date, int]]:
    """Spread ``amount_minor`` over ``[start, end)`` by day into calendar months.

    Returns ``(month start, amount)`` pairs in order; a one-day (or empty) period falls
    wholly in the month of ``start``.
    """
    if end <= start:
        return [(month_start(start), amount_minor)]
    months: list[dt.date] = []
    days: list[int] = []
    cursor = start
    while cursor < end:
        boundary = min(next_month(cursor), end)
        months.append(month_start(cursor))
        days.append((boundary - cursor).days)
        cursor = boundary
    return list(zip(months, allocate(amount_minor, days), strict=True))


def point_in_time(amount_minor: int, on: dt.date) -> list[tuple[dt.date, int]]:
    return [(month_start(on), amount_minor)]
