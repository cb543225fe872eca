"""The burst benchmark's harness at CI size: the same run as ``bench/burst.py`` (real
qcluster, rct_clock and NetSuite emulator processes, events through the ingest path) on the
test database. One run (it is the slow part), judged on everything it checks."""

from __future__ import annotations

import pytest
from django.db import connection

from bench.burst import run

pytestmark = pytest.mark.e2e

EVENTS = 200


def test_small_burst_settles_with_the_promised_mix_and_every_invariant_holding(
    transactional_db, tmp_path
):
    lines: list[str] = []
    burst = run(
        events=EVENTS,
        workers=2,
        database_url=None,  # the test database pytest-django made
        timeout=150,
        log_dir=tmp_path,
        env={"RCT_CLOCK_INTERVAL_SECONDS": "0.3"},
        out=lines.append,
    )
    report = "\n".join(lines)

    assert burst.settled, report
    assert [c.name for c in burst.checks if not c.ok] == [], report
    assert burst.ok

    e = burst.expected
    assert (e.deliveries, e.duplicates, e.unique) == (EVENTS, EVENTS // 8, EVENTS - EVENTS // 8)
    assert burst.accepted == e.unique  # every redelivery was known by its event id
    assert e.out_of_order > 0 and e.defects > 0
    assert e.by_type["invoice.finalized"] and e.by_type["charge.succeeded"]
    assert burst.latency["all"][0] == burst.journeys["completed"]

    if connection.vendor == "postgresql":
        assert burst.raw is not None and burst.raw.events == e.unique
        assert burst.raw.events_per_second > 0
        assert len(burst.raw.runs) == 3  # the yardstick is the best of three
        assert burst.raw.events_per_second == max(burst.raw.runs)
        assert "sync_journey" in burst.rows_per_event
    else:
        assert burst.raw is None  # the raw rate is a PostgreSQL yardstick
