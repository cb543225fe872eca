"""Ledger reports: the trial balance and the deferred revenue roll-forward of one entity and
month, and the journal lines behind any figure of either.

Pure reads over posted journal entries; nothing here writes. What the reports guarantee:

* Only entries in state ``posted`` count; drafts, entries being posted and failed ones never do.
* Amounts are integers of **functional** minor units of the entity. An entry recorded in another
  functional currency (the entity's currency was changed later) cannot be added to the others:
  it is left out of every figure and counted in ``excluded_entries``, so it is never silent.
* Every figure is aggregated in the database (a grouped query with filtered sums), never by
  looping over lines in Python, and ``lines_behind`` returns the lines whose ``signed_minor``
  add up to exactly that figure.
* The roll-forward never hides a difference: ``closing`` is derived (opening + billed -
  recognized - credited) and compared with the balance actually on the accounts; any gap is
  reported as ``break_minor`` and can be drilled into like any other figure.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import (
    BigIntegerField,
    Count,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Sum,
)

from sync.accounting.schedules import next_month
from sync.models import GLAccount, JournalEntry, JournalLine, LegalEntity, PostingRule

Report = Literal["trial_balance", "deferred_revenue"]
TRIAL_BALANCE: Report = "trial_balance"
DEFERRED_REVENUE: Report = "deferred_revenue"
REPORTS: tuple[Report, ...] = (TRIAL_BALANCE, DEFERRED_REVENUE)

TRIAL_BALANCE_COLUMNS = ("opening", "debits", "credits", "closing")
ROLLFORWARD_COLUMNS = (
    "opening",
    "billed",
    "recognized",
    "credited",
    "closing",
    "actual_closing",
    "break",
)
COLUMNS = tuple(dict.fromkeys(TRIAL_BALANCE_COLUMNS + ROLLFORWARD_COLUMNS))

Kind = JournalEntry.Kind
BILLED_KINDS = (Kind.INVOICE,)
RECOGNIZED_KINDS = (Kind.RECOGNITION,)
CREDITED_KINDS = (Kind.CREDIT_NOTE, Kind.REVERSAL)
_EXPLAINED_KINDS = BILLED_KINDS + RECOGNIZED_KINDS + CREDITED_KINDS

_PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")

_DEBIT = F("functional_debit_minor")
_CREDIT = F("functional_credit_minor")


class ReportError(ValueError):
    """A report asked for something that does not exist (bad period, column or account)."""


# --- periods ------------------------------------------------------------------------------------


def parse_period(value: str) -> dt.date:
    """``"2026-04"`` -> ``date(2026, 4, 1)``; anything else raises ``ReportError``."""
    match = _PERIOD_RE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ReportError(f"Period must be a month written YYYY-MM, e.g. 2026-04 (got {value!r}).")
    year, month = int(match[1]), int(match[2])
    if not (1 <= month <= 12 and year >= 1):
        raise ReportError(f"Period {value!r} is not a real month.")
    return dt.date(year, month, 1)


def _bounds(period: dt.date) -> tuple[dt.date, dt.date]:
    if period.day != 1:
        raise ReportError(f"Period must be the first day of a month, not {period.isoformat()}.")
    return period, next_month(period)


def report_entities(user: AbstractBaseUser | None) -> QuerySet[LegalEntity]:
    """Entities whose reports ``user`` may read: those the user may see."""
    from sync.selectors import entities_visible_to

    return entities_visible_to(user)


# --- shared building blocks ---------------------------------------------------------------------


def _posted_lines(entity: LegalEntity, end: dt.date) -> QuerySet[JournalLine]:
    """Posted lines of ``entity`` before ``end``, in its functional currency."""
    return JournalLine.objects.filter(
        entry__legal_entity=entity,
        entry__state=JournalEntry.State.POSTED,
        entry__functional_currency=entity.functional_currency,
        entry__posting_date__lt=end,
    )


def _excluded_entries(entity: LegalEntity, end: dt.date) -> int:
    return (
        JournalEntry.objects.filter(
            legal_entity=entity, state=JournalEntry.State.POSTED, posting_date__lt=end
        )
        .exclude(functional_currency=entity.functional_currency)
        .count()
    )


def _deferred_accounts(entity: LegalEntity) -> QuerySet[GLAccount]:
    """The accounts any posting rule of the entity names as deferred revenue account."""
    rule_accounts = PostingRule.objects.filter(legal_entity=entity).values(
        "deferred_revenue_account"
    )
    return GLAccount.objects.filter(pk__in=rule_accounts).order_by("number")


def _sum(expression, condition: Q | None = None) -> Sum:
    return Sum(expression, filter=condition, default=0)


def _int(value: object) -> int:
    # PostgreSQL sums bigint into numeric (a Decimal here); the values are whole numbers.
    return int(value or 0)


# --- trial balance ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialBalanceRow:
    """One account: balances debit-positive, movements as positive debits and credits."""

    account_id: int
    number: str
    name: str
    kind: str
    opening: int
    debits: int
    credits: int
    closing: int


@dataclass(frozen=True)
class TrialBalance:
    """Every account of the entity with a balance or a movement up to the end of the period."""

    entity: LegalEntity
    period: dt.date
    currency: str
    rows: tuple[TrialBalanceRow, ...]
    opening: int
    debits: int
    credits: int
    closing: int
    excluded_entries: int

    @property
    def is_balanced(self) -> bool:
        """Period debits equal credits, and the balances of all accounts sum to zero."""
        return self.debits == self.credits and self.opening == 0 and self.closing == 0

    @property
    def difference(self) -> int:
        return self.debits - self.credits


def trial_balance(*, entity: LegalEntity, period: dt.date) -> TrialBalance:
    """Opening balance, period debits and credits and closing balance per GL account.

    Two queries: one grouped aggregate over the posted lines, one count of entries left out
    because they were booked in another functional currency.
    """
    start, end = _bounds(period)
    before, within = Q(entry__posting_date__lt=start), Q(entry__posting_date__gte=start)
    grouped = (
        _posted_lines(entity, end)
        .values("account_id", "account__number", "account__name", "account__kind")
        .annotate(
            opening=_sum(_DEBIT - _CREDIT, before),
            debits=_sum(_DEBIT, within),
            credits=_sum(_CREDIT, within),
        )
        .order_by("account__number", "account_id")
    )
    rows = []
    for g in grouped:
        opening, debits, credits = _int(g["opening"]), _int(g["debits"]), _int(g["credits"])
        if not (opening or debits or credits):
            continue  # nothing on the account, then or now
        rows.append(
            TrialBalanceRow(
                account_id=g["account_id"],
                number=g["account__number"],
                name=g["account__name"],
                kind=g["account__kind"],
                opening=opening,
                debits=debits,
                credits=credits,
                closing=opening + debits - credits,
            )
        )
    return TrialBalance(
        entity=entity,
        period=start,
        currency=entity.functional_currency,
        rows=tuple(rows),
        opening=sum(r.opening for r in rows),
        debits=sum(r.debits for r in rows),
        credits=sum(r.credits for r in rows),
        closing=sum(r.closing for r in rows),
        excluded_entries=_excluded_entries(entity, end),
    )


# --- deferred revenue roll-forward --------------------------------------------------------------


@dataclass(frozen=True)
class RollForwardRow:
    """One product (``None`` for the totals row); balances credit-positive.

    ``closing`` is derived: opening + billed - recognized - credited. ``actual_closing`` is the
    balance on the deferred revenue accounts; ``break_minor`` the difference (actual - derived),
    which only a posted movement of another kind (a payment or refund line on a deferred
    revenue account) can cause.
    """

    product_code: str | None
    opening: int
    billed: int
    recognized: int
    credited: int
    closing: int
    actual_closing: int
    break_minor: int

    @property
    def has_break(self) -> bool:
        return self.break_minor != 0


@dataclass(frozen=True)
class RollForward:
    """Deferred revenue of one entity and month, per product, with totals."""

    entity: LegalEntity
    period: dt.date
    currency: str
    accounts: tuple[GLAccount, ...]
    rows: tuple[RollForwardRow, ...]
    totals: RollForwardRow
    excluded_entries: int

    @property
    def has_break(self) -> bool:
        return any(r.has_break for r in self.rows)


def deferred_revenue_rollforward(*, entity: LegalEntity, period: dt.date) -> RollForward:
    """Opening, billed, recognized, credited and closing deferred revenue per product.

    Scope: the entity's deferred revenue accounts (named by its posting rules), products taken
    from ``JournalLine.product_code``. Billed is the net credit of invoice entries, recognized
    the net debit of recognition entries, credited the net debit of credit notes and reversals.
    Three queries: the accounts, one grouped aggregate, the count of excluded entries.
    """
    start, end = _bounds(period)
    accounts = tuple(_deferred_accounts(entity))
    rows: list[RollForwardRow] = []
    if accounts:
        before, within = Q(entry__posting_date__lt=start), Q(entry__posting_date__gte=start)
        grouped = (
            _posted_lines(entity, end)
            .filter(account__in=accounts)
            .values("product_code")
            .annotate(
                opening=_sum(_CREDIT - _DEBIT, before),
                billed=_sum(_CREDIT - _DEBIT, within & Q(entry__kind__in=BILLED_KINDS)),
                recognized=_sum(_DEBIT - _CREDIT, within & Q(entry__kind__in=RECOGNIZED_KINDS)),
                credited=_sum(_DEBIT - _CREDIT, within & Q(entry__kind__in=CREDITED_KINDS)),
                actual_closing=_sum(_CREDIT - _DEBIT),
            )
            .order_by("product_code")
        )
        for g in grouped:
            row = _rollforward_row(
                g["product_code"],
                (_int(g[k]) for k in ("opening", "billed", "recognized", "credited")),
                actual_closing=_int(g["actual_closing"]),
            )
            if row.opening or row.actual_closing or _moved(row):
                rows.append(row)
    totals = _rollforward_row(
        None,
        (sum(getattr(r, k) for r in rows) for k in ("opening", "billed", "recognized", "credited")),
        actual_closing=sum(r.actual_closing for r in rows),
    )
    return RollForward(
        entity=entity,
        period=start,
        currency=entity.functional_currency,
        accounts=accounts,
        rows=tuple(rows),
        totals=totals,
        excluded_entries=_excluded_entries(entity, end),
    )


def _rollforward_row(
    product: str | None, figures: Iterable[int], *, actual_closing: int
) -> RollForwardRow:
    opening, billed, recognized, credited = figures
    closing = opening + billed - recognized - credited
    return RollForwardRow(
        product_code=product,
        opening=opening,
        billed=billed,
        recognized=recognized,
        credited=credited,
        closing=closing,
        actual_closing=actual_closing,
        break_minor=actual_closing - closing,
    )


def _moved(row: RollForwardRow) -> bool:
    return bool(row.billed or row.recognized or row.credited or row.break_minor)


# --- drill-down ---------------------------------------------------------------------------------


def infer_report(*, column: str, product: str | None) -> Report:
    """The report a figure belongs to when the caller does not say: a product, or a column only
    the roll-forward has, means the roll-forward; anything else the trial balance."""
    if product is not None or column not in TRIAL_BALANCE_COLUMNS:
        return DEFERRED_REVENUE
    return TRIAL_BALANCE


def lines_behind(
    *,
    entity: LegalEntity,
    period: dt.date,
    account: GLAccount | int | None = None,
    product: str | None = None,
    column: str,
    report: Report | None = None,
) -> QuerySet[JournalLine]:
    """The posted journal lines behind one figure, oldest first, entry and account loaded.

    Each line carries ``signed_minor``, its contribution to the figure in functional minor
    units, so ``sum(signed_minor)`` (see ``lines_total``) equals the figure exactly:

    * trial balance (debit-positive): ``opening`` / ``closing`` are debit - credit before /
      up to the end of the period; ``debits`` and ``credits`` the period's debit or credit lines.
      ``account=None`` means every account (the totals row).
    * roll-forward (credit-positive), on the entity's deferred revenue accounts:
      ``opening``, ``billed``, ``closing`` (opening + billed - recognized - credited: every line
      but the period's unexplained ones), ``actual_closing`` (every line) and ``break`` (the
      period's lines of other kinds) are credit - debit; ``recognized`` and ``credited`` are
      debit - credit. ``product=None`` means every product (the totals row); ``product=""``
      the lines without a product code.

    ``report`` defaults to ``infer_report(column, product)``.
    """
    report = report or infer_report(column=column, product=product)
    if report not in REPORTS:
        raise ReportError(f"Unknown report {report!r}; use one of {', '.join(REPORTS)}.")
    allowed = TRIAL_BALANCE_COLUMNS if report == TRIAL_BALANCE else ROLLFORWARD_COLUMNS
    if column not in allowed:
        raise ReportError(
            f"Column {column!r} is not a figure of the {report.replace('_', ' ')}; "
            f"use one of {', '.join(allowed)}."
        )
    start, end = _bounds(period)
    qs = _posted_lines(entity, end)
    if account is not None:
        qs = qs.filter(account=account)
    if product is not None:
        qs = qs.filter(product_code=product)

    within = Q(entry__posting_date__gte=start)
    credit_positive = _CREDIT - _DEBIT
    debit_positive = _DEBIT - _CREDIT
    if report == TRIAL_BALANCE:
        condition, signed = {
            "opening": (Q(entry__posting_date__lt=start), debit_positive),
            "debits": (within & Q(functional_debit_minor__gt=0), _DEBIT),
            "credits": (within & Q(functional_credit_minor__gt=0), _CREDIT),
            "closing": (Q(), debit_positive),
        }[column]
    else:
        qs = qs.filter(account__in=_deferred_accounts(entity).values("pk"))
        explained = Q(entry__kind__in=_EXPLAINED_KINDS)
        condition, signed = {
            "opening": (Q(entry__posting_date__lt=start), credit_positive),
            "billed": (within & Q(entry__kind__in=BILLED_KINDS), credit_positive),
            "recognized": (within & Q(entry__kind__in=RECOGNIZED_KINDS), debit_positive),
            "credited": (within & Q(entry__kind__in=CREDITED_KINDS), debit_positive),
            "closing": (~(within & ~explained), credit_positive),
            "actual_closing": (Q(), credit_positive),
            "break": (within & ~explained, credit_positive),
        }[column]
    return (
        qs.filter(condition)
        .select_related("entry", "entry__journey", "account")
        .annotate(signed_minor=ExpressionWrapper(signed, output_field=BigIntegerField()))
        .order_by("entry__posting_date", "entry_id", "line_no")
    )


@dataclass(frozen=True)
class LinesSummary:
    """How many lines a drill-down holds, their functional debits and credits, and ``total``:
    the sum of their ``signed_minor``, which is the figure."""

    count: int
    debits: int
    credits: int
    total: int


def lines_summary(lines: QuerySet[JournalLine]) -> LinesSummary:
    """Count and sums of a ``lines_behind`` queryset over all its lines, in one query."""
    agg = lines.order_by().aggregate(
        count=Count("pk"),
        debits=_sum(_DEBIT),
        credits=_sum(_CREDIT),
        total=_sum(F("signed_minor")),
    )
    return LinesSummary(*(_int(agg[k]) for k in ("count", "debits", "credits", "total")))


def lines_total(lines: QuerySet[JournalLine]) -> int:
    """The figure a ``lines_behind`` queryset explains: the sum of its ``signed_minor``."""
    return lines_summary(lines).total
