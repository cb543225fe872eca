"""Credit notes as pure functions: how a credit splits over a line's schedule, and its entry.

ASC 606 / IFRS 15, as Stripe Revenue Recognition and NetSuite ARM treat a credit note: the
credit carries the same service period as the invoice line it credits, so it is spread over
that line's schedule in proportion to each scheduled amount.

* The share falling on amounts already **recognized** is *earned*: it reverses revenue, so it
  is debited to revenue (or to a contra-revenue account, when the posting rule names one).
* The share falling on amounts still **planned** is *unearned*: it reverses deferred revenue
  (Dr deferred) and cuts those planned schedule lines by the same amounts.
* Tax on the credit reverses tax payable (Dr tax payable).
* The customer side depends on timing. Before payment the credit reduces the receivable
  (Cr AR). After payment there is no receivable left to reduce: the customer is owed money,
  which is a liability (Cr customer credit balance). A refund, if one is paid out, is a
  separate entry that moves it from the customer credit balance to cash
  (``payments.refund_lines``: Dr customer credit / Cr cash).

Amounts are integer minor units; functional amounts use the original invoice's rate.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from sync.accounting.entries import (
    DraftLine,
    TaxPart,
    UnbalancedPlan,
    convert_minor,
    signed_line,
    with_functional_amounts,
    with_rounding_line,
)
from sync.accounting.schedules import allocate

CreditTiming = Literal["pre_payment", "post_payment"]


@dataclass(frozen=True)
class ScheduledAmount:
    """One line of the credited invoice line's schedule, as it stands now."""

    key: Hashable
    period: date | None
    amount_minor: int
    recognized: bool


@dataclass(frozen=True)
class CreditSplit:
    """A credit's share of recognized (earned) and planned (unearned) schedule amounts.

    ``reductions`` maps each planned key the credit touches to the amount it cuts from that
    line: same sign as the planned amount, never larger in magnitude. ``earned_shares`` does
    the same for recognized keys: the revenue the credit reverses per recognized line (what
    remains creditable on it for a later credit note). Keys with a zero share are absent.
    """

    earned_minor: int
    unearned_minor: int
    reductions: dict[Hashable, int]
    earned_shares: dict[Hashable, int] = field(default_factory=dict)


def split_credit(credit_net_minor: int, schedule: Sequence[ScheduledAmount]) -> CreditSplit:
    """Spread a credit over the credited line's schedule, in proportion to each amount.

    Rounding is by largest remainder (``schedules.allocate``; the earliest listed line wins a
    tie), so the shares sum exactly to the credit and no share exceeds the amount it falls on.
    The shares on recognized amounts add up to ``earned_minor`` (per key in
    ``earned_shares``); those on planned ones to ``unearned_minor`` (per key in
    ``reductions``: cut them from the planned lines).

    ``schedule`` is what remains creditable: the line's schedule after earlier credits. Its
    amounts must share one sign (a line's schedule does), the credit must have that sign too
    (or be zero) and must not exceed the schedule's sum in magnitude; otherwise ValueError.
    """
    keys = [s.key for s in schedule]
    if len(set(keys)) != len(keys):
        raise ValueError("schedule keys must be unique")
    amounts = [s.amount_minor for s in schedule]
    if any(a > 0 for a in amounts) and any(a < 0 for a in amounts):
        raise ValueError("schedule amounts must share one sign")
    creditable = sum(amounts)
    if credit_net_minor == 0:
        return CreditSplit(0, 0, {})
    if creditable == 0 or (credit_net_minor > 0) != (creditable > 0):
        raise ValueError(
            f"a credit of {credit_net_minor} does not fit a schedule of {creditable} "
            "(nothing, or the opposite sign, remains creditable)"
        )
    if abs(credit_net_minor) > abs(creditable):
        raise ValueError(
            f"the credit of {credit_net_minor} exceeds the {creditable} that remains creditable"
        )
    shares = allocate(credit_net_minor, [abs(a) for a in amounts])
    paired = [(s, share) for s, share in zip(schedule, shares, strict=True) if share]
    earned_shares = {s.key: share for s, share in paired if s.recognized}
    reductions = {s.key: share for s, share in paired if not s.recognized}
    earned = sum(earned_shares.values())
    return CreditSplit(
        earned_minor=earned,
        unearned_minor=credit_net_minor - earned,
        reductions=reductions,
        earned_shares=earned_shares,
    )


@dataclass(frozen=True)
class CreditPart:
    """One credit note line: its net split into earned and unearned, and where each goes.

    ``revenue_account_id`` is the posting rule's contra-revenue account when it has one,
    otherwise its revenue account. ``unearned_functional_minor``, when given, is the
    functional carrying amount of the deferred revenue released (``functional_reductions``)
    and replaces converting ``unearned_minor`` at the invoice rate, so deferred revenue can
    empty exactly in functional currency too.
    """

    net_minor: int
    deferred_account_id: int
    revenue_account_id: int
    earned_minor: int
    unearned_minor: int
    product_code: str
    memo: str = ""
    unearned_functional_minor: int | None = None


def functional_reductions(
    reductions: Mapping[Hashable, int],
    planned: Mapping[Hashable, tuple[int, int]],
) -> dict[Hashable, int]:
    """The functional carrying amount released by each cut of a planned line.

    ``planned`` maps each key to its (amount, functional carrying amount). A cut takes the
    same proportion of the carrying amount (half to even); cutting a whole line takes all of
    it, so the line's functional amount never strays from zero once nothing is left of it.
    """
    out: dict[Hashable, int] = {}
    for key, cut in reductions.items():
        amount, functional = planned[key]
        if cut == amount:
            out[key] = functional
        else:
            share = Decimal(functional) * cut / amount
            out[key] = int(share.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    return out


def credit_note_lines(
    *,
    parts: Sequence[CreditPart],
    taxes: Sequence[TaxPart],
    total_minor: int,
    timing: CreditTiming,
    ar_account_id: int,
    customer_credit_account_id: int,
    currency: str,
    functional_currency: str,
    fx_rate: Decimal | None,
    rounding_account_id: int | None,
    customer_ref: str,
    memo: str,
) -> list[DraftLine]:
    """The credit note's entry: Dr deferred (unearned) + Dr revenue or contra (earned) per
    part + Dr tax payable per tax / Cr AR (pre-payment) or Cr customer credit (post-payment).

    A post-payment credit leaves the money owed to the customer on the customer credit
    balance; paying it back is a later refund entry (Dr customer credit / Cr cash).

    Functional amounts are at ``fx_rate``, the original invoice's rate, so the entry reverses
    the invoice at the amounts the invoice booked; a rounding residual goes to
    ``rounding_account_id``. Raises ``UnbalancedPlan`` when a part's earned + unearned is not
    its net, or parts + taxes do not add up to ``total_minor``.
    """
    if timing not in ("pre_payment", "post_payment"):
        raise ValueError(f"unknown credit note timing {timing!r}")
    for p in parts:
        if p.earned_minor + p.unearned_minor != p.net_minor:
            raise UnbalancedPlan(
                f"{p.product_code}: earned {p.earned_minor} + unearned {p.unearned_minor} "
                f"is not the net {p.net_minor}"
            )
    parts_total = sum(p.net_minor for p in parts) + sum(t.amount_minor for t in taxes)
    if parts_total != total_minor:
        raise UnbalancedPlan(
            f"credit lines and taxes add up to {parts_total} but the credit note total is "
            f"{total_minor}"
        )
    lines: list[DraftLine] = []
    overrides: dict[int, int] = {}  # line index -> functional amount (signed like the line's)
    for p in parts:
        uf = p.unearned_functional_minor
        if uf is not None and (uf * p.unearned_minor < 0 or (uf and not p.unearned_minor)):
            raise ValueError(
                f"{p.product_code}: the unearned functional amount {uf} does not match "
                f"the unearned {p.unearned_minor}"
            )
        for account_id, amount, functional in (
            (p.deferred_account_id, p.unearned_minor, uf),
            (p.revenue_account_id, p.earned_minor, None),
        ):
            if not amount:
                continue
            if functional is not None:
                overrides[len(lines)] = functional
            lines.append(
                signed_line(
                    account_id,
                    amount,
                    credit_natured=False,
                    memo=p.memo or memo,
                    product_code=p.product_code,
                    customer_ref=customer_ref,
                )
            )
    for t in taxes:
        if t.amount_minor:
            lines.append(
                signed_line(
                    t.account_id,
                    t.amount_minor,
                    credit_natured=False,
                    memo=t.memo or memo,
                    tax_code=t.tax_code,
                )
            )
    counter = ar_account_id if timing == "pre_payment" else customer_credit_account_id
    if total_minor:
        lines.append(
            signed_line(
                counter, total_minor, credit_natured=True, memo=memo, customer_ref=customer_ref
            )
        )
    if currency == functional_currency or not overrides:
        return with_functional_amounts(
            lines,
            currency=currency,
            functional_currency=functional_currency,
            fx_rate=fx_rate,
            rounding_account_id=rounding_account_id,
        )
    if fx_rate is None:
        raise ValueError(f"an FX rate {currency}->{functional_currency} is required")
    filled = []
    for i, ln in enumerate(lines):
        amount = ln.debit_minor or ln.credit_minor
        f = (
            abs(overrides[i])
            if i in overrides
            else convert_minor(amount, fx_rate, currency, functional_currency)
        )
        filled.append(
            replace(
                ln,
                functional_debit_minor=f if ln.debit_minor else 0,
                functional_credit_minor=f if ln.credit_minor else 0,
            )
        )
    return with_rounding_line(
        filled, rounding_account_id=rounding_account_id, functional_currency=functional_currency
    )
