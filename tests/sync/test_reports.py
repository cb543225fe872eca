"""Ledger reports: trial balance, deferred revenue roll-forward, and the lines behind a figure.

The books are built directly with the ORM: each entry is created as a draft with balanced lines,
then moved to its state (PostgreSQL refuses lines on a posted entry). On PostgreSQL the deferred
balance trigger is then fired at once, so the test books are provably balanced.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

import pytest
from django.db import connection

from sync.models import (
    GLAccount,
    JournalEntry,
    JournalLine,
    Journey,
    LegalEntity,
    PostingRule,
)
from sync.reports import (
    ROLLFORWARD_COLUMNS,
    TRIAL_BALANCE_COLUMNS,
    ReportError,
    deferred_revenue_rollforward,
    infer_report,
    lines_behind,
    lines_total,
    parse_period,
    trial_balance,
)
from tests.factories import GLAccountFactory, Ledger, make_ledger

pytestmark = pytest.mark.django_db

Kind = JournalEntry.Kind
State = JournalEntry.State
MAR, APR, MAY = dt.date(2026, 3, 1), dt.date(2026, 4, 1), dt.date(2026, 5, 1)
_seq = itertools.count(1)


# --- building the books -------------------------------------------------------------------------


def post(
    entity: LegalEntity,
    kind: str,
    day: dt.date,
    *lines: tuple[GLAccount, int, int, str],
    state: str = State.POSTED,
    functional_currency: str | None = None,
    external_id: str | None = None,
    journey: Journey | None = None,
) -> JournalEntry:
    """An entry of ``kind`` with ``(account, debit, credit, product)`` lines, then ``state``."""
    currency = functional_currency or entity.functional_currency
    entry = JournalEntry.objects.create(
        legal_entity=entity,
        journey=journey,
        kind=kind,
        posting_date=day,
        currency=currency,
        functional_currency=currency,
        external_id=external_id or f"RCT-RPT-{next(_seq):05d}",
    )
    JournalLine.objects.bulk_create(
        JournalLine(
            entry=entry,
            line_no=no,
            account=account,
            debit_minor=debit,
            credit_minor=credit,
            functional_debit_minor=debit,
            functional_credit_minor=credit,
            product_code=product,
        )
        for no, (account, debit, credit, product) in enumerate(lines, start=1)
    )
    if state != State.DRAFT:
        JournalEntry.objects.filter(pk=entry.pk).update(state=state)
        entry.refresh_from_db()
    return entry


def check_balanced_now() -> None:
    """Fire PostgreSQL's deferred balance trigger now instead of at a commit that never comes."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@dataclass
class Books:
    us: Ledger
    de: Ledger
    entries: dict[str, JournalEntry]


def build_books() -> Books:
    """us-inc (USD) over March and April 2026, with noise that must never count.

    March:  INV-1  Dr AR 1,500.00 / Cr deferred PLAT 1,200.00, API 300.00
            REC-1  Dr deferred PLAT 100.00 / Cr revenue 100.00
    April:  INV-2  Dr AR 600.00 / Cr deferred PLAT 600.00
            CN-1   Dr deferred API 50.00 / Cr AR 50.00
            REV-1  Dr deferred PLAT 20.00 / Cr AR 20.00 (a reversal)
            REC-2  Dr deferred PLAT 150.00, API 25.00 / Cr revenue 175.00
    Noise:  a draft, a failed and a posting invoice in April, a posted invoice in May, and
            de-gmbh's own posted invoice in April.
    """
    us = make_ledger("us-inc", "USD", "US", "1")
    de = make_ledger("de-gmbh", "EUR", "DE", "2")
    e = us.entity
    entries = {
        "inv1": post(
            e,
            Kind.INVOICE,
            dt.date(2026, 3, 5),
            (us.ar, 150_000, 0, ""),
            (us.deferred, 0, 120_000, "PLAT"),
            (us.deferred, 0, 30_000, "API"),
        ),
        "rec1": post(
            e,
            Kind.RECOGNITION,
            dt.date(2026, 3, 31),
            (us.deferred, 10_000, 0, "PLAT"),
            (us.revenue, 0, 10_000, "PLAT"),
        ),
        "inv2": post(
            e,
            Kind.INVOICE,
            dt.date(2026, 4, 2),
            (us.ar, 60_000, 0, ""),
            (us.deferred, 0, 60_000, "PLAT"),
        ),
        "cn1": post(
            e,
            Kind.CREDIT_NOTE,
            dt.date(2026, 4, 15),
            (us.deferred, 5_000, 0, "API"),
            (us.ar, 0, 5_000, ""),
        ),
        "rev1": post(
            e,
            Kind.REVERSAL,
            dt.date(2026, 4, 20),
            (us.deferred, 2_000, 0, "PLAT"),
            (us.ar, 0, 2_000, ""),
        ),
        "rec2": post(
            e,
            Kind.RECOGNITION,
            dt.date(2026, 4, 30),
            (us.deferred, 15_000, 0, "PLAT"),
            (us.deferred, 2_500, 0, "API"),
            (us.revenue, 0, 17_500, "PLAT"),
        ),
    }
    for name, state in [("draft", State.DRAFT), ("failed", State.FAILED), ("posting", "posting")]:
        entries[name] = post(
            e,
            Kind.INVOICE,
            dt.date(2026, 4, 10),
            (us.ar, 99_900, 0, ""),
            (us.deferred, 0, 99_900, "PLAT"),
            state=state,
        )
    entries["may"] = post(
        e, Kind.INVOICE, MAY, (us.ar, 77_700, 0, ""), (us.deferred, 0, 77_700, "PLAT")
    )
    entries["de"] = post(
        de.entity,
        Kind.INVOICE,
        dt.date(2026, 4, 3),
        (de.ar, 88_800, 0, ""),
        (de.deferred, 0, 88_800, "PLAT"),
    )
    check_balanced_now()
    return Books(us, de, entries)


@pytest.fixture
def books() -> Books:
    return build_books()


def tb_rows(tb) -> dict[str, tuple[int, int, int, int]]:
    return {r.number: (r.opening, r.debits, r.credits, r.closing) for r in tb.rows}


def rf_rows(rf) -> dict[str, tuple[int, int, int, int, int]]:
    return {
        r.product_code: (r.opening, r.billed, r.recognized, r.credited, r.closing) for r in rf.rows
    }


# --- trial balance ------------------------------------------------------------------------------


def test_trial_balance_of_april_per_account(books):
    tb = trial_balance(entity=books.us.entity, period=APR)

    assert tb.currency == "USD"
    #                 opening    debits   credits    closing  (debit-positive)
    assert tb_rows(tb) == {
        "1200": (150_000, 60_000, 7_000, 203_000),
        "2400": (-140_000, 24_500, 60_000, -175_500),
        "4000": (-10_000, 0, 17_500, -27_500),
    }
    assert (tb.opening, tb.debits, tb.credits, tb.closing) == (0, 84_500, 84_500, 0)
    assert tb.is_balanced and tb.difference == 0
    assert tb.excluded_entries == 0


def test_trial_balance_of_march_has_no_opening(books):
    tb = trial_balance(entity=books.us.entity, period=MAR)

    assert tb_rows(tb) == {
        "1200": (0, 150_000, 0, 150_000),
        "2400": (0, 10_000, 150_000, -140_000),
        "4000": (0, 0, 10_000, -10_000),
    }
    assert (tb.debits, tb.credits) == (160_000, 160_000)


def test_trial_balance_leaves_out_draft_failed_and_posting_entries(books):
    # 99,900 sits on each of them; it appears in no figure.
    tb = trial_balance(entity=books.us.entity, period=APR)
    figures = {n for r in tb.rows for n in (r.opening, r.debits, r.credits, r.closing)}
    assert not figures & {99_900, 60_000 + 99_900, 150_000 + 99_900}
    assert tb_rows(tb)["1200"][1] == 60_000


def test_trial_balance_never_shows_another_entity(books):
    us = trial_balance(entity=books.us.entity, period=APR)
    de = trial_balance(entity=books.de.entity, period=APR)

    assert {r.account_id for r in us.rows}.isdisjoint({r.account_id for r in de.rows})
    assert de.currency == "EUR"
    assert tb_rows(de) == {"1200": (0, 88_800, 0, 88_800), "2400": (0, 0, 88_800, -88_800)}


def test_trial_balance_skips_accounts_without_balance_or_movement(books):
    tb = trial_balance(entity=books.us.entity, period=APR)
    assert {"2200", "7990"}.isdisjoint(tb_rows(tb))


def test_trial_balance_of_an_empty_month_carries_balances_forward(books):
    tb = trial_balance(entity=books.us.entity, period=dt.date(2026, 6, 1))
    assert tb_rows(tb)["1200"] == (203_000 + 77_700, 0, 0, 203_000 + 77_700)
    assert tb.is_balanced


def test_trial_balance_reports_an_unbalanced_posted_entry(books):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL refuses an unbalanced entry at commit")
    us = books.us
    post(us.entity, Kind.PAYMENT, dt.date(2026, 4, 9), (us.ar, 0, 100, ""))
    tb = trial_balance(entity=us.entity, period=APR)
    assert not tb.is_balanced
    assert tb.difference == -100


def test_trial_balance_in_two_queries(books, django_assert_num_queries):
    with django_assert_num_queries(2):
        trial_balance(entity=books.us.entity, period=APR)


def test_entries_in_another_functional_currency_are_left_out_and_counted(books):
    us = books.us
    post(
        us.entity,
        Kind.INVOICE,
        dt.date(2026, 4, 8),
        (us.ar, 4_400, 0, ""),
        (us.deferred, 0, 4_400, "PLAT"),
        functional_currency="EUR",
    )
    tb = trial_balance(entity=us.entity, period=APR)
    rf = deferred_revenue_rollforward(entity=us.entity, period=APR)

    assert tb_rows(tb)["1200"] == (150_000, 60_000, 7_000, 203_000)
    assert rf_rows(rf)["PLAT"][1] == 60_000
    assert tb.excluded_entries == rf.excluded_entries == 1


# --- deferred revenue roll-forward --------------------------------------------------------------


def test_rollforward_of_april_per_product(books):
    rf = deferred_revenue_rollforward(entity=books.us.entity, period=APR)

    assert [a.number for a in rf.accounts] == ["2400"]
    #                  opening   billed  recognized  credited  closing  (credit-positive)
    assert rf_rows(rf) == {
        "API": (30_000, 0, 2_500, 5_000, 22_500),
        "PLAT": (110_000, 60_000, 15_000, 2_000, 153_000),
    }
    t = rf.totals
    assert t.product_code is None
    assert (t.opening, t.billed, t.recognized, t.credited, t.closing) == (
        140_000,
        60_000,
        17_500,
        7_000,
        175_500,
    )
    assert all(r.actual_closing == r.closing and not r.has_break for r in rf.rows)
    assert not rf.has_break


def test_rollforward_closing_of_march_is_aprils_opening(books):
    march = deferred_revenue_rollforward(entity=books.us.entity, period=MAR)
    april = deferred_revenue_rollforward(entity=books.us.entity, period=APR)

    assert rf_rows(march) == {
        "API": (0, 30_000, 0, 0, 30_000),
        "PLAT": (0, 120_000, 10_000, 0, 110_000),
    }
    assert {r.product_code: r.closing for r in march.rows} == {
        r.product_code: r.opening for r in april.rows
    }


def test_rollforward_closing_matches_the_trial_balance(books):
    tb = trial_balance(entity=books.us.entity, period=APR)
    rf = deferred_revenue_rollforward(entity=books.us.entity, period=APR)
    assert rf.totals.closing == -tb_rows(tb)["2400"][3] == 175_500


def test_rollforward_never_shows_another_entity(books):
    de = deferred_revenue_rollforward(entity=books.de.entity, period=APR)
    assert rf_rows(de) == {"PLAT": (0, 88_800, 0, 0, 88_800)}
    assert de.currency == "EUR"


def test_a_payment_on_deferred_revenue_is_reported_as_a_break(books):
    us = books.us
    cash = GLAccountFactory(legal_entity=us.entity, number="1100", name="Cash")
    post(
        us.entity,
        Kind.PAYMENT,
        dt.date(2026, 4, 12),
        (cash, 1_234, 0, ""),
        (us.deferred, 0, 1_234, "PLAT"),
    )
    rf = deferred_revenue_rollforward(entity=us.entity, period=APR)
    plat = next(r for r in rf.rows if r.product_code == "PLAT")

    assert plat.closing == 153_000  # opening + billed - recognized - credited
    assert plat.actual_closing == 154_234  # what the account holds
    assert plat.break_minor == 1_234 and plat.has_break
    assert rf.totals.break_minor == 1_234 and rf.has_break
    lines = lines_behind(entity=us.entity, period=APR, product="PLAT", column="break")
    assert [ln.entry.kind for ln in lines] == [Kind.PAYMENT]
    assert lines_total(lines) == 1_234
    for column, figure in [("closing", 153_000), ("actual_closing", 154_234)]:
        lines = lines_behind(entity=us.entity, period=APR, product="PLAT", column=column)
        assert lines_total(lines) == figure


def test_rollforward_covers_every_deferred_account_of_the_rules(books):
    us = books.us
    other = GLAccountFactory(
        legal_entity=us.entity, number="2410", name="Deferred services", kind="liability"
    )
    PostingRule.objects.create(
        legal_entity=us.entity,
        revenue_type="on_delivery",
        ar_account=us.ar,
        revenue_account=us.revenue,
        deferred_revenue_account=other,
        tax_payable_account=us.tax,
    )
    post(us.entity, Kind.INVOICE, dt.date(2026, 4, 6), (us.ar, 900, 0, ""), (other, 0, 900, "SVC"))
    rf = deferred_revenue_rollforward(entity=us.entity, period=APR)
    assert [a.number for a in rf.accounts] == ["2400", "2410"]
    assert rf_rows(rf)["SVC"] == (0, 900, 0, 0, 900)


def test_rollforward_of_an_entity_without_rules_is_empty():
    entity = LegalEntity.objects.create(
        code="uk-ltd", name="Acme UK", functional_currency="GBP", country="GB"
    )
    rf = deferred_revenue_rollforward(entity=entity, period=APR)
    assert rf.rows == () and rf.accounts == ()
    assert rf.totals.closing == 0 and rf.currency == "GBP"


def test_rollforward_groups_lines_without_product_under_blank(books):
    us = books.us
    post(
        us.entity, Kind.INVOICE, dt.date(2026, 4, 7), (us.ar, 300, 0, ""), (us.deferred, 0, 300, "")
    )
    rf = deferred_revenue_rollforward(entity=us.entity, period=APR)
    assert rf_rows(rf)[""] == (0, 300, 0, 0, 300)
    lines = lines_behind(entity=us.entity, period=APR, product="", column="billed")
    assert lines_total(lines) == 300


def test_rollforward_in_three_queries(books, django_assert_num_queries):
    with django_assert_num_queries(3):
        deferred_revenue_rollforward(entity=books.us.entity, period=APR)


# --- drill-down ---------------------------------------------------------------------------------


def test_every_trial_balance_figure_equals_the_sum_of_its_lines(books):
    for period in (MAR, APR):
        tb = trial_balance(entity=books.us.entity, period=period)
        for row in tb.rows:
            for column in TRIAL_BALANCE_COLUMNS:
                lines = lines_behind(
                    entity=books.us.entity, period=period, account=row.account_id, column=column
                )
                assert lines_total(lines) == getattr(row, column), (row.number, column)
                assert sum(ln.signed_minor for ln in lines) == getattr(row, column)
        for column in TRIAL_BALANCE_COLUMNS:
            lines = lines_behind(entity=books.us.entity, period=period, column=column)
            assert lines_total(lines) == getattr(tb, column)


def test_every_rollforward_figure_equals_the_sum_of_its_lines(books):
    names = {"break": "break_minor"}
    for period in (MAR, APR):
        rf = deferred_revenue_rollforward(entity=books.us.entity, period=period)
        for row in (*rf.rows, rf.totals):
            for column in ROLLFORWARD_COLUMNS:
                lines = lines_behind(
                    entity=books.us.entity,
                    period=period,
                    product=row.product_code,
                    column=column,
                    report="deferred_revenue",
                )
                expected = getattr(row, names.get(column, column))
                assert lines_total(lines) == expected, (row.product_code, column)
                assert sum(ln.signed_minor for ln in lines) == expected


def test_drill_down_lists_the_entries_behind_the_figure(books):
    lines = list(
        lines_behind(entity=books.us.entity, period=APR, product="PLAT", column="credited")
    )

    assert [(ln.entry.external_id, ln.account.number, ln.signed_minor) for ln in lines] == [
        (books.entries["rev1"].external_id, "2400", 2_000)
    ]
    debits = lines_behind(entity=books.us.entity, period=APR, account=books.us.ar, column="debits")
    assert [ln.entry_id for ln in debits] == [books.entries["inv2"].pk]


def test_drill_down_never_returns_unposted_or_foreign_lines(books):
    entries = books.entries
    for report, columns in [
        ("trial_balance", TRIAL_BALANCE_COLUMNS),
        ("deferred_revenue", ROLLFORWARD_COLUMNS),
    ]:
        for column in columns:
            for ln in lines_behind(
                entity=books.us.entity, period=APR, column=column, report=report
            ):
                assert ln.entry.state == State.POSTED
                assert ln.entry.legal_entity_id == books.us.entity.pk
                assert ln.entry_id not in {entries[k].pk for k in ("draft", "may", "de")}


def test_drill_down_loads_entry_and_account_in_one_query(books, django_assert_num_queries):
    with django_assert_num_queries(1):
        lines = list(lines_behind(entity=books.us.entity, period=APR, column="closing"))
        assert {(ln.entry.external_id, ln.account.number) for ln in lines}


def test_report_is_inferred_from_product_and_column():
    assert infer_report(column="opening", product=None) == "trial_balance"
    assert infer_report(column="opening", product="PLAT") == "deferred_revenue"
    assert infer_report(column="billed", product=None) == "deferred_revenue"


@pytest.mark.parametrize(
    ("column", "report"),
    [("debits", "deferred_revenue"), ("billed", "trial_balance"), ("nope", None)],
)
def test_drill_down_refuses_a_column_the_report_does_not_have(books, column, report):
    with pytest.raises(ReportError, match="Column"):
        lines_behind(entity=books.us.entity, period=APR, column=column, report=report)


# --- periods ------------------------------------------------------------------------------------


def test_period_is_parsed_from_year_and_month():
    assert parse_period("2026-04") == APR
    assert parse_period(" 2026-12 ") == dt.date(2026, 12, 1)


@pytest.mark.parametrize("value", ["2026-4", "2026-13", "2026-00", "04-2026", "2026-04-01", ""])
def test_a_malformed_period_is_refused(value):
    with pytest.raises(ReportError, match="Period"):
        parse_period(value)


def test_a_period_that_is_not_a_month_start_is_refused(books):
    with pytest.raises(ReportError, match="first day"):
        trial_balance(entity=books.us.entity, period=dt.date(2026, 4, 2))
