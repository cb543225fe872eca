"""Monthly recurring revenue (MRR) of a subscription, as pure functions.

MRR is what the subscription's licensed items bill, normalised to one month: unit amount x
billed units, divided by the interval's length in months (a year is 12 months, a week 12/52
of a month, a day 12/365; ``interval_count`` multiplies the length). It is an integer of minor
units per month of the subscription's currency, summed exactly and rounded half-even once.

Not part of MRR, and reported separately so nobody mistakes an omission for a zero:

* metered (usage) items: what they bill depends on consumption, which is revenue at
  consumption (usage_overage), not recurring revenue;
* items without a unit amount (tiered prices): their monthly amount depends on the tiers,
  which a subscription event does not carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

# One interval of each kind, in months.
_MONTHS = {
    "month": Decimal(1),
    "year": Decimal(12),
    "week": Decimal(12) / Decimal(52),
    "day": Decimal(12) / Decimal(365),
}


@dataclass(frozen=True)
class PricedItem:
    price_ref: str
    quantity: int
    unit_amount: Decimal | None  # minor units per unit; None when the price has none
    interval: str  # day | week | month | year; "" for a one-time price
    interval_count: int = 1
    metered: bool = False
    divide_by: int = 1
    round_up: bool = True


@dataclass(frozen=True)
class Mrr:
    """A subscription's MRR and what it leaves out."""

    minor: int
    metered: tuple[str, ...] = ()  # price refs of metered items (usage, not MRR)
    unpriced: tuple[str, ...] = ()  # price refs with no unit amount (tiered)

    @property
    def complete(self) -> bool:
        """True when every licensed item could be priced."""
        return not self.unpriced


def billed_units(item: PricedItem) -> Decimal:
    """Units billed for ``quantity`` (``transform_quantity``: divided, then rounded)."""
    if item.divide_by == 1:
        return Decimal(item.quantity)
    rounding = ROUND_CEILING if item.round_up else ROUND_FLOOR
    return (Decimal(item.quantity) / item.divide_by).to_integral_value(rounding=rounding)


def item_monthly(item: PricedItem) -> Decimal:
    """The item's exact (unrounded) amount per month; 0 for a one-time price."""
    months = _MONTHS.get(item.interval)
    if months is None or item.unit_amount is None:
        return Decimal(0)
    return item.unit_amount * billed_units(item) / (months * item.interval_count)


def mrr(items: Iterable[PricedItem]) -> Mrr:
    """The MRR of ``items`` (minor units per month), with metered and unpriced items listed."""
    total = Decimal(0)
    metered: list[str] = []
    unpriced: list[str] = []
    for item in items:
        if item.metered:
            metered.append(item.price_ref)
        elif item.unit_amount is None:
            unpriced.append(item.price_ref)
        else:
            total += item_monthly(item)
    minor = int(total.to_integral_value(rounding=ROUND_HALF_EVEN))
    return Mrr(minor=minor, metered=tuple(metered), unpriced=tuple(unpriced))
