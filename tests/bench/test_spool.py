"""The burst's spool: deliveries generated before the timed window come back as the inline
generator would have delivered them, each stamped relative to its own cohort's delivery."""

from __future__ import annotations

import time

from bench.burst import _spool, _spooled_envelopes
from bench.generator import Expected, deliveries


def test_spooled_deliveries_are_the_inline_ones_restamped_at_delivery(tmp_path):
    inline_expected = Expected()
    inline = [
        (e["id"], e["type"], e["created"] - 1_000_000)  # place in its cohort's 10 s
        for e in deliveries(600, seed=7, expected=inline_expected, clock=lambda: 1_000_000)
    ]
    spooled_expected = Expected()
    count, _ = _spool(tmp_path / "s", 600, seed_value=7, expected=spooled_expected)
    assert count == 600
    assert spooled_expected.unique == inline_expected.unique
    assert spooled_expected.duplicates == inline_expected.duplicates > 0
    clock = [0.0]
    before = int(time.time())
    got = [
        (env.payload["id"], env.payload["type"], env.payload["created"])
        for env in _spooled_envelopes(tmp_path / "s", clock)
    ]
    after = int(time.time())
    assert [(i, t) for i, t, _ in got] == [(i, t) for i, t, _ in inline]
    for (_, _, created), (_, _, place) in zip(got, inline, strict=True):
        assert place in range(-10, 0)
        assert before <= created - place <= after  # its cohort's delivery time, plus its place
    first_seen: dict[str, int] = {}
    for event_id, _, created in got:  # a redelivery is the same event, stamp and all
        assert first_seen.setdefault(event_id, created) == created
    assert clock[0] > 0
