"""Quarter-end burst benchmark: N mixed Stripe events through the ingest path, the real
django-q2 workers on PostgreSQL until everything is settled, then the figures and the checks.

    .venv/bin/python bench/burst.py [--events N] [--workers W] [--database-url URL] [--keep]

See bench/README.md for what is measured and how to read it. ``run()`` is the same harness
for a test (``tests/bench/test_burst_small.py``), against the database Django already uses.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import logging
import os
import secrets
import signal
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: bench/ is sys.path[0], the project is not
    sys.path.insert(0, str(ROOT))

from bench.generator import RATES, Expected, deliveries  # noqa: E402
from bench.stack import ProcMemory, RssSampler, Stack  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/rct_bench"
WEBHOOK_SECRET = "whsec_bench_local_only"
NETSUITE_TOKEN = "bench-netsuite-token"
INGEST_CHUNK = 500
PROGRESS_EVERY = 10.0
# A progress line counts journeys by state over the whole table (140 ms at 1M, taken from
# the run it reports on): at least every 10 s, one line per 20,000 events' worth of seconds
# above that (50 s at 1M).
PROGRESS_PER_EVENTS = 20_000
RAW_EVENTS_CAP = 50_000
TARGET_RATIO = 0.15


@dataclass
class BurstResult:
    """Everything a run measured and judged; ``lines`` is what it printed."""

    expected: Expected
    accepted: int = 0
    ingest_path: str = ""
    ingest_seconds: float = 0.0
    generate_seconds: float = 0.0
    generate: str = "ahead"
    spool_seconds: float = 0.0
    wall_seconds: float = 0.0
    settled: bool = False
    journeys: dict[str, int] = field(default_factory=dict)
    latency: dict[str, tuple[int, list[float]]] = field(default_factory=dict)
    memory: list[ProcMemory] = field(default_factory=list)
    tree_peak_kb: dict[str, int] = field(default_factory=dict)
    database_bytes: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    rows_per_event: dict[str, float] = field(default_factory=dict)
    raw: Any = None  # bench.raw_pg.RawResult on PostgreSQL
    checks: list = field(default_factory=list)  # bench.report.Check
    lines: list[str] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.accepted / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def ratio(self) -> float | None:
        if self.raw is None or not self.raw.events_per_second:
            return None
        return self.events_per_second / self.raw.events_per_second

    @property
    def ok(self) -> bool:
        """Settled, and every invariant check passed (the throughput target is reported,
        not judged here)."""
        return self.settled and bool(self.checks) and all(c.ok for c in self.checks)


# --- database -------------------------------------------------------------------------------


def database_recreate(url: str) -> None:
    """Drop and create the benchmark database (only names starting with ``rct_bench``)."""
    import psycopg
    from psycopg import sql

    name = database_drop(url)
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_drop(url: str) -> str:
    """Drop the benchmark database if it exists (only names starting with ``rct_bench``)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.startswith("rct_bench"):
        raise SystemExit(f"refusing to drop {name!r}: the benchmark database must be rct_bench*")
    admin = urlunsplit(parts._replace(path="/postgres", scheme="postgresql"))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(drop)
    return name


def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controltower.settings")
    # As the workers: with DEBUG on, Django keeps the text of the last 9,000 queries, and a
    # bulk insert of 500 events is megabytes of SQL (the bench process grew past 300 MB).
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(32))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


class AutovacuumStandIn(threading.Thread):
    """Stands in for autovacuum on a server that has it switched off.

    A deployment runs PostgreSQL with autovacuum on (the default): autoanalyze keeps the
    planner's statistics current as tables grow from nothing to millions of rows, and vacuum
    clears the dead row versions a work queue leaves behind (each journey and step is updated
    several times on its way to done). A test machine may turn it off (this one does). Without
    the statistics the planner believes the tables are as small as when the run began (a 100k
    run measured a payment-link lookup scanning the inbox instead of its index: 13 journeys/s
    instead of 55); without the vacuum, dead index entries of finished journeys pile up over
    a 1M run and every probe for active work walks past them.

    So when the server says ``autovacuum = off``, the bench does what autovacuum would, with
    autovacuum's own rules and defaults: every ``interval`` seconds it reads
    ``pg_stat_user_tables`` and vacuums a table whose dead rows exceed
    ``50 + 0.2 * live rows`` or whose inserts since the last vacuum exceed
    ``1000 + 0.2 * live rows``, and analyzes one whose changes since the last analyze exceed
    ``50 + 0.1 * live rows``, one table at a time (autovacuum may run three), throttled as
    autovacuum is (cost delay 2 ms, cost limit 200). It says so in the bench's header."""

    TABLES_SQL = """
        SELECT format('%I.%I', schemaname, relname),
               n_dead_tup > 50 + 0.2 * n_live_tup
               OR n_ins_since_vacuum > 1000 + 0.2 * n_live_tup,
               n_mod_since_analyze > 50 + 0.1 * n_live_tup
          FROM pg_stat_user_tables
         ORDER BY n_dead_tup DESC
    """

    def __init__(self, url: str, interval: float = 30.0) -> None:
        super().__init__(name="autovacuum-stand-in", daemon=True)
        self.url, self.interval = url, interval
        self.vacuums = self.analyzes = 0
        self.stopping = threading.Event()

    @staticmethod
    def needed(url: str) -> bool:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute("SHOW autovacuum").fetchone()[0] == "off"

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SET vacuum_cost_delay = '2ms'")
            conn.execute("SET vacuum_cost_limit = 200")
            while not self.stopping.wait(self.interval):
                for table, vacuum, analyze in conn.execute(self.TABLES_SQL).fetchall():
                    if self.stopping.is_set():
                        break
                    if vacuum:
                        conn.execute(f"VACUUM (ANALYZE) {table}" if analyze else f"VACUUM {table}")
                        self.vacuums += 1
                        self.analyzes += analyze
                    elif analyze:
                        conn.execute(f"ANALYZE {table}")
                        self.analyzes += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=120)


def _database_env() -> dict[str, str]:
    """How the worker processes reach the database this process uses (as tests/e2e)."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = (s.get("USER") or "") + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
        host = s.get("HOST") or "127.0.0.1"
        port = s.get("PORT") or "5432"
        return {"DATABASE_URL": f"postgres://{auth}@{host}:{port}/{s['NAME']}"}
    return {"DATABASE_URL": "", "SQLITE_PATH": str(s["NAME"])}


def seed(quarter_days: int = 100) -> None:
    """The demo's entities, accounts, posting rules, product and tax mappings (the product's
    own seed service) plus daily FX rates over the quarter, all through ``mapping_save``."""
    from bench.generator import QUARTER_START
    from sync.models import FxRate
    from sync.services.demo import demo_master_data_seed
    from sync.services.mappings import mapping_save

    demo_master_data_seed(actor=None)
    for day in range(quarter_days):
        rate_date = QUARTER_START.date() + dt.timedelta(days=day)
        for (base, quote), rate in RATES.items():
            if not FxRate.objects.filter(
                rate_date=rate_date, base_currency=base.upper(), quote_currency=quote.upper()
            ).exists():
                mapping_save(
                    actor=None,
                    instance=FxRate(
                        rate_date=rate_date,
                        base_currency=base.upper(),
                        quote_currency=quote.upper(),
                        rate=rate,
                    ),
                    reason="burst benchmark set-up",
                    check_permission=False,
                )


# --- ingest ---------------------------------------------------------------------------------


def _envelopes(events: Iterator[dict], clock: list[float]) -> Iterator[Any]:
    """Each event as the webhook endpoint would hand it on: serialized, signed, verified
    (``--generate inline``: Stripe's side of it runs in the timed window too)."""
    from connectors.stripe import emulator as se
    from connectors.stripe.webhooks import verify_event

    while True:
        started = time.perf_counter()
        try:
            event = next(events)
        except StopIteration:
            return
        body = se.serialize(event)
        envelope = verify_event(body, se.sign_payload(body, WEBHOOK_SECRET), WEBHOOK_SECRET)
        clock[0] += time.perf_counter() - started
        yield envelope


# A spooled delivery: the offset and length of the event's top-level ``created`` number in
# its body, the body's length, then the body.
_SPOOL_RECORD = struct.Struct(">III")
# The spool's stand-in clock numbers the cohorts: cohort c's events are stamped in
# [c*GAP - 10, c*GAP), so a stamp names its cohort and its place in the cohort's 10 s.
_COHORT_GAP = 100


def _spool(path: Path, events: int, *, seed_value: int, expected: Expected) -> tuple[int, float]:
    """Generate and serialize every delivery before the timed window, as Stripe would have
    them ready, into ``path`` (one record each; memory stays flat). Returns (records,
    seconds)."""
    from connectors.stripe import emulator as se

    started = time.perf_counter()
    cohorts = itertools.count(1)
    marker = b'\n  "created": '  # the event's own key (indent 2); nested objects are deeper
    count = 0
    with path.open("wb") as f:
        stream = deliveries(
            events,
            seed=seed_value,
            expected=expected,
            clock=lambda: next(cohorts) * _COHORT_GAP,
        )
        for event in stream:
            body = se.serialize(event)
            at = body.find(marker)
            if at < 0:
                raise ValueError(f"event {event.get('id')} has no top-level created")
            at += len(marker)
            end = at
            while body[end : end + 1].isdigit():
                end += 1
            f.write(_SPOOL_RECORD.pack(at, end - at, len(body)))
            f.write(body)
            count += 1
    return count, time.perf_counter() - started


def _spooled_envelopes(path: Path, clock: list[float]) -> Iterator[Any]:
    """The spooled deliveries, each stamped, signed and verified as it is delivered: its
    ``created`` is its place in its cohort's 10 s before the moment the cohort's first event
    is delivered (as ``--generate inline`` stamps a cohort when it is built, just before its
    delivery), its signature made now (the webhook endpoint refuses an old one)."""
    from connectors.stripe import emulator as se
    from connectors.stripe.webhooks import verify_event

    cohort_now: dict[int, int] = {}
    with path.open("rb") as f:
        while True:
            started = time.perf_counter()
            head = f.read(_SPOOL_RECORD.size)
            if not head:
                return
            at, width, size = _SPOOL_RECORD.unpack(head)
            body = f.read(size)
            stamp = int(body[at : at + width])
            cohort = (stamp + 10) // _COHORT_GAP
            if cohort not in cohort_now:
                cohort_now[cohort] = int(time.time())
            created = cohort_now[cohort] + stamp - cohort * _COHORT_GAP
            body = b"%s%d%s" % (body[:at], created, body[at + width :])
            envelope = verify_event(body, se.sign_payload(body, WEBHOOK_SECRET), WEBHOOK_SECRET)
            clock[0] += time.perf_counter() - started
            yield envelope


def _ingest_function(mode: str) -> tuple[str, Callable[[list[Any]], int]]:
    from sync.services import inbox

    bulk = getattr(inbox, "inbound_events_receive_bulk", None)
    if mode == "bulk" and bulk is None:
        raise SystemExit("--ingest bulk: sync.services.inbox has no inbound_events_receive_bulk")
    if bulk is not None and mode in ("auto", "bulk"):
        return (
            "inbound_events_receive_bulk (500 per call)",
            lambda envs: bulk(source_system="stripe", envelopes=envs),
        )

    def one_by_one(envs: list[Any]) -> int:
        return sum(
            inbox.inbound_event_receive(source_system="stripe", envelope=e).created for e in envs
        )

    return "inbound_event_receive per event", one_by_one


@contextlib.contextmanager
def _quiet_loggers(level: int) -> Iterator[None]:
    """The bench process ingests like a web process would, but its per-event INFO lines
    would drown the report."""
    names = ["sync", "connectors", "django-q"]
    before = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(level)
    try:
        yield
    finally:
        for n, lvl in before.items():
            logging.getLogger(n).setLevel(lvl)


# --- the run --------------------------------------------------------------------------------


def run(
    *,
    events: int = 100_000,
    workers: int | None = None,
    database_url: str | None = None,
    seed_value: int = 2026,
    timeout: float = 7200.0,
    ingest: str = "auto",
    generate: str = "ahead",
    keep: bool = False,
    log_dir: Path | None = None,
    env: dict[str, str] | None = None,
    raw_events_cap: int = RAW_EVENTS_CAP,
    out: Callable[[str], None] | None = None,
) -> BurstResult:
    """Run one burst. With ``database_url`` a fresh database is made there first (and
    Django set up on it; dropped afterwards unless ``keep``); without, the database Django
    already uses is used as it is (it must be migrated and empty, as in a test)."""
    if database_url:
        database_recreate(database_url)
        django_setup(database_url)
    from django.db import close_old_connections, connection

    from bench import report

    workers = workers or os.cpu_count() or 2
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="rct-burst-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    expected = Expected()
    result = BurstResult(expected=expected)

    def say(line: str = "") -> None:
        result.lines.append(line)
        if out is None:
            print(line, flush=True)
        else:
            out(line)

    seed()
    before = report.table_counts()
    result.generate = generate
    spool_path = log_dir / "deliveries.spool"
    if generate == "ahead":
        _, result.spool_seconds = _spool(
            spool_path, events, seed_value=seed_value, expected=expected
        )
    stack = Stack(
        env={
            **os.environ,
            **_database_env(),
            "NETSUITE_TOKEN": NETSUITE_TOKEN,
            "Q_WORKERS": str(workers),
            "PYTHONUNBUFFERED": "1",
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            # The workers run as in production: with DEBUG on, Django's debug cursor times,
            # formats and keeps every query, which is not what a deployment pays for.
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(32),
            **(env or {}),
        },
        logs=log_dir,
    )
    broker = "Redis" if os.environ.get("REDIS_URL") else "ORM (database)"
    db_label = (
        f"PostgreSQL {connection.settings_dict['NAME']}"
        if connection.vendor == "postgresql"
        else "SQLite"
    )
    sampler = None
    try:
        stack.start_emulator(NETSUITE_TOKEN)
        stack.env["NETSUITE_BASE_URL"] = stack.netsuite_url
        stack.start_workers()
        path, receive = _ingest_function(ingest)
        result.ingest_path = path
        say(
            f"== quarter-end burst: {events:,} deliveries, {workers} workers, {db_label}, "
            f"{broker} broker"
        )
        say(f"   ingest: {path}; logs in {log_dir}")
        sampler = RssSampler(
            {
                "bench (ingest)": (os.getpid(), False),
                "qcluster": (stack.procs["qcluster"].pid, True),
                "rct_clock": (stack.procs["clock"].pid, True),
                "netsuite emulator": (stack.procs["netsuite"].pid, True),
            }
        )
        sampler.start()
        analyzer = None
        if connection.vendor == "postgresql":
            url = _database_env()["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
            if AutovacuumStandIn.needed(url):
                analyzer = AutovacuumStandIn(url)
                analyzer.start()
                say(
                    "   the server has autovacuum off: the bench vacuums and analyzes by "
                    "autovacuum's rules every 30 s instead (see AutovacuumStandIn)"
                )
        if generate == "ahead":
            say(
                f"   deliveries generated and serialized ahead in {result.spool_seconds:,.1f} s "
                "(Stripe's side, not timed); each is stamped, signed and verified as it is "
                "delivered"
            )
        gen_clock = [0.0]
        stream = (
            _spooled_envelopes(spool_path, gen_clock)
            if generate == "ahead"
            else _envelopes(deliveries(events, seed=seed_value, expected=expected), gen_clock)
        )
        started = time.monotonic()
        every = max(PROGRESS_EVERY, events / PROGRESS_PER_EVENTS)
        next_progress = started + every
        offered = 0

        def progress() -> None:
            received, _ = report.unsettled()
            states = report.journeys_by_state()
            say(
                f"  [{time.monotonic() - started:7.1f}s] ingested {offered:,}/{events:,} "
                f"({result.accepted:,} new) | inbox received {received:,} | journeys "
                + (", ".join(f"{k} {v:,}" for k, v in sorted(states.items())) or "none")
            )

        with _quiet_loggers(logging.WARNING):
            chunk: list[Any] = []
            for envelope in stream:
                chunk.append(envelope)
                if len(chunk) == INGEST_CHUNK:
                    result.accepted += receive(chunk)
                    offered += len(chunk)
                    chunk = []
                    if time.monotonic() >= next_progress:
                        progress()
                        next_progress += every
            if chunk:
                result.accepted += receive(chunk)
                offered += len(chunk)
        result.ingest_seconds = time.monotonic() - started
        result.generate_seconds = gen_clock[0]
        deadline = started + timeout
        while True:
            if report.settled():
                result.settled = True
                break
            dead = stack.check_alive()
            if dead or time.monotonic() > deadline:
                say(f"  !! stopped waiting: {'exited: ' + ', '.join(dead) if dead else 'timeout'}")
                break
            if time.monotonic() >= next_progress:
                progress()
                next_progress += every
            close_old_connections()
            time.sleep(0.5)
        result.wall_seconds = time.monotonic() - started
        progress()
        for line in report.stuck_sample():
            say(line)
        sampler.stop()
        if analyzer is not None:
            analyzer.stop()
            say(
                f"   autovacuum stand-in: {analyzer.vacuums:,} vacuums, "
                f"{analyzer.analyzes:,} analyzes"
            )
        stack.procs["qcluster"].terminate()
        stack.procs["clock"].terminate()
        result.memory = sorted(sampler.procs.values(), key=lambda m: m.label)
        result.tree_peak_kb = dict(sampler.tree_peak_kb)
        result.journeys = report.journeys_by_state()
        result.latency = report.latency_percentiles()
        result.tables = report.table_counts()
        result.database_bytes = report.database_size()
        result.checks = report.invariant_checks(expected, stack.netsuite_url)
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        stack.stop()
        close_old_connections()
        if not keep:
            spool_path.unlink(missing_ok=True)  # 4 kB a delivery: 4 GB at 1M
    unique = max(expected.unique, 1)
    # The journey's own rows; django-q2's queue and results (capped by save_limit) are not.
    result.rows_per_event = {
        t: (n - before.get(t, 0)) / unique
        for t, n in result.tables.items()
        if n > before.get(t, 0) and not t.startswith("django_q")
    }
    if connection.vendor == "postgresql":
        from bench.raw_pg import raw_rate_best

        try:
            result.raw = raw_rate_best(
                connection.settings_dict,
                result.rows_per_event,
                min(expected.unique, raw_events_cap),
                keep=keep,
            )
        except Exception as exc:  # the yardstick failing must not hide the run's figures
            say(f"raw PostgreSQL rate failed: {type(exc).__name__}: {exc}")
    _print_summary(result, say)
    connection.close()
    if database_url and not keep:
        database_drop(database_url)
    return result


def _mb(kb: int) -> str:
    return f"{kb / 1024:,.0f}"


def _print_summary(r: BurstResult, say: Callable[[str], None]) -> None:
    e = r.expected
    say("")
    say(
        f"deliveries {e.deliveries:,} | unique {e.unique:,} (accepted {r.accepted:,}) | "
        f"duplicates {e.duplicates:,} | out of order {e.out_of_order:,} | "
        f"defects {e.defects:,} (invoices with an unmapped price)"
    )
    say("mix: " + ", ".join(f"{k} {v:,}" for k, v in sorted(e.by_type.items())))
    say(
        f"wall time, first ingest -> settled: {r.wall_seconds:,.1f} s"
        + ("" if r.settled else " (NOT SETTLED)")
        + f" | ingest done after {r.ingest_seconds:,.1f} s, of which "
        + (
            f"{r.generate_seconds:,.1f} s reading, stamping, signing and verifying the "
            "spooled deliveries in the bench process"
            if r.generate == "ahead"
            else f"{r.generate_seconds:,.1f} s generating/signing/verifying in the bench process"
        )
    )
    if r.settled:
        say(f"end to end: {r.events_per_second:,.1f} unique events/s")
    else:
        say(f"end to end: n/a, not settled (accepted / wall would be {r.events_per_second:,.1f})")
    say("journeys: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r.journeys.items())))
    say("latency, journey created (dispatch) -> completed, seconds:   n      p50     p95     p99")
    for key in ["all", *sorted(k for k in r.latency if k != "all")]:
        if key in r.latency:
            n, (p50, p95, p99) = r.latency[key]
            say(f"  {key:<34} {n:>9,} {p50:8.1f} {p95:7.1f} {p99:7.1f}")
    say("peak RSS, MB (first / peak / last sample; forked children summed up by root):")
    roots = [m for m in r.memory if " child " not in m.label]
    for m in roots:
        say(f"  {m.label:<22} {_mb(m.first_kb):>6} {_mb(m.peak_kb):>6} {_mb(m.last_kb):>6}")
        kids = [c for c in r.memory if c.label.startswith(m.label + " child ")]
        if kids:
            alive = [c for c in kids if c.last_kb]
            say(
                f"    {len(kids)} children over the run ({len(alive)} at the end; django-q2 "
                f"recycles workers): largest first {_mb(max(c.first_kb for c in kids))}, "
                f"peak {_mb(max(c.peak_kb for c in kids))}, "
                f"last {_mb(max((c.last_kb for c in alive), default=0))}"
            )
    say(
        "  whole trees, peak MB: "
        + ", ".join(f"{k} {_mb(v)}" for k, v in sorted(r.tree_peak_kb.items()))
    )
    say(f"database size: {r.database_bytes / 2**20:,.1f} MB; rows per table (rows per event):")
    for table, n in sorted(r.tables.items()):
        if n:
            per = r.rows_per_event.get(table)
            say(f"  {table:<36} {n:>11,}" + (f"  ({per:.3f})" if per else ""))
    if r.raw is None:
        say("raw PostgreSQL rate: skipped (not on PostgreSQL)")
    else:
        per_event = sum(r.raw.rows_per_event.values())
        say(
            f"raw PostgreSQL: {r.raw.events:,} events ({per_event:.2f} rows/event, "
            f"{r.raw.rows:,} rows, 500 events per transaction) in {r.raw.seconds:,.1f} s "
            f"= {r.raw.events_per_second:,.0f} events/s"
            + (
                f" (the best of {len(r.raw.runs)}: "
                + ", ".join(f"{rate:,.0f}" for rate in r.raw.runs)
                + ")"
                if len(r.raw.runs) > 1
                else ""
            )
        )
        ratio = (r.ratio or 0.0) if r.settled else 0.0
        say(
            f"end to end / raw = {ratio:.2%} (target >= {TARGET_RATIO:.0%}): "
            + ("PASS" if ratio >= TARGET_RATIO else "FAIL")
            + ("" if r.settled else " (not settled)")
        )
    say("invariants:")
    for check in r.checks:
        say(check.line())
    say("RESULT: " + ("all invariants hold" if r.ok else "INVARIANTS FAILED"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/burst.py", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="deliveries (default 100000)")
    parser.add_argument("--workers", type=int, default=None, help="Q_WORKERS (default: cores)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds to settle")
    parser.add_argument("--ingest", choices=("auto", "bulk", "single"), default="auto")
    parser.add_argument(
        "--generate",
        choices=("ahead", "inline"),
        default="ahead",
        help="generate the deliveries before the timed window (default) or during it",
    )
    parser.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    # Stop cleanly on SIGTERM, and on SIGINT even when started in the background (where the
    # shell ignores it): the processes this run started are stopped in run()'s finally.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    log_dir = args.log_dir or ROOT / "var" / "bench" / time.strftime("burst-%Y%m%d-%H%M%S")
    result = run(
        events=args.events,
        workers=args.workers,
        database_url=args.database_url,
        seed_value=args.seed,
        timeout=args.timeout,
        ingest=args.ingest,
        generate=args.generate,
        keep=args.keep,
        log_dir=log_dir,
    )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
