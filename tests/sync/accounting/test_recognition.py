"""recognition_lines, target_period, due_in_run and spread_functional."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sync.accounting.entries import convert_minor
from sync.accounting.recognition import (
    DueAmount,
    due_in_run,
    recognition_lines,
    spread_functional,
    target_period,
)
from sync.accounting.schedules import ratable
from tests.sync.accounting import DEFERRED, REVENUE, assert_well_formed, rows

D = dt.date
OTHER_DEFERRED = 2410
APRIL = D(2026, 4, 1)


def item(
    key,
    amount,
    *,
    product="PLATFORM",
    deferred=DEFERRED,
    rate=None,
    period=APRIL,
    currency="USD",
    functional="USD",
    functional_amount=None,
):
    return DueAmount(
        key,
        deferred,
        REVENUE,
        product,
        period,
        amount,
        currency,
        rate,
        functional,
        functional_amount,
    )


@pytest.mark.parametrize(
    ("period", "first_open", "expected"),
    [
        (D(2026, 4, 1), D(2026, 4, 1), D(2026, 4, 1)),  # open: its own month
        (D(2026, 6, 1), D(2026, 4, 1), D(2026, 6, 1)),  # future month: its own month
        (D(2026, 2, 1), D(2026, 4, 1), D(2026, 4, 1)),  # closed month: the first open one
        (D(2026, 2, 17), D(2026, 4, 9), D(2026, 4, 1)),  # any day: month starts
    ],
)
def test_target_period(period, first_open, expected):
    assert target_period(period, first_open) == expected


def test_due_in_run_takes_the_months_own_lines_only_after_the_first_open_one():
    items = [item(m, 100, period=D(2026, m, 1)) for m in (1, 2, 3, 4, 5)]
    first_open = D(2026, 3, 1)
    assert [i.key for i in due_in_run(items, run_period=D(2026, 3, 1), first_open=first_open)] == [
        1,
        2,
        3,
    ]
    assert [i.key for i in due_in_run(items, run_period=D(2026, 5, 1), first_open=first_open)] == [
        5
    ]


def test_groups_per_account_pair_and_product_in_key_order():
    lines = recognition_lines(
        [
            item("b", 700, product="SUPPORT"),
            item("a", 500),
            item("c", 200),
            item("d", 300, deferred=OTHER_DEFERRED),
        ],
        currency="USD",
        functional_currency="USD",
    )
    assert_well_formed(lines)
    assert [(r[0], r[1], r[2]) for r in rows(lines)] == [
        (DEFERRED, 700, 0),
        (REVENUE, 0, 700),  # PLATFORM 5.00 + 2.00
        (DEFERRED, 700, 0),
        (REVENUE, 0, 700),  # SUPPORT
        (OTHER_DEFERRED, 300, 0),
        (REVENUE, 0, 300),
    ]
    assert [ln.product_code for ln in lines] == ["PLATFORM"] * 2 + ["SUPPORT"] * 2 + [
        "PLATFORM"
    ] * 2


def test_zero_groups_are_omitted_and_nothing_due_posts_nothing():
    assert (
        recognition_lines(
            [item("a", 500), item("b", -500)], currency="USD", functional_currency="USD"
        )
        == []
    )
    assert recognition_lines([], currency="USD", functional_currency="USD") == []


def test_each_item_converts_at_its_own_historical_rate():
    lines = recognition_lines(
        [
            item("jan", 10_000, rate=Decimal("1.05"), currency="EUR"),
            item("apr", 10_000, rate=Decimal("1.10"), currency="EUR"),
        ],
        currency="EUR",
        functional_currency="USD",
    )
    assert rows(lines) == [(DEFERRED, 20_000, 0, 21_500, 0), (REVENUE, 0, 20_000, 0, 21_500)]


def test_opposite_signs_across_currencies_post_on_separate_pairs():
    """+100.00 at 1.00 and -100.00 at 1.10 net zero in EUR but -10.00 in USD."""
    lines = recognition_lines(
        [
            item("a", 10_000, rate=Decimal("1.00"), currency="EUR"),
            item("b", -10_000, rate=Decimal("1.10"), currency="EUR"),
            item("c", 1, rate=Decimal("1.00"), currency="EUR"),
        ],
        currency="EUR",
        functional_currency="USD",
    )
    assert_well_formed(lines)
    assert rows(lines) == [
        (DEFERRED, 1, 0, 0, 0),
        (REVENUE, 0, 1, 0, 0),
        (REVENUE, 0, 0, 999, 0),
        (DEFERRED, 0, 0, 0, 999),
    ]


def test_a_given_functional_amount_wins_over_conversion():
    lines = recognition_lines(
        [item("a", 3_333, rate=Decimal("1.08"), currency="EUR", functional_amount=3_600)],
        currency="EUR",
        functional_currency="USD",
    )
    assert rows(lines)[0] == (DEFERRED, 3_333, 0, 3_600, 0)


def test_spread_functional_empties_the_deferral_exactly():
    """12,000.00 EUR deferred at 1.0863 = 13,035.60 USD. Converting each month of the annual
    schedule on its own releases 13,035.64 (a debit balance of 0.04 USD would stay in deferred
    revenue); the shares of the carrying amount release exactly 13,035.60."""
    amounts = [a for _, a in ratable(1_200_000, D(2026, 4, 15), D(2027, 4, 15))]
    rate = Decimal("1.0863")
    total = convert_minor(1_200_000, rate, "EUR", "USD")
    assert total == 1_303_560
    assert sum(convert_minor(a, rate, "EUR", "USD") for a in amounts) == 1_303_564
    shares = spread_functional(amounts, total)
    assert sum(shares) == total
    naive = [convert_minor(a, rate, "EUR", "USD") for a in amounts]
    assert all(abs(s - n) <= 1 for s, n in zip(shares, naive, strict=True))
    items = [
        item(i, a, currency="EUR", rate=rate, functional_amount=f)
        for i, (a, f) in enumerate(zip(amounts, shares, strict=True))
    ]
    lines = recognition_lines(items, currency="EUR", functional_currency="USD")
    assert rows(lines)[0] == (DEFERRED, 1_200_000, 0, 1_303_560, 0)


def test_spread_functional_edge_cases():
    assert spread_functional([0, 0], 0) == [0, 0]
    assert spread_functional([-500, -500], -1_081) == [-541, -540]
    with pytest.raises(ValueError, match="one sign"):
        spread_functional([5, -5], 10)


@pytest.mark.parametrize(
    "bad",
    [
        item("x", 100, currency="EUR", rate=Decimal("1.1")),
        item("x", 100, functional="EUR", rate=Decimal("1.1")),
    ],
)
def test_items_of_another_currency_are_refused(bad):
    with pytest.raises(ValueError, match="not USD->USD"):
        recognition_lines([bad], currency="USD", functional_currency="USD")


def test_a_foreign_item_without_its_rate_is_refused():
    with pytest.raises(ValueError, match="rate is required"):
        recognition_lines(
            [item("x", 100, currency="EUR")], currency="EUR", functional_currency="USD"
        )
