"""Properties over random invoices, credit notes, payments, refunds and orderings.

Every entry balances in both currencies and has no negative or two-sided line; every schedule
sums exactly to its line; credits never cut a planned line past zero; recognition is additive.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.accounting.credits import (
    CreditPart,
    ScheduledAmount,
    credit_note_lines,
    functional_reductions,
    split_credit,
)
from sync.accounting.entries import (
    InvoicePlan,
    RevenuePart,
    TaxPart,
    build_invoice_lines,
    convert_minor,
)
from sync.accounting.payments import payment_lines, refund_lines
from sync.accounting.recognition import DueAmount, recognition_lines, spread_functional
from sync.accounting.schedules import month_start, next_month, ratable
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
)

CURRENCIES = ["USD", "EUR", "JPY", "KWD"]
OTHER_DEFERRED, OTHER_REVENUE = 2410, 4010

currencies = st.sampled_from(CURRENCIES)
rates = st.decimals(
    min_value=Decimal("0.0001"), max_value=Decimal("600"), places=6, allow_nan=False
).filter(lambda r: r > 0)
amounts = st.integers(min_value=1, max_value=10**10)
dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31))

SETTINGS = settings(max_examples=200, deadline=None)


@st.composite
def currency_pairs(draw):
    """(transaction currency, functional currency, rate or None when equal)."""
    cur, fun = draw(currencies), draw(currencies)
    return cur, fun, None if cur == fun else draw(rates)


@st.composite
def invoices(draw, *, positive: bool = False):
    cur, fun, rate = draw(currency_pairs())
    low = 0 if positive else -(10**9)
    nets = draw(st.lists(st.integers(min_value=low, max_value=10**9), min_size=1, max_size=6))
    taxes = draw(st.lists(st.integers(min_value=0, max_value=10**8), max_size=3))
    total = sum(nets) + sum(taxes)
    plan = InvoicePlan(
        total_minor=total,
        currency=cur,
        functional_currency=fun,
        fx_rate=rate,
        ar_account_id=AR,
        rounding_account_id=ROUNDING,
        customer_ref="cus",
        memo="INV",
        revenue=tuple(
            RevenuePart(n, draw(st.sampled_from([DEFERRED, REVENUE])), "l", "P") for n in nets
        ),
        taxes=tuple(TaxPart(t, TAX, "T", "t") for t in taxes),
        customer_credit_account_id=draw(st.sampled_from([None, CUSTOMER_CREDIT])),
    )
    return plan


@SETTINGS
@given(invoices())
def test_every_invoice_entry_is_well_formed(plan):
    lines = build_invoice_lines(plan)
    assert_well_formed(lines)
    counter = lines[0]
    if plan.total_minor < 0 and plan.customer_credit_account_id is not None:
        assert counter.account_id == CUSTOMER_CREDIT
        assert counter.credit_minor == -plan.total_minor
    else:
        assert counter.account_id == AR


@SETTINGS
@given(invoices(positive=True))
def test_the_customer_credit_option_changes_nothing_for_a_positive_invoice(plan):
    from dataclasses import replace

    with_option = replace(plan, customer_credit_account_id=CUSTOMER_CREDIT)
    without = replace(plan, customer_credit_account_id=None)
    assert build_invoice_lines(with_option) == build_invoice_lines(without)


# --- schedules ----------------------------------------------------------------------------


@SETTINGS
@given(
    st.integers(min_value=-(10**12), max_value=10**12),
    dates,
    st.integers(min_value=0, max_value=3 * 366),
)
def test_ratable_sums_exactly_and_keeps_the_sign(amount, start, days):
    end = start + dt.timedelta(days=days)
    schedule = ratable(amount, start, end)
    assert sum(a for _, a in schedule) == amount
    assert all(a * amount >= 0 for _, a in schedule)
    months = [m for m, _ in schedule]
    assert months[0] == month_start(start)
    assert all(next_month(a) == b for a, b in pairwise(months))
    if days:
        assert months[-1] == month_start(end - dt.timedelta(days=1))


@st.composite
def line_schedules(draw, *, allow_negative: bool = True):
    """A ratable line's schedule (1 day to 3 years), some months recognized."""
    low = -(10**9) if allow_negative else 1
    amount = draw(st.integers(min_value=low, max_value=10**9).filter(bool))
    start = draw(dates)
    end = start + dt.timedelta(days=draw(st.integers(min_value=1, max_value=3 * 366)))
    months = ratable(amount, start, end)
    recognized = draw(st.integers(min_value=0, max_value=len(months)))
    return [ScheduledAmount(m, m, a, recognized=i < recognized) for i, (m, a) in enumerate(months)]


@SETTINGS
@given(line_schedules(), st.data())
def test_split_credit_adds_up_and_never_overcuts(schedule, data):
    creditable = sum(s.amount_minor for s in schedule)
    credit = data.draw(
        st.integers(min_value=min(0, creditable), max_value=max(0, creditable)), label="credit"
    )
    split = split_credit(credit, schedule)
    assert split.earned_minor + split.unearned_minor == credit
    recognized = sum(s.amount_minor for s in schedule if s.recognized)
    assert abs(split.earned_minor) <= abs(recognized)
    planned = {s.key: s.amount_minor for s in schedule if not s.recognized}
    assert set(split.reductions) <= set(planned)
    assert sum(split.reductions.values()) == split.unearned_minor
    assert sum(split.earned_shares.values()) == split.earned_minor
    assert all(s.recognized for s in schedule if s.key in split.earned_shares)
    for key, cut in split.reductions.items():
        assert cut * planned[key] > 0  # same sign, never zero
        assert abs(cut) <= abs(planned[key])


@SETTINGS
@given(line_schedules(), st.integers(min_value=1, max_value=10**9))
def test_split_credit_refuses_more_than_remains(schedule, extra):
    creditable = sum(s.amount_minor for s in schedule)
    sign = 1 if creditable > 0 else -1
    try:
        split_credit(creditable + sign * extra, schedule)
    except ValueError:
        return
    raise AssertionError("an over-credit was accepted")


# --- credit notes, payments, refunds ------------------------------------------------------


@SETTINGS
@given(
    line_schedules(allow_negative=False),
    currency_pairs(),
    st.sampled_from(["pre_payment", "post_payment"]),
    st.integers(min_value=0, max_value=10**8),
    st.data(),
)
def test_every_credit_note_entry_is_well_formed(schedule, pair, timing, tax, data):
    cur, fun, rate = pair
    credit = data.draw(
        st.integers(min_value=1, max_value=sum(s.amount_minor for s in schedule)), label="credit"
    )
    split = split_credit(credit, schedule)
    lines = credit_note_lines(
        parts=[CreditPart(credit, DEFERRED, CONTRA, split.earned_minor, split.unearned_minor, "P")],
        taxes=[TaxPart(tax, TAX, "T", "t")],
        total_minor=credit + tax,
        timing=timing,
        ar_account_id=AR,
        customer_credit_account_id=CUSTOMER_CREDIT,
        currency=cur,
        functional_currency=fun,
        fx_rate=rate,
        rounding_account_id=ROUNDING,
        customer_ref="cus",
        memo="CN",
    )
    assert_well_formed(lines)
    counter = AR if timing == "pre_payment" else CUSTOMER_CREDIT
    assert balances(lines)[counter][0] == -(credit + tax)
    assert balances(lines).get(DEFERRED, (0, 0))[0] == split.unearned_minor
    assert balances(lines).get(CONTRA, (0, 0))[0] == split.earned_minor


@SETTINGS
@given(
    amounts,
    st.integers(min_value=0, max_value=10**10),
    st.integers(min_value=0, max_value=10**10),
    currency_pairs(),
    rates,
    st.booleans(),
)
def test_every_payment_entry_is_well_formed(amount, fee, open_ar, pair, settle, with_carrying):
    cur, fun, rate = pair
    fee = min(fee, amount + 1_000)  # a fee a little above a tiny payment is allowed
    carrying = (
        convert_minor(open_ar, rate, cur, fun) if rate is not None and with_carrying else None
    )
    lines = payment_lines(
        amount_minor=amount,
        fee_minor=fee,
        open_ar_minor=open_ar,
        currency=cur,
        functional_currency=fun,
        invoice_rate=rate,
        settlement_rate=None if rate is None else settle,
        cash_account_id=CASH,
        fee_account_id=FEES,
        ar_account_id=AR,
        customer_credit_account_id=CUSTOMER_CREDIT,
        fx_account_id=FX,
        rounding_account_id=ROUNDING,
        customer_ref="cus",
        memo="PAY",
        open_ar_functional_minor=carrying,
    )
    assert_well_formed(lines)
    b = balances(lines)
    assert b.get(AR, (0, 0))[0] == -min(amount, open_ar)
    assert b.get(CUSTOMER_CREDIT, (0, 0))[0] == -max(0, amount - open_ar)
    assert b.get(CASH, (0, 0))[0] + b.get(FEES, (0, 0))[0] == amount
    if rate is None:
        assert FX not in b and ROUNDING not in b


@SETTINGS
@given(amounts, currency_pairs(), rates, st.sampled_from(["customer_credit", "ar"]))
def test_every_refund_entry_is_well_formed(amount, pair, refund_rate, source):
    cur, fun, rate = pair
    lines = refund_lines(
        amount_minor=amount,
        from_balance=source,
        currency=cur,
        functional_currency=fun,
        balance_rate=rate,
        refund_rate=None if rate is None else refund_rate,
        cash_account_id=CASH,
        ar_account_id=AR,
        customer_credit_account_id=CUSTOMER_CREDIT,
        fx_account_id=FX,
        rounding_account_id=ROUNDING,
        customer_ref="cus",
        memo="RE",
    )
    assert_well_formed(lines)
    assert balances(lines)[CASH][0] == -amount


@SETTINGS
@given(
    currency_pairs(),
    st.integers(min_value=1, max_value=10**9),
    st.lists(st.integers(min_value=1, max_value=10**4), min_size=1, max_size=8),
)
def test_partial_payments_relieve_exactly_the_carrying_amount(pair, total, weights):
    """However a receivable is paid off in parts, its functional carrying amount is relieved
    exactly, when each payment passes the open carrying amount."""
    cur, fun, rate = pair
    pieces = [total * w // sum(weights) for w in weights]
    pieces[-1] += total - sum(pieces)
    pieces = [p for p in pieces if p]
    carrying = total if rate is None else convert_minor(total, rate, cur, fun)
    open_ar, open_f = total, carrying
    for piece in pieces:
        lines = payment_lines(
            amount_minor=piece,
            fee_minor=0,
            open_ar_minor=open_ar,
            currency=cur,
            functional_currency=fun,
            invoice_rate=rate,
            settlement_rate=rate,
            cash_account_id=CASH,
            fee_account_id=FEES,
            ar_account_id=AR,
            customer_credit_account_id=CUSTOMER_CREDIT,
            fx_account_id=FX,
            rounding_account_id=ROUNDING,
            customer_ref="cus",
            memo="PAY",
            open_ar_functional_minor=open_f,
        )
        assert_well_formed(lines)
        ar = balances(lines)[AR]
        open_ar += ar[0]
        open_f += ar[1]
    assert (open_ar, open_f) == (0, 0)


# --- recognition --------------------------------------------------------------------------


@st.composite
def due_items(draw):
    cur, fun, _ = draw(currency_pairs())
    n = draw(st.integers(min_value=0, max_value=25))
    items = []
    for i in range(n):
        items.append(
            DueAmount(
                key=i,
                deferred_account_id=draw(st.sampled_from([DEFERRED, OTHER_DEFERRED])),
                revenue_account_id=draw(st.sampled_from([REVENUE, OTHER_REVENUE])),
                product_code=draw(st.sampled_from(["A", "B"])),
                period=month_start(draw(dates)),
                amount_minor=draw(st.integers(min_value=-(10**9), max_value=10**9)),
                currency=cur,
                fx_rate=None if cur == fun else draw(rates),
                functional_currency=fun,
            )
        )
    return cur, fun, items


@SETTINGS
@given(due_items(), st.data())
def test_recognition_is_well_formed_additive_and_order_independent(drawn, data):
    cur, fun, items = drawn
    whole = recognition_lines(items, currency=cur, functional_currency=fun)
    assert_well_formed(whole)
    chosen = data.draw(st.sets(st.sampled_from(range(len(items))) if items else st.nothing()))
    first = [it for it in items if it.key in chosen]
    rest = [it for it in items if it.key not in chosen]
    part1 = recognition_lines(first, currency=cur, functional_currency=fun)
    part2 = recognition_lines(rest, currency=cur, functional_currency=fun)
    assert_well_formed(part1)
    assert_well_formed(part2)
    assert balances(part1, part2) == balances(whole)
    shuffled = data.draw(st.permutations(items))
    assert recognition_lines(shuffled, currency=cur, functional_currency=fun) == whole


@SETTINGS
@given(line_schedules(), currency_pairs())
def test_spread_functional_shares_sum_to_the_deferral(schedule, pair):
    cur, fun, rate = pair
    amounts_ = [s.amount_minor for s in schedule]
    total = sum(amounts_)
    functional = total if rate is None else convert_minor(total, rate, cur, fun)
    shares = spread_functional(amounts_, functional)
    assert sum(shares) == functional
    assert all(f * functional >= 0 for f in shares)


# --- one invoice through a random ordering of events --------------------------------------

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["recognize", "pay", "credit", "refund"]),
        st.integers(min_value=1, max_value=100),  # percent of what the event may take
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(
    currency_pairs(),
    st.integers(min_value=1, max_value=10**8),
    st.integers(min_value=0, max_value=25),
    dates,
    st.integers(min_value=1, max_value=3 * 366),
    EVENTS,
    rates,
)
def test_a_random_life_of_an_invoice_keeps_the_books_straight(
    pair, net, tax_pct, start, days, events, later_rate
):
    """Invoice, then recognitions, payments, credit notes and refunds in any order.

    Every entry is well formed; AR never goes negative and customer credit never goes to a
    debit; deferred revenue empties exactly (transaction currency) once the rest is
    recognized; revenue plus contra is the line less what was credited."""
    cur, fun, rate = pair
    settle = None if rate is None else later_rate
    tax = net * tax_pct // 100
    end = start + dt.timedelta(days=days)
    inv = build_invoice_lines(
        InvoicePlan(
            net + tax, cur, fun, rate, AR, ROUNDING, "cus", "INV",
            (RevenuePart(net, DEFERRED, "l", "P"),), (TaxPart(tax, TAX, "T", "t"),),
        )
    )  # fmt: skip
    assert_well_formed(inv)
    entries = [inv]
    schedule = {m: [a, False] for m, a in ratable(net, start, end)}
    credited = tax_credited = 0
    common = {
        "currency": cur,
        "functional_currency": fun,
        "ar_account_id": AR,
        "customer_credit_account_id": CUSTOMER_CREDIT,
        "rounding_account_id": ROUNDING,
        "customer_ref": "cus",
    }

    def ledger(account: int) -> int:
        return balances(*entries).get(account, (0, 0))[0]

    def post(lines):
        assert_well_formed(lines)
        entries.append(lines)
        assert ledger(AR) >= 0
        assert ledger(CUSTOMER_CREDIT) <= 0

    def recognize(keys):
        items = [
            DueAmount(m, DEFERRED, REVENUE, "P", m, schedule[m][0], cur, rate, fun) for m in keys
        ]
        for m in keys:
            schedule[m][1] = True
        post(recognition_lines(items, currency=cur, functional_currency=fun))

    for kind, pct in events:
        if kind == "recognize":
            planned = [m for m, (_, done) in schedule.items() if not done]
            if planned:
                recognize(planned[:1])
        elif kind == "pay":
            amount = max(1, (ledger(AR) + 1) * pct // 80)  # sometimes more than is open
            post(
                payment_lines(
                    amount_minor=amount,
                    fee_minor=amount * 3 // 100,
                    open_ar_minor=ledger(AR),
                    invoice_rate=rate,
                    settlement_rate=settle,
                    cash_account_id=CASH,
                    fee_account_id=FEES,
                    fx_account_id=FX,
                    memo="PAY",
                    **common,
                )
            )
        elif kind == "credit":
            remaining = sum(a for a, _ in schedule.values())
            credit = remaining * pct // 100
            if credit <= 0:
                continue
            credit_tax = credit * tax_pct // 100
            sched = [ScheduledAmount(m, m, a, done) for m, (a, done) in schedule.items()]
            split = split_credit(credit, sched)
            for m, cut in (split.reductions | split.earned_shares).items():
                schedule[m][0] -= cut
            credited += credit
            tax_credited += credit_tax
            pre = ledger(AR) >= credit + credit_tax
            post(
                credit_note_lines(
                    parts=[
                        CreditPart(
                            credit, DEFERRED, CONTRA, split.earned_minor, split.unearned_minor, "P"
                        )
                    ],
                    taxes=[TaxPart(credit_tax, TAX, "T", "t")],
                    total_minor=credit + credit_tax,
                    timing="pre_payment" if pre else "post_payment",
                    fx_rate=rate,
                    memo="CN",
                    **common,
                )
            )
        else:
            held = -ledger(CUSTOMER_CREDIT)
            amount = held * pct // 100
            if amount > 0:
                post(
                    refund_lines(
                        amount_minor=amount,
                        from_balance="customer_credit",
                        balance_rate=rate,
                        refund_rate=settle,
                        cash_account_id=CASH,
                        fx_account_id=FX,
                        memo="RE",
                        **common,
                    )
                )
    recognize([m for m, (_, done) in schedule.items() if not done])
    assert ledger(DEFERRED) == 0
    assert ledger(REVENUE) + ledger(CONTRA) == -(net - credited)
    assert ledger(TAX) == -(tax - tax_credited)
    assert all(a >= 0 for a, _ in schedule.values())
    assert sum(a for a, _ in schedule.values()) == net - credited


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([c for c in CURRENCIES if c != "USD"]),
    rates,
    st.integers(min_value=1, max_value=10**9),
    dates,
    st.integers(min_value=1, max_value=3 * 366),
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 100)), max_size=4),
)
def test_tracked_functional_amounts_empty_deferred_revenue_exactly(
    cur, rate, net, start, days, steps
):
    """With each schedule line's functional carrying amount tracked (spread_functional at the
    invoice, functional_reductions on each credit, functional_amount_minor at recognition),
    deferred revenue ends at exactly zero in functional currency too, credits included."""
    inv = build_invoice_lines(
        InvoicePlan(
            net, cur, "USD", rate, AR, ROUNDING, "cus", "INV",
            (RevenuePart(net, DEFERRED, "l", "P"),), (),
        )
    )  # fmt: skip
    deferred_f = balances(inv)[DEFERRED][1]
    months = ratable(net, start, start + dt.timedelta(days=days))
    shares = spread_functional([a for _, a in months], -deferred_f)
    sched = {m: [a, f, False] for (m, a), f in zip(months, shares, strict=True)}
    entries, keys, pos = [inv], list(sched), 0

    def recognize(ks):
        items = [DueAmount(m, DEFERRED, REVENUE, "P", m, sched[m][0], cur, rate, "USD", sched[m][1])
                 for m in ks]  # fmt: skip
        entries.append(recognition_lines(items, currency=cur, functional_currency="USD"))
        for m in ks:
            sched[m][2] = True

    for advance, pct in steps:
        recognize(keys[pos : pos + advance])
        pos = min(len(keys), pos + advance)
        credit = sum(v[0] for v in sched.values()) * pct // 100
        if not credit:
            continue
        split = split_credit(
            credit, [ScheduledAmount(m, m, a, d) for m, (a, _, d) in sched.items()]
        )
        cuts = functional_reductions(
            split.reductions, {m: (sched[m][0], sched[m][1]) for m in split.reductions}
        )
        for m, cut in split.reductions.items():
            sched[m][0] -= cut
            sched[m][1] -= cuts[m]
        for m, cut in split.earned_shares.items():
            sched[m][0] -= cut
        part = CreditPart(
            credit, DEFERRED, CONTRA, split.earned_minor, split.unearned_minor, "P",
            unearned_functional_minor=sum(cuts.values()),
        )  # fmt: skip
        lines = credit_note_lines(
            parts=[part], taxes=[], total_minor=credit, timing="pre_payment", ar_account_id=AR,
            customer_credit_account_id=CUSTOMER_CREDIT, currency=cur, functional_currency="USD",
            fx_rate=rate, rounding_account_id=ROUNDING, customer_ref="cus", memo="CN",
        )  # fmt: skip
        assert_well_formed(lines)
        entries.append(lines)
    recognize(keys[pos:])
    for entry in entries:
        assert_well_formed(entry)
    assert DEFERRED not in balances(*entries)
