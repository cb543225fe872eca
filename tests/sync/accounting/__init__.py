"""Pure tests of sync.accounting (no database). Shared account ids and line checks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sync.accounting.entries import DraftLine, is_balanced

# A chart of accounts for the examples (ids are ERP account numbers).
CASH = 1000
AR = 1200
TAX = 2200
CUSTOMER_CREDIT = 2300
DEFERRED = 2400
REVENUE = 4000
CONTRA = 4900
FEES = 6100
FX = 7900
ROUNDING = 7990

Row = tuple[int, int, int, int, int]


def rows(lines: Iterable[DraftLine]) -> list[Row]:
    """(account, debit, credit, functional debit, functional credit) per line."""
    return [
        (
            ln.account_id,
            ln.debit_minor,
            ln.credit_minor,
            ln.functional_debit_minor,
            ln.functional_credit_minor,
        )
        for ln in lines
    ]


def assert_well_formed(lines: list[DraftLine]) -> None:
    """Balanced in both currencies; no negative amount; no line on both sides."""
    assert is_balanced(lines), rows(lines)
    for ln in lines:
        amounts = (
            ln.debit_minor,
            ln.credit_minor,
            ln.functional_debit_minor,
            ln.functional_credit_minor,
        )
        assert all(a >= 0 for a in amounts), ln
        on_debit = ln.debit_minor or ln.functional_debit_minor
        on_credit = ln.credit_minor or ln.functional_credit_minor
        assert not (on_debit and on_credit), ln


def balances(*entries: Iterable[DraftLine]) -> dict[int, tuple[int, int]]:
    """Net debit per account, (transaction, functional), over all ``entries``."""
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for entry in entries:
        for ln in entry:
            out[ln.account_id][0] += ln.debit_minor - ln.credit_minor
            out[ln.account_id][1] += ln.functional_debit_minor - ln.functional_credit_minor
    return {k: (v[0], v[1]) for k, v in out.items() if v != [0, 0]}
