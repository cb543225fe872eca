"""Balanced journal lines for an invoice, in transaction and functional currency.

Debits and credits are non-negative integers of minor units. A negative amount (a proration
credit, a discount line) flips its side instead of posting a negative number. Functional
amounts are each rounded half-to-even from the transaction amount; any residual that leaves
the functional side unbalanced goes to the entity's FX rounding account, so both currencies
always balance exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal

from connectors.currency import exponent


class UnbalancedPlan(ValueError):
    """The document's parts do not add up to its total."""


class MissingRoundingAccount(ValueError):
    """A functional-currency rounding residual exists but no account is configured for it."""


@dataclass(frozen=True)
class DraftLine:
    account_id: int
    debit_minor: int
    credit_minor: int
    functional_debit_minor: int = 0
    functional_credit_minor: int = 0
    memo: str = ""
    product_code: str = ""
    tax_code: str = ""
    customer_ref: str = ""


@dataclass(frozen=True)
class RevenuePart:
    """An invoice line's net amount and the account it is credited to."""

    net_minor: int
    account_id: int
    memo: str
    product_code: str


@dataclass(frozen=True)
class TaxPart:
    amount_minor: int
    account_id: int
    tax_code: str
    memo: str


@dataclass(frozen=True)
class InvoicePlan:
    total_minor: int
    currency: str
    functional_currency: str
    fx_rate: Decimal | None  # functional units per transaction unit; None when equal
    ar_account_id: int
    rounding_account_id: int | None
    customer_ref: str
    memo: str
    revenue: tuple[RevenuePart, ...]
    taxes: tuple[TaxPart, ...]
    #: Where a net-negative invoice (a downgrade proration, say) is credited. ``None`` keeps
    #: the historical behaviour: the negative total is credited to AR.
    customer_credit_account_id: int | None = None


def convert_minor(amount_minor: int, rate: Decimal, from_currency: str, to_currency: str) -> int:
    """Convert minor units across currencies at ``rate``, rounding half to even."""
    shift = exponent(to_currency) - exponent(from_currency)
    value = Decimal(amount_minor) * rate * (Decimal(10) ** shift)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _signed(account_id: int, amount: int, *, credit_natured: bool, **kw: str) -> DraftLine:
    # A credit-natured amount that is negative is posted as a debit of its absolute value.
    to_credit = (amount >= 0) == credit_natured
    a = abs(amount)
    return DraftLine(account_id, 0 if to_credit else a, a if to_credit else 0, **kw)


def signed_line(account_id: int, amount: int, *, credit_natured: bool, **kw: str) -> DraftLine:
    """One transaction-currency line: ``amount`` on its natural side, or, when negative, its
    absolute value on the other side (so no line ever carries a negative number)."""
    return _signed(account_id, amount, credit_natured=credit_natured, **kw)


def build_invoice_lines(plan: InvoicePlan) -> list[DraftLine]:
    """Dr AR for the total; Cr revenue or deferred revenue per line; Cr tax payable per tax.

    A net-negative invoice (prorations that credit more than they charge) owes the customer
    money: with ``plan.customer_credit_account_id`` set, its total is credited to that
    customer credit balance (a liability) instead of AR, never to revenue.
    """
    parts_total = sum(p.net_minor for p in plan.revenue) + sum(t.amount_minor for t in plan.taxes)
    if parts_total != plan.total_minor:
        raise UnbalancedPlan(
            f"lines and taxes add up to {parts_total} but the invoice total is {plan.total_minor}"
        )
    counter_account_id = plan.ar_account_id
    if plan.total_minor < 0 and plan.customer_credit_account_id is not None:
        counter_account_id = plan.customer_credit_account_id
    lines = [
        _signed(
            counter_account_id,
            plan.total_minor,
            credit_natured=False,
            memo=plan.memo,
            customer_ref=plan.customer_ref,
        )
    ]
    for p in plan.revenue:
        if p.net_minor:
            lines.append(
                _signed(
                    p.account_id,
                    p.net_minor,
                    credit_natured=True,
                    memo=p.memo,
                    product_code=p.product_code,
                    customer_ref=plan.customer_ref,
                )
            )
    for t in plan.taxes:
        if t.amount_minor:
            lines.append(
                _signed(
                    t.account_id,
                    t.amount_minor,
                    credit_natured=True,
                    memo=t.memo,
                    tax_code=t.tax_code,
                )
            )
    return with_functional_amounts(
        lines,
        currency=plan.currency,
        functional_currency=plan.functional_currency,
        fx_rate=plan.fx_rate,
        rounding_account_id=plan.rounding_account_id,
    )


def with_functional_amounts(
    lines: list[DraftLine],
    *,
    currency: str,
    functional_currency: str,
    fx_rate: Decimal | None,
    rounding_account_id: int | None,
) -> list[DraftLine]:
    """Fill the functional-currency amounts and add a rounding line if one is needed."""
    if currency == functional_currency:
        return [
            replace(
                ln, functional_debit_minor=ln.debit_minor, functional_credit_minor=ln.credit_minor
            )
            for ln in lines
        ]
    if fx_rate is None:
        raise ValueError(f"an FX rate {currency}->{functional_currency} is required")
    out = [
        replace(
            ln,
            functional_debit_minor=convert_minor(
                ln.debit_minor, fx_rate, currency, functional_currency
            ),
            functional_credit_minor=convert_minor(
                ln.credit_minor, fx_rate, currency, functional_currency
            ),
        )
        for ln in lines
    ]
    residual = sum(ln.functional_debit_minor for ln in out) - sum(
        ln.functional_credit_minor for ln in out
    )
    if residual:
        if rounding_account_id is None:
            raise MissingRoundingAccount(
                f"converting to {functional_currency} leaves a rounding difference of {residual}"
            )
        out.append(
            DraftLine(
                rounding_account_id,
                0,
                0,
                functional_debit_minor=-residual if residual < 0 else 0,
                functional_credit_minor=residual if residual > 0 else 0,
                memo="FX rounding",
            )
        )
    return out


def with_rounding_line(
    lines: list[DraftLine], *, rounding_account_id: int | None, functional_currency: str
) -> list[DraftLine]:
    """``lines`` plus, if their functional amounts do not balance, a functional-only line on
    ``rounding_account_id`` for the residual (``MissingRoundingAccount`` when there is none)."""
    residual = sum(ln.functional_debit_minor for ln in lines) - sum(
        ln.functional_credit_minor for ln in lines
    )
    if not residual:
        return list(lines)
    if rounding_account_id is None:
        raise MissingRoundingAccount(
            f"converting to {functional_currency} leaves a rounding difference of {residual}"
        )
    return [
        *lines,
        DraftLine(
            rounding_account_id,
            0,
            0,
            functional_debit_minor=-residual if residual < 0 else 0,
            functional_credit_minor=residual if residual > 0 else 0,
            memo="FX rounding",
        ),
    ]


def is_balanced(lines: list[DraftLine]) -> bool:
    return sum(ln.debit_minor for ln in lines) == sum(ln.credit_minor for ln in lines) and sum(
        ln.functional_debit_minor for ln in lines
    ) == sum(ln.functional_credit_minor for ln in lines)
