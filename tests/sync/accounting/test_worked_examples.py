"""Worked examples, with every amount stated: what a controller reviews.

Amounts are minor units (cents for USD/EUR, yen for JPY, fils for KWD); the comments give the
major units. Each table row is one figure of the example.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sync.accounting.credits import CreditPart, ScheduledAmount, credit_note_lines, split_credit
from sync.accounting.entries import (
    InvoicePlan,
    RevenuePart,
    TaxPart,
    build_invoice_lines,
    convert_minor,
)
from sync.accounting.payments import payment_lines, refund_lines
from sync.accounting.recognition import DueAmount, due_in_run, recognition_lines, target_period
from sync.accounting.schedules import point_in_time, ratable
from tests.sync.accounting import (
    AR,
    CASH,
    CONTRA,
    CUSTOMER_CREDIT,
    DEFERRED,
    FEES,
    FX,
    REVENUE,
    ROUNDING,
    TAX,
    assert_well_formed,
    balances,
    rows,
)

D = dt.date


def invoice(
    *parts: tuple[int, int],
    tax: int = 0,
    currency: str = "USD",
    functional: str = "USD",
    rate: Decimal | None = None,
    customer_credit: int | None = None,
):
    """Invoice lines for ``(net, account)`` parts and one tax amount."""
    total = sum(net for net, _ in parts) + tax
    plan = InvoicePlan(
        total_minor=total,
        currency=currency,
        functional_currency=functional,
        fx_rate=rate,
        ar_account_id=AR,
        rounding_account_id=ROUNDING,
        customer_ref="cus_acme",
        memo="INV",
        revenue=tuple(RevenuePart(net, acct, "line", "PLATFORM") for net, acct in parts),
        taxes=(TaxPart(tax, TAX, "US-8", "tax"),) if tax else (),
        customer_credit_account_id=customer_credit,
    )
    lines = build_invoice_lines(plan)
    assert_well_formed(lines)
    return lines


def due(
    key: object,
    period: dt.date,
    amount: int,
    *,
    currency: str = "USD",
    functional: str = "USD",
    rate: Decimal | None = None,
) -> DueAmount:
    return DueAmount(key, DEFERRED, REVENUE, "PLATFORM", period, amount, currency, rate, functional)


def recognize(*items: DueAmount, currency: str = "USD", functional: str = "USD"):
    lines = recognition_lines(items, currency=currency, functional_currency=functional)
    assert_well_formed(lines)
    return lines


def pay(**kw):
    args = {
        "fee_minor": 0,
        "currency": "EUR",
        "functional_currency": "USD",
        "invoice_rate": Decimal("1.0800"),
        "cash_account_id": CASH,
        "fee_account_id": FEES,
        "ar_account_id": AR,
        "customer_credit_account_id": CUSTOMER_CREDIT,
        "fx_account_id": FX,
        "rounding_account_id": ROUNDING,
        "customer_ref": "cus_acme",
        "memo": "PAY",
    }
    lines = payment_lines(**(args | kw))
    assert_well_formed(lines)
    return lines


# --- (a) annual prepaid subscription, 12,000.00 USD from 2026-04-15 with 8% tax -------------

# Month, days of the 365 in [2026-04-15, 2027-04-15), amount (12,000.00 x days / 365, largest
# remainder: the seven 31-day months (.808) and February (.795) take the 8 leftover cents).
ANNUAL_SCHEDULE = [
    (D(2026, 4, 1), 16, 52_602),  # 526.02 (exact 526.027; its .027 loses to .808 and .795)
    (D(2026, 5, 1), 31, 101_918),  # 1,019.18
    (D(2026, 6, 1), 30, 98_630),  # 986.30
    (D(2026, 7, 1), 31, 101_918),  # 1,019.18
    (D(2026, 8, 1), 31, 101_918),  # 1,019.18
    (D(2026, 9, 1), 30, 98_630),  # 986.30
    (D(2026, 10, 1), 31, 101_918),  # 1,019.18
    (D(2026, 11, 1), 30, 98_630),  # 986.30
    (D(2026, 12, 1), 31, 101_918),  # 1,019.18
    (D(2027, 1, 1), 31, 101_918),  # 1,019.18
    (D(2027, 2, 1), 28, 92_055),  # 920.55
    (D(2027, 3, 1), 31, 101_918),  # 1,019.18
    (D(2027, 4, 1), 14, 46_027),  # 460.27
]


def test_a_annual_invoice_defers_the_subscription_and_books_the_tax():
    lines = invoice((1_200_000, DEFERRED), tax=96_000)
    assert rows(lines) == [
        (AR, 1_296_000, 0, 1_296_000, 0),  # Dr AR 12,960.00
        (DEFERRED, 0, 1_200_000, 0, 1_200_000),  # Cr deferred revenue 12,000.00
        (TAX, 0, 96_000, 0, 96_000),  # Cr tax payable 960.00
    ]


def test_a_annual_schedule_spreads_by_day_and_sums_to_the_line():
    schedule = ratable(1_200_000, D(2026, 4, 15), D(2027, 4, 15))
    assert schedule == [(month, amount) for month, _, amount in ANNUAL_SCHEDULE]
    assert sum(days for _, days, _ in ANNUAL_SCHEDULE) == 365
    assert sum(amount for _, amount in schedule) == 1_200_000


def test_a_april_recognition_entry():
    april = due("2026-04", D(2026, 4, 1), 52_602)
    assert rows(recognize(april)) == [
        (DEFERRED, 52_602, 0, 52_602, 0),  # Dr deferred revenue 526.02
        (REVENUE, 0, 52_602, 0, 52_602),  # Cr revenue 526.02
    ]


def test_a_recognizing_every_month_empties_deferred_revenue():
    items = [due(m, m, amount) for m, _, amount in ANNUAL_SCHEDULE]
    inv = invoice((1_200_000, DEFERRED), tax=96_000)
    runs = [recognize(it) for it in items]
    assert balances(inv, *runs) == {
        AR: (1_296_000, 1_296_000),
        TAX: (-96_000, -96_000),
        REVENUE: (-1_200_000, -1_200_000),
    }


def test_a_late_invoice_for_a_closed_april_is_recognized_in_may():
    """April is closed when the invoice arrives (first open: May): April's 526.02 and May's
    1,019.18 both post in the May run, 1,545.20 in all; nothing posts to April."""
    items = [due(m, m, amount) for m, _, amount in ANNUAL_SCHEDULE]
    first_open = D(2026, 5, 1)
    assert target_period(D(2026, 4, 1), first_open) == D(2026, 5, 1)
    assert target_period(D(2026, 6, 1), first_open) == D(2026, 6, 1)
    may = due_in_run(items, run_period=D(2026, 5, 1), first_open=first_open)
    assert [it.key for it in may] == [D(2026, 4, 1), D(2026, 5, 1)]
    assert rows(recognize(*may)) == [
        (DEFERRED, 154_520, 0, 154_520, 0),
        (REVENUE, 0, 154_520, 0, 154_520),
    ]
    with pytest.raises(ValueError, match="closed"):
        due_in_run(items, run_period=D(2026, 4, 1), first_open=first_open)


# --- (b) proration: 90.00/month from Apr 1, upgraded to 120.00 on Apr 21 --------------------


def test_b_upgrade_proration_gives_april_revenue_of_100():
    original = ratable(9_000, D(2026, 4, 1), D(2026, 5, 1))  # 90.00 for April
    unused = ratable(-3_000, D(2026, 4, 21), D(2026, 5, 1))  # -90.00 x 10/30 = -30.00
    remaining = ratable(4_000, D(2026, 4, 21), D(2026, 5, 1))  # 120.00 x 10/30 = 40.00
    assert (original, unused, remaining) == (
        [(D(2026, 4, 1), 9_000)],
        [(D(2026, 4, 1), -3_000)],
        [(D(2026, 4, 1), 4_000)],
    )
    items = [
        due(f"line{i}", month, amount)
        for i, sched in enumerate((original, unused, remaining))
        for month, amount in sched
    ]
    # 90.00 - 30.00 + 40.00 = 100.00 of April revenue, in one pair of lines.
    assert rows(recognize(*items)) == [
        (DEFERRED, 10_000, 0, 10_000, 0),
        (REVENUE, 0, 10_000, 0, 10_000),
    ]
    # The proration invoice itself: Dr AR 10.00 / Dr deferred 30.00 / Cr deferred 40.00.
    assert rows(invoice((-3_000, DEFERRED), (4_000, DEFERRED))) == [
        (AR, 1_000, 0, 1_000, 0),
        (DEFERRED, 3_000, 0, 3_000, 0),
        (DEFERRED, 0, 4_000, 0, 4_000),
    ]


def test_b_a_negative_recognition_flips_sides():
    """The unused-time credit alone releases -30.00: Dr revenue / Cr deferred."""
    assert rows(recognize(due("unused", D(2026, 4, 1), -3_000))) == [
        (REVENUE, 3_000, 0, 3_000, 0),
        (DEFERRED, 0, 3_000, 0, 3_000),
    ]


def test_b_net_negative_downgrade_lands_on_customer_credit_not_revenue():
    """120.00 -> 90.00 on Apr 21: -40.00 unused + 30.00 remaining = -10.00 owed to the
    customer: Dr deferred 40.00 / Cr deferred 30.00 / Cr customer credit balance 10.00."""
    lines = invoice((-4_000, DEFERRED), (3_000, DEFERRED), customer_credit=CUSTOMER_CREDIT)
    assert rows(lines) == [
        (CUSTOMER_CREDIT, 0, 1_000, 0, 1_000),
        (DEFERRED, 4_000, 0, 4_000, 0),
        (DEFERRED, 0, 3_000, 0, 3_000),
    ]
    assert REVENUE not in {ln.account_id for ln in lines}
    # April revenue after the downgrade: 120.00 - 40.00 + 30.00 = 110.00.
    april = [due("orig", D(2026, 4, 1), 12_000), due("unused", D(2026, 4, 1), -4_000)]
    april.append(due("remaining", D(2026, 4, 1), 3_000))
    assert rows(recognize(*april))[1] == (REVENUE, 0, 11_000, 0, 11_000)


def test_b_without_the_option_a_negative_invoice_still_credits_ar():
    """Existing behaviour is unchanged when no customer credit account is given."""
    assert rows(invoice((-4_000, DEFERRED), (3_000, DEFERRED)))[0] == (AR, 0, 1_000, 0, 1_000)


# --- (c) credit note of 100.00 + 8% tax on a 300.00 invoice for Apr-Jun, April recognized --

APR, MAY, JUN = D(2026, 4, 1), D(2026, 5, 1), D(2026, 6, 1)


def three_month_schedule() -> list[ScheduledAmount]:
    # 300.00 over [Apr 1, Jul 1): 91 days; 30/31/30 -> 98.90 / 102.20 / 98.90.
    months = ratable(30_000, APR, D(2026, 7, 1))
    assert months == [(APR, 9_890), (MAY, 10_220), (JUN, 9_890)]
    return [ScheduledAmount(m, m, amount, recognized=m == APR) for m, amount in months]


def test_c_credit_splits_by_the_schedule_into_earned_and_unearned():
    # 100.00 x 98.90/300 = 32.9667 (Apr), x 102.20/300 = 34.0667 (May), x 98.90/300 (Jun):
    # floors 32.96 / 34.06 / 32.96, the 2 leftover cents go to the earliest ties (Apr, May).
    split = split_credit(10_000, three_month_schedule())
    assert split.earned_minor == 3_297  # 32.97 on recognized April
    assert split.unearned_minor == 6_703  # 67.03 on planned May and June
    assert split.reductions == {MAY: 3_407, JUN: 3_296}  # cut 34.07 and 32.96
    assert split.earned_shares == {APR: 3_297}  # April's revenue reversed by 32.97
    remaining = {m: a - split.reductions.get(m, 0) for m, a in [(MAY, 10_220), (JUN, 9_890)]}
    assert remaining == {MAY: 6_813, JUN: 6_594}  # May 68.13, June 65.94 still planned
    # Over the contract: 98.90 - 32.97 + 68.13 + 65.94 = 200.00 = 300.00 - 100.00.
    assert 9_890 - split.earned_minor + sum(remaining.values()) == 20_000


@pytest.mark.parametrize(
    ("timing", "counter"),
    [
        ("pre_payment", AR),  # not yet paid: the credit reduces the receivable
        ("post_payment", CUSTOMER_CREDIT),  # paid: the customer holds a credit balance
    ],
)
def test_c_credit_note_entry(timing, counter):
    split = split_credit(10_000, three_month_schedule())
    lines = credit_note_lines(
        parts=[
            CreditPart(
                net_minor=10_000,
                deferred_account_id=DEFERRED,
                revenue_account_id=CONTRA,
                earned_minor=split.earned_minor,
                unearned_minor=split.unearned_minor,
                product_code="PLATFORM",
            )
        ],
        taxes=[TaxPart(800, TAX, "US-8", "tax")],
        total_minor=10_800,
        timing=timing,
        ar_account_id=AR,
        customer_credit_account_id=CUSTOMER_CREDIT,
        currency="USD",
        functional_currency="USD",
        fx_rate=None,
        rounding_account_id=ROUNDING,
        customer_ref="cus_acme",
        memo="CN-1",
    )
    assert_well_formed(lines)
    assert rows(lines) == [
        (DEFERRED, 6_703, 0, 6_703, 0),  # Dr deferred revenue 67.03 (unearned)
        (CONTRA, 3_297, 0, 3_297, 0),  # Dr contra-revenue 32.97 (earned)
        (TAX, 800, 0, 800, 0),  # Dr tax payable 8.00
        (counter, 0, 10_800, 0, 10_800),  # Cr AR / customer credit 108.00
    ]


def test_c_after_payment_the_refund_moves_the_credit_to_cash():
    lines = refund_lines(
        amount_minor=10_800,
        from_balance="customer_credit",
        currency="USD",
        functional_currency="USD",
        balance_rate=None,
        refund_rate=None,
        cash_account_id=CASH,
        ar_account_id=AR,
        customer_credit_account_id=CUSTOMER_CREDIT,
        fx_account_id=FX,
        rounding_account_id=ROUNDING,
        customer_ref="cus_acme",
        memo="RE-1",
    )
    assert rows(lines) == [
        (CUSTOMER_CREDIT, 10_800, 0, 10_800, 0),  # Dr customer credit 108.00
        (CASH, 0, 10_800, 0, 10_800),  # Cr cash 108.00
    ]


# --- (d) usage overage of 250.00 billed in arrears --------------------------------------------


def test_d_usage_overage_is_revenue_at_once_with_no_deferral():
    assert point_in_time(25_000, D(2026, 5, 1)) == [(D(2026, 5, 1), 25_000)]
    assert rows(invoice((25_000, REVENUE))) == [
        (AR, 25_000, 0, 25_000, 0),  # Dr AR 250.00
        (REVENUE, 0, 25_000, 0, 25_000),  # Cr revenue 250.00, nothing deferred
    ]
    # Beside a subscription on the same invoice, only the subscription is deferred.
    assert rows(invoice((100_000, DEFERRED), (25_000, REVENUE))) == [
        (AR, 125_000, 0, 125_000, 0),
        (DEFERRED, 0, 100_000, 0, 100_000),
        (REVENUE, 0, 25_000, 0, 25_000),
    ]


# --- (e) EUR 1,000.00 invoice for a USD entity at 1.0800, paid at 1.1000 with a 29.30 fee ----


def test_e_eur_invoice_at_the_invoice_date_rate():
    lines = invoice((100_000, DEFERRED), currency="EUR", rate=Decimal("1.0800"))
    assert rows(lines) == [
        (AR, 100_000, 0, 108_000, 0),  # Dr AR 1,000.00 EUR = 1,080.00 USD
        (DEFERRED, 0, 100_000, 0, 108_000),  # Cr deferred 1,000.00 EUR = 1,080.00 USD
    ]


def test_e_payment_at_a_later_rate_realizes_an_fx_gain():
    lines = pay(
        amount_minor=100_000,
        fee_minor=2_930,
        open_ar_minor=100_000,
        settlement_rate=Decimal("1.1000"),
    )
    assert rows(lines) == [
        (CASH, 97_070, 0, 106_777, 0),  # Dr cash 970.70 EUR x 1.10 = 1,067.77 USD
        (FEES, 2_930, 0, 3_223, 0),  # Dr fees 29.30 EUR x 1.10 = 32.23 USD
        (AR, 0, 100_000, 0, 108_000),  # Cr AR 1,000.00 EUR at its 1,080.00 USD carrying
        (FX, 0, 0, 0, 2_000),  # Cr FX gain 20.00 USD = 1,000.00 x (1.10 - 1.08)
    ]


def test_e_recognition_releases_deferred_revenue_at_the_historical_rate():
    """Deferred revenue is non-monetary: 1,000.00 EUR is released at 1.0800 = 1,080.00 USD,
    whatever the rate at payment or at recognition."""
    item = due("eur", D(2026, 4, 1), 100_000, currency="EUR", rate=Decimal("1.0800"))
    lines = recognize(item, currency="EUR")
    assert rows(lines) == [(DEFERRED, 100_000, 0, 108_000, 0), (REVENUE, 0, 100_000, 0, 108_000)]


# kind, amount, fee, open AR, settlement rate, expected rows
EUR_PAYMENTS = [
    (
        "partial",
        40_000,
        0,
        100_000,
        "1.1000",
        [
            (CASH, 40_000, 0, 44_000, 0),  # 400.00 EUR = 440.00 USD
            (AR, 0, 40_000, 0, 43_200),  # 400.00 EUR at 1.08 = 432.00; 600.00 EUR stays open
            (FX, 0, 0, 0, 800),  # gain 8.00
        ],
    ),
    (
        "overpayment",
        105_000,
        0,
        100_000,
        "1.1000",
        [
            (CASH, 105_000, 0, 115_500, 0),  # 1,050.00 EUR = 1,155.00 USD
            (AR, 0, 100_000, 0, 108_000),  # 1,000.00 EUR at 1.08
            (CUSTOMER_CREDIT, 0, 5_000, 0, 5_500),  # 50.00 EUR over = 55.00 USD, a liability
            (FX, 0, 0, 0, 2_000),  # gain 20.00 on the AR only
        ],
    ),
    (
        "loss",
        100_000,
        0,
        100_000,
        "1.0500",
        [
            (CASH, 100_000, 0, 105_000, 0),  # 1,050.00 USD
            (AR, 0, 100_000, 0, 108_000),
            (FX, 0, 0, 3_000, 0),  # Dr FX loss 30.00
        ],
    ),
    (
        "rounding",
        10_000,
        200,
        10_000,
        "1.1025",
        [
            (CASH, 9_800, 0, 10_804, 0),  # 98.00 x 1.1025 = 108.045 -> 108.04 (half even)
            (FEES, 200, 0, 220, 0),  # 2.00 x 1.1025 = 2.205 -> 2.20 (half even)
            (AR, 0, 10_000, 0, 10_800),  # 100.00 at 1.08 = 108.00
            (FX, 0, 0, 0, 225),  # gain 100.00 x 1.1025 - 108.00 = 2.25
            (ROUNDING, 0, 0, 1, 0),  # Dr rounding 0.01: 108.04 + 2.20 + 0.01 = 108.00 + 2.25
        ],
    ),
]


@pytest.mark.parametrize(
    ("amount", "fee", "open_ar", "rate", "expected"),
    [case[1:] for case in EUR_PAYMENTS],
    ids=[case[0] for case in EUR_PAYMENTS],
)
def test_e_payment_variants(amount, fee, open_ar, rate, expected):
    lines = pay(
        amount_minor=amount,
        fee_minor=fee,
        open_ar_minor=open_ar,
        settlement_rate=Decimal(rate),
    )
    assert rows(lines) == expected


def test_e_partial_payments_relieve_exactly_the_carrying_amount():
    """333.33 + 333.33 + 333.34 EUR at 1.0800: converting each would relieve 360.00 + 360.00
    + 360.01 = 1,080.01 USD; relieving a share of the carrying amount gives 360.00 + 359.99 +
    360.01 = 1,080.00, exactly what the invoice booked."""
    open_ar, carrying, relieved = 100_000, 108_000, []
    for amount in (33_333, 33_333, 33_334):
        lines = pay(
            amount_minor=amount,
            open_ar_minor=open_ar,
            open_ar_functional_minor=carrying,
            settlement_rate=Decimal("1.0800"),
        )
        [ar] = [ln for ln in lines if ln.account_id == AR]
        relieved.append(ar.functional_credit_minor)
        open_ar -= ar.credit_minor
        carrying -= ar.functional_credit_minor
    assert relieved == [36_000, 35_999, 36_001]
    assert (open_ar, carrying) == (0, 0)
    naive = [convert_minor(a, Decimal("1.08"), "EUR", "USD") for a in (33_333, 33_333, 33_334)]
    assert naive == [36_000, 36_000, 36_001]


def test_e_refund_of_a_eur_credit_balance_at_a_later_rate_is_an_fx_loss():
    """108.00 EUR of customer credit booked at 1.08 (116.64 USD) paid out at 1.10 (118.80)."""
    lines = refund_lines(
        amount_minor=10_800,
        from_balance="customer_credit",
        currency="EUR",
        functional_currency="USD",
        balance_rate=Decimal("1.0800"),
        refund_rate=Decimal("1.1000"),
        cash_account_id=CASH,
        ar_account_id=AR,
        customer_credit_account_id=CUSTOMER_CREDIT,
        fx_account_id=FX,
        rounding_account_id=ROUNDING,
        customer_ref="cus_acme",
        memo="RE-2",
    )
    assert_well_formed(lines)
    assert rows(lines) == [
        (CUSTOMER_CREDIT, 10_800, 0, 11_664, 0),
        (CASH, 0, 10_800, 0, 11_880),
        (FX, 0, 0, 216, 0),  # Dr FX loss 2.16
    ]


# --- (f) zero- and three-decimal currencies ----------------------------------------------------


def test_f_jpy_invoice_for_a_jpy_entity():
    lines = invoice((120_000, DEFERRED), tax=12_000, currency="JPY", functional="JPY")
    assert rows(lines) == [
        (AR, 132_000, 0, 132_000, 0),  # Dr AR ¥132,000
        (DEFERRED, 0, 120_000, 0, 120_000),  # Cr deferred ¥120,000
        (TAX, 0, 12_000, 0, 12_000),  # Cr consumption tax ¥12,000
    ]


def test_f_jpy_invoice_for_a_usd_entity():
    lines = invoice(
        (120_000, DEFERRED), tax=12_000, currency="JPY", functional="USD", rate=Decimal("0.0067")
    )
    assert rows(lines) == [
        (AR, 132_000, 0, 88_440, 0),  # ¥132,000 x 0.0067 = 884.40 USD
        (DEFERRED, 0, 120_000, 0, 80_400),  # ¥120,000 = 804.00 USD
        (TAX, 0, 12_000, 0, 8_040),  # ¥12,000 = 80.40 USD
    ]


def test_f_jpy_invoice_that_needs_a_rounding_line():
    lines = invoice(
        (9_999, DEFERRED), tax=999, currency="JPY", functional="USD", rate=Decimal("0.0067")
    )
    assert rows(lines) == [
        (AR, 10_998, 0, 7_369, 0),  # ¥10,998 x 0.0067 = 73.6866 -> 73.69
        (DEFERRED, 0, 9_999, 0, 6_699),  # ¥9,999 = 66.9933 -> 66.99
        (TAX, 0, 999, 0, 669),  # ¥999 = 6.6933 -> 6.69
        (ROUNDING, 0, 0, 0, 1),  # Cr rounding 0.01: 66.99 + 6.69 + 0.01 = 73.69
    ]


def test_f_jpy_annual_schedule_is_in_whole_yen():
    schedule = ratable(120_000, D(2026, 4, 15), D(2027, 4, 15))
    assert schedule[0] == (D(2026, 4, 1), 5_260)  # ¥120,000 x 16/365 = 5,260.27
    # x 14/365 = 4,602.74, yet 4,602: the 7 leftover yen go to the seven 31-day months (.78)
    assert schedule[-1] == (D(2027, 4, 1), 4_602)
    assert schedule[1] == (D(2026, 5, 1), 10_192)  # x 31/365 = 10,191.78
    assert sum(a for _, a in schedule) == 120_000


def test_f_jpy_payment_for_a_usd_entity():
    lines = pay(
        amount_minor=132_000,
        fee_minor=4_752,
        open_ar_minor=132_000,
        currency="JPY",
        invoice_rate=Decimal("0.0067"),
        settlement_rate=Decimal("0.0068"),
    )
    assert rows(lines) == [
        (CASH, 127_248, 0, 86_529, 0),  # ¥127,248 x 0.0068 = 865.2864 -> 865.29
        (FEES, 4_752, 0, 3_231, 0),  # ¥4,752 = 32.3136 -> 32.31
        (AR, 0, 132_000, 0, 88_440),  # carried at 884.40
        (FX, 0, 0, 0, 1_320),  # gain 13.20 = ¥132,000 x 0.0001
    ]


def test_f_kwd_invoice_for_a_usd_entity_with_rounding():
    lines = invoice(
        (1_003, REVENUE), tax=50, currency="KWD", functional="USD", rate=Decimal("3.2550")
    )
    assert rows(lines) == [
        (AR, 1_053, 0, 343, 0),  # 1.053 KWD x 3.2550 = 3.4275 -> 3.43 USD
        (REVENUE, 0, 1_003, 0, 326),  # 1.003 KWD = 3.2648 -> 3.26
        (TAX, 0, 50, 0, 16),  # 0.050 KWD = 0.16275 -> 0.16
        (ROUNDING, 0, 0, 0, 1),  # Cr rounding 0.01
    ]


@pytest.mark.parametrize(
    ("amount", "rate", "source", "target", "expected"),
    [
        (132_000, "0.0067", "JPY", "USD", 88_440),  # ¥132,000 -> 884.40 USD
        (10_000, "149.53", "USD", "JPY", 14_953),  # 100.00 USD -> ¥14,953
        (1, "149.53", "USD", "JPY", 1),  # 0.01 USD -> ¥1.4953 -> ¥1
        (1, "0.0050", "JPY", "USD", 0),  # ¥1 -> 0.5 cent -> 0 (half to even)
        (3, "0.0050", "JPY", "USD", 2),  # ¥3 -> 1.5 cents -> 2 (half to even)
        (1_234_567, "3.2550", "KWD", "USD", 401_852),  # 1,234.567 KWD -> 4,018.52 USD
        (10_000, "0.3070", "USD", "KWD", 30_700),  # 100.00 USD -> 30.700 KWD
        (5, "0.3075", "USD", "KWD", 15),  # 0.05 USD -> 15.375 fils -> 0.015 KWD
        (1_000, "489.5500", "KWD", "JPY", 490),  # 1.000 KWD -> ¥489.55 -> ¥490
    ],
)
def test_f_conversions_between_minor_units(amount, rate, source, target, expected):
    assert convert_minor(amount, Decimal(rate), source, target) == expected
