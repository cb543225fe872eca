"""dispute_withdrawal_lines, dispute_reinstatement_lines, write_off_lines: worked examples,
refusals and a property (a dispute opened then won leaves nothing on the claim)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.accounting.entries import convert_minor
from sync.accounting.payments import (
    carrying_relief,
    dispute_reinstatement_lines,
    dispute_withdrawal_lines,
    write_off_lines,
)
from tests.sync.accounting import AR, CASH, FEES, FX, ROUNDING, assert_well_formed, balances, rows

DISPUTES = 1150
BAD_DEBT = 6900
KW = {"customer_ref": "cus_acme", "memo": "DP"}


def withdraw(**kw):
    args = {
        "currency": "USD",
        "functional_currency": "USD",
        "rate": None,
        "cash_account_id": CASH,
        "dispute_account_id": DISPUTES,
        "fee_account_id": FEES,
        **KW,
    }
    lines = dispute_withdrawal_lines(**(args | kw))
    assert_well_formed(lines)
    return lines


def reinstate(**kw):
    args = {
        "fee_minor": 0,
        "currency": "USD",
        "functional_currency": "USD",
        "rate": None,
        "cash_account_id": CASH,
        "dispute_account_id": DISPUTES,
        "fee_account_id": FEES,
        "fx_account_id": FX,
        "rounding_account_id": ROUNDING,
        **KW,
    }
    lines = dispute_reinstatement_lines(**(args | kw))
    assert_well_formed(lines)
    return lines


# --- withdrawal ---------------------------------------------------------------------------------


def test_withdrawal_debits_the_claim_and_the_fee_and_credits_cash_with_both():
    lines = withdraw(amount_minor=1080_00, fee_minor=15_00)
    assert rows(lines) == [
        (DISPUTES, 1080_00, 0, 1080_00, 0),
        (FEES, 15_00, 0, 15_00, 0),
        (CASH, 0, 1095_00, 0, 1095_00),
    ]
    assert lines[0].customer_ref == "cus_acme" and lines[1].customer_ref == ""


def test_withdrawal_in_foreign_currency_converts_each_line_and_cash_is_their_sum():
    # 1,000.00 EUR at 1.0837 = 1,083.70 USD; fee 13.64 EUR = 14.781... -> 14.78 USD
    lines = withdraw(
        amount_minor=1000_00,
        fee_minor=13_64,
        currency="EUR",
        rate=Decimal("1.0837"),
    )
    assert rows(lines) == [
        (DISPUTES, 1000_00, 0, 1083_70, 0),
        (FEES, 13_64, 0, 14_78, 0),
        (CASH, 0, 1013_64, 0, 1098_48),
    ]


def test_withdrawal_settled_in_functional_currency_takes_stripes_own_figures():
    lines = withdraw(
        amount_minor=1000_00,
        fee_minor=13_64,
        currency="EUR",
        rate=Decimal("1.1"),
        settled_functional=(1100_00, 15_00),
    )
    assert rows(lines)[0][3] == 1100_00 and rows(lines)[1][3] == 15_00
    assert rows(lines)[2] == (CASH, 0, 1013_64, 0, 1115_00)


def test_withdrawal_refuses_negative_or_empty_amounts_and_a_missing_rate():
    with pytest.raises(ValueError, match="cannot be negative"):
        withdraw(amount_minor=-1, fee_minor=0)
    with pytest.raises(ValueError, match="nothing to post"):
        withdraw(amount_minor=0, fee_minor=0)
    with pytest.raises(ValueError, match="rate EUR->USD is required"):
        withdraw(amount_minor=100, fee_minor=0, currency="EUR")


# --- reinstatement ------------------------------------------------------------------------------


def test_won_dispute_returns_cash_and_clears_the_claim():
    lines = reinstate(amount_minor=1080_00, receivable_functional_minor=1080_00)
    assert rows(lines) == [(CASH, 1080_00, 0, 1080_00, 0), (DISPUTES, 0, 1080_00, 0, 1080_00)]


def test_won_dispute_with_the_fee_given_back_credits_fees():
    lines = reinstate(amount_minor=1080_00, fee_minor=-15_00, receivable_functional_minor=1080_00)
    assert rows(lines) == [
        (CASH, 1095_00, 0, 1095_00, 0),
        (FEES, 0, 15_00, 0, 15_00),
        (DISPUTES, 0, 1080_00, 0, 1080_00),
    ]


def test_won_dispute_at_a_lower_rate_books_an_fx_loss():
    # Withdrawn at 1.10 (1,100.00 USD carried), back at 1.05 (1,050.00 USD): loss 50.00 USD
    lines = reinstate(
        amount_minor=1000_00,
        receivable_functional_minor=1100_00,
        currency="EUR",
        rate=Decimal("1.05"),
    )
    assert rows(lines) == [
        (CASH, 1000_00, 0, 1050_00, 0),
        (DISPUTES, 0, 1000_00, 0, 1100_00),
        (FX, 0, 0, 50_00, 0),
    ]


def test_reinstatement_refusals():
    with pytest.raises(ValueError, match="must be positive"):
        reinstate(amount_minor=0, receivable_functional_minor=0)
    with pytest.raises(ValueError, match="differs from the amount reinstated"):
        reinstate(amount_minor=1000, receivable_functional_minor=999)
    with pytest.raises(ValueError, match="leaves no cash"):
        reinstate(amount_minor=1000, fee_minor=1000, receivable_functional_minor=1000)


def test_reinstatement_gain_without_an_fx_account_still_balances_with_the_fx_line():
    lines = reinstate(
        amount_minor=1000_00,
        receivable_functional_minor=1080_00,
        currency="EUR",
        rate=Decimal("1.1"),
        rounding_account_id=None,
    )
    assert rows(lines)[-1] == (FX, 0, 0, 0, 20_00)  # a gain: 1,100.00 back on 1,080.00 carried


# --- write-offs ---------------------------------------------------------------------------------


def test_write_off_moves_the_balance_to_expense_at_its_carrying_amount():
    lines = write_off_lines(
        amount_minor=600_00,
        carrying_functional_minor=648_00,
        currency="EUR",
        functional_currency="USD",
        expense_account_id=BAD_DEBT,
        balance_account_id=AR,
        **KW,
    )
    assert_well_formed(lines)
    assert rows(lines) == [(BAD_DEBT, 600_00, 0, 648_00, 0), (AR, 0, 600_00, 0, 648_00)]


def test_write_off_refusals():
    common = {
        "currency": "USD",
        "functional_currency": "USD",
        "expense_account_id": BAD_DEBT,
        "balance_account_id": AR,
        **KW,
    }
    with pytest.raises(ValueError, match="must be positive"):
        write_off_lines(amount_minor=0, carrying_functional_minor=0, **common)
    with pytest.raises(ValueError, match="must equal the amount written off"):
        write_off_lines(amount_minor=100, carrying_functional_minor=99, **common)
    with pytest.raises(ValueError, match="cannot be negative"):
        write_off_lines(amount_minor=100, carrying_functional_minor=-1, **common)


def test_partial_payments_and_the_write_off_relieve_exactly_the_invoices_functional_ar():
    """AR 1,000.01 EUR carried at 1,080.01 USD: three payments relieve proportional shares,
    the write-off takes what is left, so AR ends at zero in both currencies."""
    open_tx, open_fn = 1000_01, 1080_01
    for paid in (333_33, 250_00, 100_07):
        relief = carrying_relief(
            paid,
            open_minor=open_tx,
            open_functional_minor=open_fn,
            rate=None,
            currency="EUR",
            functional_currency="USD",
        )
        open_tx, open_fn = open_tx - paid, open_fn - relief
    carrying = carrying_relief(
        open_tx,
        open_minor=open_tx,
        open_functional_minor=open_fn,
        rate=None,
        currency="EUR",
        functional_currency="USD",
    )
    lines = write_off_lines(
        amount_minor=open_tx,
        carrying_functional_minor=carrying,
        currency="EUR",
        functional_currency="USD",
        expense_account_id=BAD_DEBT,
        balance_account_id=AR,
        **KW,
    )
    assert balances(lines)[AR] == (-open_tx, -open_fn)


@given(
    amount=st.integers(min_value=1, max_value=10**9),
    fee=st.integers(min_value=0, max_value=10**5),
    out_rate=st.decimals(min_value="0.5", max_value="2", places=4),
    back_rate=st.decimals(min_value="0.5", max_value="2", places=4),
    won=st.booleans(),
)
def test_any_dispute_opened_then_closed_leaves_nothing_on_the_claim(
    amount, fee, out_rate, back_rate, won
):
    opened = withdraw(amount_minor=amount, fee_minor=fee, currency="EUR", rate=out_rate)
    claim_fn = rows(opened)[0][3]
    if won:
        closed = reinstate(
            amount_minor=amount,
            receivable_functional_minor=claim_fn,
            currency="EUR",
            rate=back_rate,
        )
        cash_fn = balances(closed)[CASH][1]
        assert cash_fn == convert_minor(amount, back_rate, "EUR", "USD")
    else:
        closed = write_off_lines(
            amount_minor=amount,
            carrying_functional_minor=claim_fn,
            currency="EUR",
            functional_currency="USD",
            expense_account_id=BAD_DEBT,
            balance_account_id=DISPUTES,
            **KW,
        )
        assert_well_formed(closed)
    assert DISPUTES not in balances(opened, closed)
