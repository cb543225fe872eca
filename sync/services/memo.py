"""Reference data read once per batch.

While the engine carries a claimed batch of journeys (``reference_memo``), lookups of data
the journeys only read — legal entities, entity accounts, posting rules, product and tax
mappings, FX rates — are answered once per distinct question and kept until the batch ends.
A mapping saved during a batch is seen by the next one: the same as a mapping saved while
a single journey runs. Nothing a journey writes (invoices, entries, customer links,
payments) may be memoized here. Outside a batch every lookup goes to the database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

_memo: ContextVar[dict[Hashable, object] | None] = ContextVar("rct_reference_memo", default=None)


@contextlib.contextmanager
def reference_memo() -> Iterator[None]:
    """Keep reference lookups for the duration of the block (one claimed batch)."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def memoized(key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, asked once per ``key`` inside ``reference_memo``; always outside."""
    memo = _memo.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]  # type: ignore[return-value]
