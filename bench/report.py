"""What a burst is measured and judged by: journey states and latency, table sizes, and the
invariant checks against the ERP emulator's records."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import httpx
from django.db import connection
from django.db.models import Count

from bench.generator import DEFECT_CATEGORY, Expected
from sync.models import ExceptionCase, InboundEvent, JournalEntry, Journey


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"  [{'OK' if self.ok else 'FAIL'}] {self.name}: {self.detail}"


def journeys_by_state() -> dict[str, int]:
    return dict(
        Journey.objects.values_list("state").annotate(n=Count("pk")).values_list("state", "n")
    )


_SETTLED_SQL = """
SELECT NOT EXISTS (SELECT 1 FROM sync_inboundevent WHERE state = 'received')
   AND (SELECT id FROM sync_journey
        WHERE state IN ('pending', 'running', 'retrying', 'waiting')
        ORDER BY id LIMIT 1) IS NULL
"""


def settled() -> bool:
    """Nothing left in the inbox or active, asked of the two partial indexes over just those
    rows (the states are literals so the planner can use them, and the order is the active
    index's; otherwise it may pick a scan of the whole table, expecting to stop at the first
    row: 50 ms a poll at 100k when none is left). Cheap enough to ask twice a second: counting
    40k active journeys that often had cost PostgreSQL 50 ms a time, taken from the run it
    measures. On SQLite, the ORM."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_SETTLED_SQL)
            return bool(cursor.fetchone()[0])
    return not (
        InboundEvent.objects.filter(state=InboundEvent.State.RECEIVED).exists()
        or Journey.objects.filter(state__in=Journey.ACTIVE).exists()
    )


def unsettled() -> tuple[int, int]:
    """(inbox events still received, journeys still active)."""
    return (
        InboundEvent.objects.filter(state=InboundEvent.State.RECEIVED).count(),
        Journey.objects.filter(state__in=Journey.ACTIVE).count(),
    )


PERCENTILES = (0.5, 0.95, 0.99)


def latency_percentiles() -> dict[str, tuple[int, list[float]]]:
    """Seconds from journey created (dispatch) to completed, p50/p95/p99, overall and per
    journey type: {type or "all": (count, [p50, p95, p99])}."""
    out: dict[str, tuple[int, list[float]]] = {}
    if connection.vendor == "postgresql":
        query = """
            SELECT journey_type, count(*), percentile_cont(%s::float8[]) WITHIN GROUP
                   (ORDER BY extract(epoch FROM completed_at - created_at))
              FROM sync_journey WHERE state = 'completed' AND completed_at IS NOT NULL
             GROUP BY ROLLUP (journey_type)"""
        with connection.cursor() as cur:
            cur.execute(query, [list(PERCENTILES)])
            for jtype, n, values in cur.fetchall():
                out[jtype or "all"] = (n, [float(v) for v in values])
        return out
    samples: dict[str, list[float]] = {}
    rows = Journey.objects.filter(state=Journey.State.COMPLETED, completed_at__isnull=False)
    for jtype, created, completed in rows.values_list(
        "journey_type", "created_at", "completed_at"
    ).iterator():
        seconds = (completed - created).total_seconds()
        samples.setdefault(jtype, []).append(seconds)
        samples.setdefault("all", []).append(seconds)
    for key, values in samples.items():
        values.sort()
        out[key] = (len(values), [_percentile(values, p) for p in PERCENTILES])
    return out


def _percentile(sorted_values: list[float], p: float) -> float:
    """Linear interpolation, as PostgreSQL's percentile_cont."""
    pos = p * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def table_counts() -> dict[str, int]:
    counts = {}
    with connection.cursor() as cur:
        for table in sorted(connection.introspection.table_names(cur)):
            if connection.vendor == "postgresql" and table.startswith("bench_"):
                continue
            cur.execute(f'SELECT count(*) FROM "{table}"')
            counts[table] = cur.fetchone()[0]
    return counts


def database_size() -> int:
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_database_size(current_database())")
            return int(cur.fetchone()[0])
    name = str(connection.settings_dict["NAME"])
    return sum(os.path.getsize(p) for p in (name, name + "-wal") if os.path.exists(p))


def stuck_sample(limit: int = 5) -> list[str]:
    """A few journeys still active, with the step they are on and its last message."""
    from sync.models import Step

    lines = []
    for j in Journey.objects.filter(state__in=Journey.ACTIVE).order_by("pk")[:limit]:
        step = (
            Step.objects.filter(journey=j).exclude(state__in=Step.DONE).order_by("position").first()
        )
        where = (
            f"{step.name} {step.state} x{step.attempts}: {step.error_message[:160]}" if step else ""
        )
        lines.append(f"    {j.journey_type} {j.business_key} {j.state} at {where}")
    return lines


# --- invariants --------------------------------------------------------------------------


def emulator_records(netsuite_url: str, record_type: str) -> list[dict]:
    resp = httpx.get(f"{netsuite_url}/_emulator/records/{record_type}", timeout=600)
    resp.raise_for_status()
    return resp.json()["records"]


def _balanced(record: dict) -> bool:
    debit = sum((Decimal(str(ln["debit"])) for ln in record["lines"] if ln["debit"]), Decimal(0))
    credit = sum((Decimal(str(ln["credit"])) for ln in record["lines"] if ln["credit"]), Decimal(0))
    return debit == credit and debit > 0


def invariant_checks(expected: Expected, netsuite_url: str) -> list[Check]:
    entries = emulator_records(netsuite_url, "journalEntry")
    customers = emulator_records(netsuite_url, "customer")
    ext_ids = Counter(r["externalId"] for r in entries)
    checks: list[Check] = []

    # Voids: each voided invoice is either posted and reversed, or cancelled unposted.
    reversed_, cancelled, odd = 0, 0, []
    for invoice_id in expected.voided_invoices:
        posted = ext_ids.get(f"RCT-STRIPE-{invoice_id}", 0)
        reversal = ext_ids.get(f"RCT-STRIPE-{invoice_id}-VOID", 0)
        if posted and reversal:
            reversed_ += 1
        elif not posted and not reversal:
            cancelled += 1
        else:
            odd.append(invoice_id)
    want = expected.journal_entries - 2 * cancelled
    checks.append(
        Check(
            "ERP journal entries == expected",
            len(entries) == want,
            f"{len(entries)} in the emulator, {want} expected ({expected.clean_invoices} "
            f"invoices, {expected.charges} payments, {expected.refunds} refunds, "
            f"{expected.credit_notes} credit notes, {reversed_} void reversals; "
            f"{cancelled} voided invoices cancelled before posting)",
        )
    )
    checks.append(
        Check(
            "voided invoices posted+reversed or never posted",
            not odd,
            f"{reversed_} reversed, {cancelled} cancelled, {len(odd)} half-done"
            + (f" (e.g. {odd[:3]})" if odd else ""),
        )
    )
    twice = [k for k, n in ext_ids.items() if n > 1]
    rewritten = sum(1 for r in entries if r.get("write_count", 1) > 1)
    checks.append(
        Check(
            "no external id twice in the ERP",
            not twice,
            f"{len(twice)} duplicated; {rewritten} records written more than once (upserts)",
        )
    )
    unbalanced = [r["externalId"] for r in entries if not _balanced(r)]
    checks.append(
        Check(
            "every ERP entry balanced (debits == credits)",
            not unbalanced,
            f"{len(entries) - len(unbalanced)} balanced, {len(unbalanced)} not"
            + (f" (e.g. {unbalanced[:3]})" if unbalanced else ""),
        )
    )
    ours = set(
        JournalEntry.objects.filter(state=JournalEntry.State.POSTED).values_list(
            "external_id", flat=True
        )
    )
    theirs = set(ext_ids)
    checks.append(
        Check(
            "our posted entries == ERP entries",
            ours == theirs,
            f"{len(ours)} posted here, {len(theirs)} there, {len(ours - theirs)} only here, "
            f"{len(theirs - ours)} only there",
        )
    )
    checks.append(
        Check(
            "ERP customers == customers delivered",
            len(customers) == expected.customers,
            f"{len(customers)} in the emulator, {expected.customers} expected",
        )
    )
    open_cases = ExceptionCase.objects.filter(state__in=ExceptionCase.ACTIVE)
    defect_keys = set(expected.defective_invoices)
    caught = set(
        open_cases.filter(
            category=DEFECT_CATEGORY,
            journey__journey_type="invoice_to_ledger",
            journey__business_key__in=defect_keys,
        ).values_list("journey__business_key", flat=True)
    )
    checks.append(
        Check(
            f"every defective event has an open {DEFECT_CATEGORY} case",
            caught == defect_keys,
            f"{len(caught)} of {len(defect_keys)}",
        )
    )
    others = Counter(
        open_cases.exclude(
            journey__journey_type="invoice_to_ledger", journey__business_key__in=defect_keys
        ).values_list("category", flat=True)
    )
    checks.append(
        Check(
            "no other open exception cases",
            not others,
            ", ".join(f"{k}: {v}" for k, v in sorted(others.items())) or "none",
        )
    )
    received, active = unsettled()
    checks.append(Check("no inbox event left received", received == 0, f"{received} received"))
    stuck = Counter(
        Journey.objects.filter(state__in=Journey.ACTIVE).values_list("state", flat=True)
    )
    checks.append(
        Check(
            "no journey stuck active",
            active == 0,
            ", ".join(f"{k}: {v}" for k, v in sorted(stuck.items())) or "none",
        )
    )
    return checks
