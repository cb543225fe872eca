"""split_credit and credit_note_lines: edge cases and refusals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sync.accounting.credits import (
    CreditPart,
    CreditSplit,
    ScheduledAmount,
    credit_note_lines,
    functional_reductions,
    split_credit,
)
from sync.accounting.entries import TaxPart, UnbalancedPlan
from tests.sync.accounting import (
    AR,
    CUSTOMER_CREDIT,
    DEFERRED,
    REVENUE,
    ROUNDING,
    TAX,
    assert_well_formed,
    rows,
)


def sched(*amounts: tuple[int, bool]) -> list[ScheduledAmount]:
    return [
        ScheduledAmount(f"m{i}", dt.date(2026, 1 + i, 1), amount, recognized)
        for i, (amount, recognized) in enumerate(amounts)
    ]


@pytest.mark.parametrize(
    ("credit", "schedule", "expected"),
    [
        # all recognized: the whole credit is earned, nothing is cut
        (
            5_000,
            [(10_000, True), (10_000, True)],
            CreditSplit(5_000, 0, {}, {"m0": 2_500, "m1": 2_500}),
        ),
        # all planned: the whole credit is unearned and cuts the planned lines
        (
            5_000,
            [(10_000, False), (10_000, False)],
            CreditSplit(0, 5_000, {"m0": 2_500, "m1": 2_500}),
        ),
        # a full credit cuts every planned line to zero
        (
            20_000,
            [(10_000, True), (10_000, False)],
            CreditSplit(10_000, 10_000, {"m1": 10_000}, {"m0": 10_000}),
        ),
        # one unit: it goes to the earliest line on a tie
        (1, [(10_000, False), (10_000, True)], CreditSplit(0, 1, {"m0": 1})),
        # zero lines in the schedule take nothing
        (300, [(0, False), (300, False)], CreditSplit(0, 300, {"m1": 300})),
        # a negative line (a proration credit) credited back: same sign throughout
        (
            -1_000,
            [(-1_500, True), (-1_500, False)],
            CreditSplit(-500, -500, {"m1": -500}, {"m0": -500}),
        ),
        # nothing credited
        (0, [(10_000, False)], CreditSplit(0, 0, {})),
    ],
)
def test_split_credit(credit, schedule, expected):
    assert split_credit(credit, sched(*schedule)) == expected


@pytest.mark.parametrize(
    ("credit", "schedule", "message"),
    [
        (20_001, [(10_000, True), (10_000, False)], "exceeds"),
        (1, [], "does not fit"),
        (1, [(0, False)], "does not fit"),
        (-1, [(10_000, False)], "does not fit"),
        (1, [(10_000, False), (-5_000, False)], "one sign"),
    ],
)
def test_split_credit_refuses(credit, schedule, message):
    with pytest.raises(ValueError, match=message):
        split_credit(credit, sched(*schedule))


def test_split_credit_refuses_duplicate_keys():
    s = [ScheduledAmount("k", None, 100, False), ScheduledAmount("k", None, 100, False)]
    with pytest.raises(ValueError, match="unique"):
        split_credit(50, s)


def test_split_credit_accepts_undated_on_delivery_lines():
    s = [ScheduledAmount("delivery", None, 50_000, recognized=False)]
    assert split_credit(20_000, s) == CreditSplit(0, 20_000, {"delivery": 20_000})


def cn(**kw):
    args = {
        "parts": [CreditPart(10_000, DEFERRED, REVENUE, 4_000, 6_000, "PLATFORM")],
        "taxes": [TaxPart(800, TAX, "US-8", "tax")],
        "total_minor": 10_800,
        "timing": "pre_payment",
        "ar_account_id": AR,
        "customer_credit_account_id": CUSTOMER_CREDIT,
        "currency": "USD",
        "functional_currency": "USD",
        "fx_rate": None,
        "rounding_account_id": ROUNDING,
        "customer_ref": "cus_acme",
        "memo": "CN",
    }
    return credit_note_lines(**(args | kw))


def test_credit_note_without_a_contra_account_debits_revenue():
    assert rows(cn()) == [
        (DEFERRED, 6_000, 0, 6_000, 0),
        (REVENUE, 4_000, 0, 4_000, 0),
        (TAX, 800, 0, 800, 0),
        (AR, 0, 10_800, 0, 10_800),
    ]


def test_credit_note_omits_zero_parts():
    part = CreditPart(10_000, DEFERRED, REVENUE, 0, 10_000, "PLATFORM")
    lines = cn(parts=[part], taxes=[], total_minor=10_000)
    assert rows(lines) == [(DEFERRED, 10_000, 0, 10_000, 0), (AR, 0, 10_000, 0, 10_000)]


def test_credit_note_in_foreign_currency_uses_the_invoice_rate_and_rounds():
    lines = cn(
        parts=[CreditPart(1_003, DEFERRED, REVENUE, 0, 1_003, "PLATFORM")],
        taxes=[TaxPart(50, TAX, "KW", "tax")],
        total_minor=1_053,
        currency="KWD",
        fx_rate=Decimal("3.2550"),
    )
    assert_well_formed(lines)
    assert rows(lines) == [
        (DEFERRED, 1_003, 0, 326, 0),
        (TAX, 50, 0, 16, 0),
        (AR, 0, 1_053, 0, 343),
        (ROUNDING, 0, 0, 1, 0),  # Dr rounding 0.01 (the invoice's rounding line reversed)
    ]


def test_credit_note_refuses_parts_that_do_not_add_up():
    with pytest.raises(UnbalancedPlan, match="total"):
        cn(total_minor=10_801)
    with pytest.raises(UnbalancedPlan, match="earned"):
        cn(parts=[CreditPart(10_000, DEFERRED, REVENUE, 4_000, 5_999, "PLATFORM")])


def test_credit_note_refuses_an_unknown_timing():
    with pytest.raises(ValueError, match="timing"):
        cn(timing="someday")


def test_credit_note_needs_a_rate_across_currencies():
    with pytest.raises(ValueError, match="rate"):
        cn(currency="EUR")


def test_functional_reductions_take_the_same_share_of_the_carrying_amount():
    planned = {"may": (10_220, 11_242), "jun": (9_890, 10_879)}
    # 34.07 of 102.20 carried at 112.42 -> 37.477 -> 37.48; all of June -> all 108.79
    assert functional_reductions({"may": 3_407, "jun": 9_890}, planned) == {
        "may": 3_748,
        "jun": 10_879,
    }


def test_credit_note_releases_the_given_functional_carrying_amount():
    part = CreditPart(10_000, DEFERRED, REVENUE, 0, 10_000, "P", unearned_functional_minor=10_804)
    lines = cn(parts=[part], taxes=[], total_minor=10_000, currency="EUR", fx_rate=Decimal("1.08"))
    assert_well_formed(lines)
    assert rows(lines) == [
        (DEFERRED, 10_000, 0, 10_804, 0),  # released at its carrying amount, not 108.00
        (AR, 0, 10_000, 0, 10_800),  # AR at the invoice rate
        (ROUNDING, 0, 0, 0, 4),  # the 0.04 a per-line conversion left behind
    ]


def test_credit_note_refuses_a_functional_amount_of_the_wrong_sign():
    part = CreditPart(10_000, DEFERRED, REVENUE, 0, 10_000, "P", unearned_functional_minor=-1)
    with pytest.raises(ValueError, match="does not match"):
        cn(parts=[part], taxes=[], total_minor=10_000, currency="EUR", fx_rate=Decimal("1.08"))
