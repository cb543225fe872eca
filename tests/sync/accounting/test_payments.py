"""payment_lines and refund_lines: one currency, edge cases and refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sync.accounting.entries import MissingRoundingAccount
from sync.accounting.payments import carrying_relief, payment_lines, refund_lines
from tests.sync.accounting import (
    AR,
    CASH,
    CUSTOMER_CREDIT,
    FEES,
    FX,
    ROUNDING,
    assert_well_formed,
    rows,
)

ACCOUNTS = {
    "cash_account_id": CASH,
    "ar_account_id": AR,
    "customer_credit_account_id": CUSTOMER_CREDIT,
    "fx_account_id": FX,
    "rounding_account_id": ROUNDING,
    "customer_ref": "cus_acme",
}


def pay(**kw):
    args = ACCOUNTS | {
        "fee_minor": 0,
        "currency": "USD",
        "functional_currency": "USD",
        "invoice_rate": None,
        "settlement_rate": None,
        "fee_account_id": FEES,
        "memo": "PAY",
    }
    lines = payment_lines(**(args | kw))
    assert_well_formed(lines)
    return lines


def refund(**kw):
    args = ACCOUNTS | {
        "from_balance": "customer_credit",
        "currency": "USD",
        "functional_currency": "USD",
        "balance_rate": None,
        "refund_rate": None,
        "memo": "RE",
    }
    lines = refund_lines(**(args | kw))
    assert_well_formed(lines)
    return lines


# amount, fee, open AR -> rows (one currency: no FX line)
SAME_CURRENCY = [
    ("full", 32_400, 970, 32_400, [(CASH, 31_430, 0), (FEES, 970, 0), (AR, 0, 32_400)]),
    ("partial", 10_000, 0, 32_400, [(CASH, 10_000, 0), (AR, 0, 10_000)]),
    (
        "over",
        40_000,
        0,
        32_400,
        [(CASH, 40_000, 0), (AR, 0, 32_400), (CUSTOMER_CREDIT, 0, 7_600)],
    ),
    ("on account", 5_000, 0, 0, [(CASH, 5_000, 0), (CUSTOMER_CREDIT, 0, 5_000)]),
    # the processor kept more than it collected: the shortfall comes out of cash
    ("fee above amount", 50, 80, 50, [(CASH, 0, 30), (FEES, 80, 0), (AR, 0, 50)]),
]


@pytest.mark.parametrize(
    ("amount", "fee", "open_ar", "expected"),
    [c[1:] for c in SAME_CURRENCY],
    ids=[c[0] for c in SAME_CURRENCY],
)
def test_payment_in_one_currency(amount, fee, open_ar, expected):
    lines = pay(amount_minor=amount, fee_minor=fee, open_ar_minor=open_ar)
    assert [r[:3] for r in rows(lines)] == expected
    assert all(r[1:3] == r[3:5] for r in rows(lines))


def test_same_rate_posts_no_fx_line():
    lines = pay(
        amount_minor=100_000,
        open_ar_minor=100_000,
        currency="EUR",
        invoice_rate=Decimal("1.08"),
        settlement_rate=Decimal("1.08"),
    )
    assert rows(lines) == [(CASH, 100_000, 0, 108_000, 0), (AR, 0, 100_000, 0, 108_000)]


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"amount_minor": 0}, ValueError, "positive"),
        ({"amount_minor": -5}, ValueError, "positive"),
        ({"fee_minor": -1}, ValueError, "fee"),
        ({"open_ar_minor": -1}, ValueError, "receivable"),
        ({"currency": "EUR", "invoice_rate": Decimal("1.08")}, ValueError, "settlement"),
        ({"currency": "EUR", "settlement_rate": Decimal("1.08")}, ValueError, "carrying"),
        (
            {
                "currency": "EUR",
                "amount_minor": 10_000,
                "fee_minor": 200,
                "open_ar_minor": 10_000,
                "invoice_rate": Decimal("1.08"),
                "settlement_rate": Decimal("1.1025"),
                "rounding_account_id": None,
            },
            MissingRoundingAccount,
            "rounding",
        ),
    ],
)
def test_payment_refusals(kw, error, message):
    args = {"amount_minor": 100, "open_ar_minor": 100} | kw
    with pytest.raises(error, match=message):
        pay(**args)


def test_refund_from_ar_reopens_the_receivable():
    assert rows(refund(amount_minor=5_000, from_balance="ar")) == [
        (AR, 5_000, 0, 5_000, 0),
        (CASH, 0, 5_000, 0, 5_000),
    ]


def test_refund_at_a_lower_rate_is_an_fx_gain():
    lines = refund(
        amount_minor=10_000,
        currency="EUR",
        balance_rate=Decimal("1.10"),
        refund_rate=Decimal("1.05"),
    )
    assert rows(lines) == [
        (CUSTOMER_CREDIT, 10_000, 0, 11_000, 0),
        (CASH, 0, 10_000, 0, 10_500),
        (FX, 0, 0, 0, 500),  # Cr FX gain 5.00
    ]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"amount_minor": 0}, "positive"),
        ({"from_balance": "revenue"}, "source"),
        ({"currency": "EUR", "refund_rate": Decimal("1")}, "carrying"),
        ({"currency": "EUR", "balance_rate": Decimal("1")}, "refund"),
    ],
)
def test_refund_refusals(kw, message):
    with pytest.raises(ValueError, match=message):
        refund(**({"amount_minor": 100} | kw))


def test_carrying_relief_is_proportional_when_the_carrying_amount_is_known():
    kw = {"currency": "EUR", "functional_currency": "USD", "rate": None}
    assert carrying_relief(50, open_minor=100, open_functional_minor=109, **kw) == 54  # 54.5
    assert carrying_relief(100, open_minor=100, open_functional_minor=109, **kw) == 109
    assert (
        carrying_relief(
            50, open_minor=100, open_functional_minor=None, **kw | {"rate": Decimal("1.09")}
        )
        == 54
    )
