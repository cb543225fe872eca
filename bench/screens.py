"""Screens at scale: seed 1,000,000 journeys and 100,000 open exceptions on PostgreSQL, then
time the server side of the busiest screens over a few hundred requests each.

    .venv/bin/python bench/screens.py [--journeys N] [--exceptions N] [--requests N]
                                      [--database-url URL] [--keep]

Requests go through Django's whole stack in process (middleware, session, the view, the
template) with the test client, so a figure is the server's time for the page, without the
network. Target (issue 5): p95 under 200 ms for every screen on a 2-core machine. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/rct_screens"
TARGET_P95_MS = 200.0
TYPES = (
    "invoice_to_ledger",
    "payment_to_ledger",
    "credit_note",
    "refund_to_ledger",
    "customer_sync",
    "invoice_void",
    "amendment",
    "subscription_cancellation",
    "revenue_recognition",
    "payment_failed",
)
ENTITIES = (("us-inc", "USD", "US"), ("uk-ltd", "GBP", "GB"), ("de-gmbh", "EUR", "DE"),
            ("fr-sas", "EUR", "FR"), ("sg-pte", "SGD", "SG"))  # fmt: skip


def _admin_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres"))


def recreate_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def seed(journeys: int, exceptions: int) -> dict[str, float]:
    """Journeys over the last 90 days in every type and entity, mostly completed (a fifth of
    them late), ``exceptions`` in exception with an open case each (about 300 root causes),
    and 2 % still in flight. Written with set-based SQL (the triggers fire per statement, as
    for the engine's bulk writes), then the dashboard deltas are rolled up."""
    from django.core.management import call_command
    from django.db import connection

    from sync.models import LegalEntity
    from sync.services.stats import stats_rollup

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    call_command("migrate", verbosity=0)
    timings["migrate"] = time.perf_counter() - t0
    ids = [
        LegalEntity.objects.create(
            code=code, name=code.upper(), functional_currency=cur, country=country
        ).pk
        for code, cur, country in ENTITIES
    ]
    active = journeys // 50
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
        cur.execute(
            """
            INSERT INTO sync_journey (journey_type, business_key, aggregate_key, correlation_id,
                source_system, legal_entity_id, state, context, business_at, sla_due_at,
                sla_warning_at, sla_state, created_at, updated_at, completed_at)
            SELECT t.types[1 + (g %% array_length(t.types, 1))],
                   'in_' || lpad(g::text, 9, '0'),
                   'stripe:invoice:in_' || lpad(g::text, 9, '0'),
                   md5(g::text)::uuid,
                   'stripe',
                   t.ents[1 + (g %% array_length(t.ents, 1))],
                   CASE WHEN g <= %(exc)s THEN 'exception'
                        WHEN g <= %(exc)s + %(active)s THEN 'waiting'
                        ELSE 'completed' END,
                   '{}'::jsonb,
                   b.at, b.at + interval '60 minutes', b.at + interval '45 minutes',
                   CASE WHEN g <= %(exc)s AND g %% 3 = 0 THEN 'breached'
                        WHEN g <= %(exc)s + %(active)s AND g %% 4 = 0 THEN 'at_risk'
                        WHEN g > %(exc)s + %(active)s AND g %% 5 = 0 THEN 'breached'
                        ELSE 'on_track' END,
                   b.at, b.at,
                   CASE WHEN g > %(exc)s + %(active)s
                        THEN b.at + make_interval(secs => (CASE WHEN g %% 5 = 0 THEN 4000
                             ELSE 20 + (g %% 900) END)) END
            FROM generate_series(1, %(n)s) AS g,
                 LATERAL (SELECT now() - make_interval(secs => ((g::bigint * 7919) %% (90 * 86400)))
                          AS at) AS b,
                 (SELECT %(types)s::text[] AS types, %(ents)s::bigint[] AS ents) AS t
            """,
            {"n": journeys, "exc": exceptions, "active": active, "types": list(TYPES), "ents": ids},
        )
        timings["journeys"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cur.execute(
            """
            INSERT INTO sync_step (journey_id, name, position, state, attempts, idempotency_key,
                error_class, error_message)
            SELECT id, 'map_accounts', 3, 'failed', 1, '', 'DataDefect', 'no product mapping'
            FROM sync_journey WHERE state = 'exception'
            """
        )
        cur.execute(
            """
            INSERT INTO sync_exceptioncase (journey_id, step_id, category, severity, state,
                legal_entity_id, summary, business_key, context, root_cause, resolution_note,
                created_at)
            SELECT j.id, s.id,
                   CASE WHEN j.id % 10 < 7 THEN 'unmapped_product'
                        WHEN j.id % 10 < 9 THEN 'customer_not_linked'
                        ELSE 'missing_fx_rate' END,
                   'medium', CASE WHEN j.id % 7 = 0 THEN 'in_progress' ELSE 'open' END,
                   j.legal_entity_id,
                   'Invoice ' || j.business_key || ' cannot be posted: no product mapping for '
                       || 'price_' || (j.id % 200) || '. Add the mapping, then replay.',
                   j.business_key,
                   '{}'::jsonb,
                   CASE WHEN j.id % 10 < 7 THEN 'unmapped_product:price_' || (j.id % 200)
                        WHEN j.id % 10 < 9 THEN 'customer_not_linked:cus_' || (j.id % 80)
                        ELSE 'missing_fx_rate:EUR/USD@2026-11-'
                             || lpad((1 + j.id % 20)::text, 2, '0')
                   END,
                   '', j.created_at + interval '2 minutes'
            FROM sync_journey j JOIN sync_step s ON s.journey_id = j.id
            WHERE j.state = 'exception'
            """
        )
        timings["exceptions"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    moved = stats_rollup()
    timings["rollup"] = time.perf_counter() - t0
    timings["rolled_deltas"] = float(moved["journey_deltas"] + moved["exception_deltas"])
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    return timings


def measure(requests: int) -> list[tuple[str, list[float], list[int]]]:
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from sync.models import ExceptionCase, Journey
    from tests.factories import UserFactory

    rng = random.Random(5)
    manager = UserFactory(username="mona", roles=["manager"])
    ops = UserFactory(username="fiona", roles=["finance_ops"])
    stuck = list(
        Journey.objects.filter(state="exception").order_by("?").values_list("pk", flat=True)[:500]
    )
    sample_key = Journey.objects.filter(state="exception").values_list("business_key", flat=True)[7]
    screens = [
        ("dashboard (home)", manager, lambda: "/"),
        ("dashboard, one entity, 30 days", manager, lambda: "/?entity=uk-ltd&days=30"),
        ("dashboard, htmx poll", manager, lambda: ("/", {"HX-Request": "true"})),
        ("exception queue", ops, lambda: "/exceptions/"),
        (
            "queue filtered (category + entity)",
            ops,
            lambda: (
                "/exceptions/?filtered=1&state=open&state=in_progress&category=unmapped_product&entity=de-gmbh"
            ),
        ),
        ("queue searched (business key)", ops, lambda: f"/exceptions/?q={sample_key[3:12]}"),
        ("queue by root cause", ops, lambda: "/exceptions/?root_cause=unmapped_product:price_17"),
        ("queue page 200", ops, lambda: "/exceptions/?page=200"),
        ("root causes (grouped)", ops, lambda: "/exceptions/causes/"),
        ("journey detail", ops, lambda: f"/journeys/{rng.choice(stuck)}/"),
        ("journeys list", manager, lambda: "/journeys/"),
    ]
    results = []
    for name, user, target in screens:
        client = Client()
        client.force_login(user)
        times: list[float] = []
        queries: list[int] = []
        for i in range(requests + 5):
            spec = target()
            path, headers = (spec, {}) if isinstance(spec, str) else spec
            reset_queries()
            with CaptureQueriesContext(connection) as ctx:
                t0 = time.perf_counter()
                response = client.get(path, headers=headers)
                elapsed = (time.perf_counter() - t0) * 1000
            assert response.status_code == 200, (path, response.status_code)
            if i >= 5:  # the first few warm caches and prepared statements
                times.append(elapsed)
                queries.append(len(ctx.captured_queries))
        results.append((name, times, queries))
        print(f"  {name:<38} done", flush=True)
    assert ExceptionCase.objects.exists()
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=1_000_000)
    parser.add_argument("--exceptions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)

    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controltower.settings")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "x" * 40)
    recreate_database(args.database_url)
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    print(
        f"== screens at scale: {args.journeys:,} journeys, {args.exceptions:,} open exceptions, "
        f"{args.requests} requests a screen, PostgreSQL {urlsplit(args.database_url).path[1:]}",
        flush=True,
    )
    timings = seed(args.journeys, args.exceptions)
    print(
        "   seeded: migrate {migrate:.1f} s, journeys {journeys:.1f} s, exceptions "
        "{exceptions:.1f} s, rollup {rollup:.1f} s ({rolled_deltas:,.0f} deltas)".format(**timings),
        flush=True,
    )
    results = measure(args.requests)
    print(f"\n{'screen':<38} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>8}")
    worst = 0.0
    for name, times, queries in results:
        p95 = percentile(times, 0.95)
        worst = max(worst, p95)
        print(
            f"{name:<38} {statistics.median(times):>8.1f} {p95:>8.1f} {max(times):>8.1f} "
            f"{max(queries):>8}"
        )
    verdict = "PASS" if worst < TARGET_P95_MS else "FAIL"
    print(f"\nworst p95 = {worst:.1f} ms (target < {TARGET_P95_MS:.0f} ms): {verdict}")
    if not args.keep:
        from django.db import connections

        connections.close_all()
        import psycopg

        name = urlsplit(args.database_url).path.lstrip("/")
        with psycopg.connect(_admin_url(args.database_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
