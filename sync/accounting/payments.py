"""Payments, refunds, disputes and write-offs as pure functions: balanced lines in transaction
and functional currency.

A payment settles the receivable: Dr cash (or the processor's clearing account) for what the
processor pays out, Dr processor fees for what it keeps, Cr AR for the part of the payment the
open receivable absorbs, and Cr customer credit balance (a liability) for any overpayment.
A partial payment simply leaves the rest of the receivable open.

Foreign currency (IAS 21 / ASC 830): AR is a monetary item carried at the invoice-date rate.
Relieving it takes it off at that carrying amount, while cash, fees and any customer credit
come in at the settlement-date rate. The difference on the AR settled is a realized exchange
difference, posted to FX gain/loss (a gain is a credit, a loss a debit). Each amount is
rounded half-to-even on its own, so a residual of a minor unit or two can remain: it goes to
the entity's rounding account, and both currencies always balance exactly.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from sync.accounting.entries import (
    DraftLine,
    convert_minor,
    signed_line,
    with_rounding_line,
)

RefundSource = Literal["customer_credit", "ar"]


def _need_rate(rate: Decimal | None, what: str, currency: str, functional: str) -> Decimal:
    if rate is None:
        raise ValueError(f"the {what} rate {currency}->{functional} is required")
    return rate


def _with_functional(line: DraftLine, functional_minor: int) -> DraftLine:
    """``line`` with ``functional_minor`` (non-negative) on the same side as its amount."""
    on_credit = line.credit_minor > 0
    return replace(
        line,
        functional_debit_minor=0 if on_credit else functional_minor,
        functional_credit_minor=functional_minor if on_credit else 0,
    )


def _functional_only(account_id: int, credit_minor: int, memo: str) -> DraftLine:
    """A functional-currency-only line: positive is a credit, negative a debit."""
    return DraftLine(
        account_id,
        0,
        0,
        functional_debit_minor=-credit_minor if credit_minor < 0 else 0,
        functional_credit_minor=credit_minor if credit_minor > 0 else 0,
        memo=memo,
    )


def _close(
    lines: list[DraftLine],
    *,
    fx_gain_minor: int,
    fx_account_id: int,
    rounding_account_id: int | None,
    functional_currency: str,
) -> list[DraftLine]:
    """Append the FX gain/loss line, then a rounding line for whatever still unbalances."""
    out = list(lines)
    if fx_gain_minor:
        out.append(_functional_only(fx_account_id, fx_gain_minor, "FX gain/loss"))
    return with_rounding_line(
        out, rounding_account_id=rounding_account_id, functional_currency=functional_currency
    )


def carrying_relief(
    applied_minor: int,
    *,
    open_minor: int,
    open_functional_minor: int | None,
    rate: Decimal | None,
    currency: str,
    functional_currency: str,
) -> int:
    """Functional carrying amount of ``applied_minor`` out of an open balance.

    With the balance's functional carrying amount known, the share is proportional to it
    (half-to-even), so settling the whole balance relieves exactly what was booked, however
    many partial settlements it took. Otherwise ``applied_minor`` is converted at ``rate``.
    """
    if open_functional_minor is not None and open_minor:
        share = Decimal(open_functional_minor) * applied_minor / open_minor
        return int(share.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    return convert_minor(
        applied_minor,
        _need_rate(rate, "carrying", currency, functional_currency),
        currency,
        functional_currency,
    )


def payment_lines(
    *,
    amount_minor: int,
    fee_minor: int,
    open_ar_minor: int,
    currency: str,
    functional_currency: str,
    invoice_rate: Decimal | None,
    settlement_rate: Decimal | None,
    cash_account_id: int,
    fee_account_id: int,
    ar_account_id: int,
    customer_credit_account_id: int,
    fx_account_id: int,
    rounding_account_id: int | None,
    customer_ref: str,
    memo: str,
    open_ar_functional_minor: int | None = None,
) -> list[DraftLine]:
    """A settled payment: Dr cash (amount - fee) + Dr processor fees (fee) / Cr AR for
    min(amount, open AR) + Cr customer credit balance for any overpayment.

    ``amount_minor`` is the gross amount the customer paid, ``fee_minor`` what the processor
    kept (both in the payment currency). A fee larger than the amount credits cash instead.

    Functional amounts: AR is relieved at its carrying amount (the invoice-date rate, or a
    proportional share of ``open_ar_functional_minor`` when given); cash, fees and customer
    credit at ``settlement_rate``. The FX gain (credit) or loss (debit) is the AR settled
    valued at the settlement rate less its carrying amount; a residual from rounding each line
    separately goes to ``rounding_account_id``. In one currency there is no FX line.
    """
    if amount_minor <= 0:
        raise ValueError("a payment amount must be positive (post refunds with refund_lines)")
    if fee_minor < 0:
        raise ValueError("a processor fee cannot be negative")
    if open_ar_minor < 0:
        raise ValueError("the open receivable cannot be negative")
    applied = min(amount_minor, open_ar_minor)
    over = amount_minor - applied
    net_cash = amount_minor - fee_minor
    kw = {"memo": memo, "customer_ref": customer_ref}
    parts: list[tuple[DraftLine, int]] = []  # (line, signed amount it carries)
    if net_cash:
        parts.append((signed_line(cash_account_id, net_cash, credit_natured=False, **kw), net_cash))
    if fee_minor:
        fee_line = signed_line(fee_account_id, fee_minor, credit_natured=False, memo=memo)
        parts.append((fee_line, fee_minor))
    ar_line = signed_line(ar_account_id, applied, credit_natured=True, **kw) if applied else None
    credit_line = (
        signed_line(customer_credit_account_id, over, credit_natured=True, **kw) if over else None
    )

    if currency == functional_currency:
        lines = [ln for ln, _ in parts] + [ln for ln in (ar_line, credit_line) if ln]
        return [_with_functional(ln, ln.debit_minor or ln.credit_minor) for ln in lines]

    rate = _need_rate(settlement_rate, "settlement", currency, functional_currency)

    def at_settlement(minor: int) -> int:
        return convert_minor(abs(minor), rate, currency, functional_currency)

    out = [_with_functional(ln, at_settlement(amount)) for ln, amount in parts]
    fx_gain = 0
    if ar_line is not None:
        carrying = carrying_relief(
            applied,
            open_minor=open_ar_minor,
            open_functional_minor=open_ar_functional_minor,
            rate=invoice_rate,
            currency=currency,
            functional_currency=functional_currency,
        )
        out.append(_with_functional(ar_line, carrying))
        fx_gain = at_settlement(applied) - carrying
    if credit_line is not None:
        out.append(_with_functional(credit_line, at_settlement(over)))
    return _close(
        out,
        fx_gain_minor=fx_gain,
        fx_account_id=fx_account_id,
        rounding_account_id=rounding_account_id,
        functional_currency=functional_currency,
    )


def refund_lines(
    *,
    amount_minor: int,
    from_balance: RefundSource,
    currency: str,
    functional_currency: str,
    balance_rate: Decimal | None,
    refund_rate: Decimal | None,
    cash_account_id: int,
    ar_account_id: int,
    customer_credit_account_id: int,
    fx_account_id: int,
    rounding_account_id: int | None,
    customer_ref: str,
    memo: str,
) -> list[DraftLine]:
    """A refund paid out: Dr customer credit balance (or AR) / Cr cash.

    * ``from_balance="customer_credit"``: the refund pays out a balance the customer holds,
      after a post-payment credit note or an overpayment. This is the normal case: the
      credit note already reversed the revenue, and the refund only settles the liability.
    * ``from_balance="ar"``: a refund with no credit note behind it. **Accounting choice to
      review:** the refund re-opens the receivable (Dr AR) instead of touching revenue,
      because the invoice still stands; a credit note or a write-off must then clear it.
      Revenue is not reduced until one is issued.

    Functional amounts: the debited balance at its carrying rate ``balance_rate`` (for a
    customer credit, the rate it was booked at; for AR, normally the invoice rate so a later
    credit note clears it), cash at ``refund_rate``. Paying out more functional currency than
    the balance carried is an FX loss (debit), less a gain (credit). Processors keep their
    original fee on a refund and charge none here; a fee, if any, is a separate entry.
    """
    if amount_minor <= 0:
        raise ValueError("a refund amount must be positive")
    if from_balance not in ("customer_credit", "ar"):
        raise ValueError(f"unknown refund source {from_balance!r}")
    kw = {"memo": memo, "customer_ref": customer_ref}
    debit_account = (
        customer_credit_account_id if from_balance == "customer_credit" else (ar_account_id)
    )
    debit = signed_line(debit_account, amount_minor, credit_natured=False, **kw)
    credit = signed_line(cash_account_id, amount_minor, credit_natured=True, **kw)
    if currency == functional_currency:
        return [_with_functional(debit, amount_minor), _with_functional(credit, amount_minor)]
    carried = convert_minor(
        amount_minor,
        _need_rate(balance_rate, "carrying", currency, functional_currency),
        currency,
        functional_currency,
    )
    paid = convert_minor(
        amount_minor,
        _need_rate(refund_rate, "refund", currency, functional_currency),
        currency,
        functional_currency,
    )
    return _close(
        [_with_functional(debit, carried), _with_functional(credit, paid)],
        fx_gain_minor=carried - paid,
        fx_account_id=fx_account_id,
        rounding_account_id=rounding_account_id,
        functional_currency=functional_currency,
    )


# --- disputes and write-offs --------------------------------------------------------------------
#
# A dispute (chargeback) takes the disputed amount and a dispute fee out of the processor's
# balance while the card network decides. **Accounting choice to review:** the amount goes to a
# "disputed payments" asset (a claim on the processor) rather than re-opening the invoice's AR:
# the invoice stays paid in billing, so AR ageing and dunning are not disturbed, and the claim
# is cleared by the outcome -- cash when won, an expense (bad debt / dispute losses) when lost.
# The dispute fee is an expense at once (processor fees), since it is kept whatever the outcome
# unless the processor reports giving it back with the reinstated funds.


def _functional_pair(
    minor: int,
    settled: int | None,
    *,
    rate: Decimal | None,
    currency: str,
    functional_currency: str,
) -> int:
    if currency == functional_currency:
        return minor
    if settled is not None:
        return settled
    return convert_minor(
        minor,
        _need_rate(rate, "settlement", currency, functional_currency),
        currency,
        functional_currency,
    )


def dispute_withdrawal_lines(
    *,
    amount_minor: int,
    fee_minor: int,
    currency: str,
    functional_currency: str,
    rate: Decimal | None,
    cash_account_id: int,
    dispute_account_id: int,
    fee_account_id: int,
    customer_ref: str,
    memo: str,
    settled_functional: tuple[int, int] | None = None,
) -> list[DraftLine]:
    """Funds withdrawn for a dispute: Dr disputed payments (amount) + Dr processor fees (the
    dispute fee) / Cr cash (amount + fee).

    Functional amounts: each at ``rate`` (dispute currency -> functional), or, when the
    processor settled in the functional currency, its own figures ``settled_functional`` =
    (amount, fee), so the clearing account reconciles to it. Cash is their sum: the entry
    balances by construction and needs no rounding line.
    """
    if amount_minor < 0 or fee_minor < 0:
        raise ValueError("a dispute withdrawal and its fee cannot be negative")
    if not amount_minor and not fee_minor:
        raise ValueError("a dispute withdrawal of nothing has nothing to post")
    kw = {"memo": memo, "customer_ref": customer_ref}
    s_amount, s_fee = settled_functional or (None, None)
    conv = {"rate": rate, "currency": currency, "functional_currency": functional_currency}
    amount_fn = _functional_pair(amount_minor, s_amount, **conv)
    fee_fn = _functional_pair(fee_minor, s_fee, **conv)
    lines = []
    if amount_minor:
        line = signed_line(dispute_account_id, amount_minor, credit_natured=False, **kw)
        lines.append(_with_functional(line, amount_fn))
    if fee_minor:
        line = signed_line(fee_account_id, fee_minor, credit_natured=False, memo=memo)
        lines.append(_with_functional(line, fee_fn))
    cash = signed_line(cash_account_id, amount_minor + fee_minor, credit_natured=True, **kw)
    lines.append(_with_functional(cash, amount_fn + fee_fn))
    return lines


def dispute_reinstatement_lines(
    *,
    amount_minor: int,
    fee_minor: int,
    receivable_functional_minor: int,
    currency: str,
    functional_currency: str,
    rate: Decimal | None,
    cash_account_id: int,
    dispute_account_id: int,
    fee_account_id: int,
    fx_account_id: int,
    rounding_account_id: int | None,
    customer_ref: str,
    memo: str,
    settled_functional: tuple[int, int] | None = None,
) -> list[DraftLine]:
    """A dispute won: the disputed amount comes back. Dr cash (amount - fee) / Cr disputed
    payments (amount, at the functional amount it was withdrawn at).

    ``fee_minor`` is signed as the processor reports it with the reinstatement: usually 0 (it
    keeps the dispute fee); negative when it gives the fee back (Cr processor fees, more cash);
    positive if it charges one (Dr processor fees, less cash).

    Functional amounts: cash and fee at ``rate`` (or the processor's ``settled_functional`` =
    (amount, |fee|) when it settled in the functional currency); the claim is relieved at
    ``receivable_functional_minor``, and the difference on the amount is FX gain (credit) or
    loss (debit), as for a payment relieving AR.
    """
    if amount_minor <= 0:
        raise ValueError("a reinstated dispute amount must be positive")
    if receivable_functional_minor < 0:
        raise ValueError("the disputed payments balance cannot be negative")
    if currency == functional_currency and receivable_functional_minor != amount_minor:
        raise ValueError(
            f"the disputed payments balance ({receivable_functional_minor}) differs from the "
            f"amount reinstated ({amount_minor})"
        )
    if amount_minor - fee_minor <= 0:
        raise ValueError("a reinstatement that leaves no cash cannot be posted")
    kw = {"memo": memo, "customer_ref": customer_ref}
    s_amount, s_fee = settled_functional or (None, None)
    conv = {"rate": rate, "currency": currency, "functional_currency": functional_currency}
    amount_fn = _functional_pair(amount_minor, s_amount, **conv)
    fee_fn = _functional_pair(abs(fee_minor), s_fee, **conv)
    signed_fee_fn = fee_fn if fee_minor > 0 else -fee_fn
    cash = signed_line(cash_account_id, amount_minor - fee_minor, credit_natured=False, **kw)
    lines = [_with_functional(cash, amount_fn - signed_fee_fn)]
    if fee_minor:
        fee = signed_line(fee_account_id, fee_minor, credit_natured=False, memo=memo)
        lines.append(_with_functional(fee, fee_fn))
    claim = signed_line(dispute_account_id, amount_minor, credit_natured=True, **kw)
    lines.append(_with_functional(claim, receivable_functional_minor))
    return _close(
        lines,
        fx_gain_minor=amount_fn - receivable_functional_minor,
        fx_account_id=fx_account_id,
        rounding_account_id=rounding_account_id,
        functional_currency=functional_currency,
    )


def write_off_lines(
    *,
    amount_minor: int,
    carrying_functional_minor: int,
    currency: str,
    functional_currency: str,
    expense_account_id: int,
    balance_account_id: int,
    customer_ref: str,
    memo: str,
) -> list[DraftLine]:
    """Write a balance off to expense: Dr bad debt (or dispute losses) / Cr the balance (AR of
    an uncollectible invoice, or the disputed payments of a lost dispute).

    Both lines carry the balance's carrying amount (``carrying_functional_minor``, e.g. a
    proportional share of the invoice's open functional AR from ``carrying_relief``): a
    write-off takes the asset off at what it was booked at, so no FX difference arises.
    """
    if amount_minor <= 0:
        raise ValueError("a write-off amount must be positive")
    if carrying_functional_minor < 0:
        raise ValueError("a carrying amount cannot be negative")
    if currency == functional_currency and carrying_functional_minor != amount_minor:
        raise ValueError(
            f"in one currency the carrying amount ({carrying_functional_minor}) must equal "
            f"the amount written off ({amount_minor})"
        )
    kw = {"memo": memo, "customer_ref": customer_ref}
    expense = signed_line(expense_account_id, amount_minor, credit_natured=False, **kw)
    balance = signed_line(balance_account_id, amount_minor, credit_natured=True, **kw)
    return [
        _with_functional(expense, carrying_functional_minor),
        _with_functional(balance, carrying_functional_minor),
    ]
