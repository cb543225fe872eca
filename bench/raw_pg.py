"""The raw PostgreSQL rate for the same writes: the yardstick the end-to-end figure is divided
by, so the ratio holds on any machine.

For every table the run grew, the rows it wrote per unique event are inserted again with
psycopg into a scratch copy (``CREATE TABLE bench_raw.x (LIKE public.x INCLUDING ALL)``: same
columns, defaults, indexes and checks; no foreign keys, no triggers), 500 events per
transaction, one ``executemany`` per table per transaction. The rows are copies of rows the
run wrote (a random sample), with their unique columns made unique again.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Json, Jsonb

SCHEMA = "bench_raw"
EVENTS_PER_TRANSACTION = 500
SAMPLE_ROWS = 200


@dataclass
class RawResult:
    events: int
    seconds: float
    rows: int
    rows_per_event: dict[str, float]
    # Every measurement's events/s when the rate is the best of several (``raw_rate_best``).
    runs: list[float] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def connect(settings_dict: dict[str, Any]) -> psycopg.Connection:
    return psycopg.connect(
        dbname=settings_dict["NAME"],
        user=settings_dict.get("USER") or None,
        password=settings_dict.get("PASSWORD") or None,
        host=settings_dict.get("HOST") or None,
        port=settings_dict.get("PORT") or None,
    )


@dataclass
class _Table:
    name: str
    columns: list[str]
    json_kind: dict[int, str]  # column index -> "json" | "jsonb"
    unique: dict[int, tuple[str, int | None]]  # column index -> (type, max length)
    sample: list[tuple]
    counter: int = 0

    def rows(self, count: int) -> list[tuple]:
        out = []
        for _ in range(count):
            self.counter += 1
            row = list(self.sample[self.counter % len(self.sample)])
            for i, (kind, max_len) in self.unique.items():
                row[i] = _unique_value(row[i], kind, max_len, self.counter)
            for i, kind in self.json_kind.items():
                if row[i] is not None:
                    row[i] = Jsonb(row[i]) if kind == "jsonb" else Json(row[i])
            out.append(tuple(row))
        return out


def _unique_value(value: Any, kind: str, max_len: int | None, n: int) -> Any:
    if kind in ("character varying", "text", "character"):
        text = f"{n}~{value or ''}"
        return text[:max_len] if max_len else text
    if kind == "uuid":
        return uuid.uuid4()
    if kind in ("integer", "bigint", "smallint"):
        return n
    return value


def _table(conn: psycopg.Connection, name: str) -> _Table | None:
    cols = conn.execute(
        """SELECT column_name, data_type, character_maximum_length, is_identity, column_default
             FROM information_schema.columns
            WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position""",
        [name],
    ).fetchall()
    # The id comes from the copy's own identity/sequence, as it would for a real insert.
    keep = [
        c
        for c in cols
        if not (c[3] == "YES" or (c[0] == "id" and (c[4] or "").startswith("nextval(")))
    ]
    names = [c[0] for c in keep]
    sample = conn.execute(
        sql.SQL("SELECT {} FROM public.{} ORDER BY random() LIMIT %s").format(
            sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier(name)
        ),
        [SAMPLE_ROWS],
    ).fetchall()
    if not sample:
        return None
    # One column per unique index is enough to make a copied row unique again; prefer the
    # widest kind (a smallint counter would overflow).
    rank = {"uuid": 0, "character varying": 1, "text": 1, "bigint": 2, "integer": 3}
    kinds = {c[0]: c[1] for c in keep}
    unique_cols = set()
    for (columns,) in conn.execute(
        """SELECT array_agg(a.attname::text) FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = %s::regclass AND i.indisunique GROUP BY i.indexrelid""",
        [f"public.{name}"],
    ).fetchall():
        usable = [c for c in columns if c in kinds and kinds[c] in rank]
        if usable:
            unique_cols.add(min(usable, key=lambda c: rank[kinds[c]]))
    return _Table(
        name=name,
        columns=names,
        json_kind={i: c[1] for i, c in enumerate(keep) if c[1] in ("json", "jsonb")},
        unique={i: (c[1], c[2]) for i, c in enumerate(keep) if c[0] in unique_cols},
        sample=sample,
    )


def raw_rate(
    settings_dict: dict[str, Any], rows_per_event: dict[str, float], events: int, *, keep=False
) -> RawResult:
    """Insert ``rows_per_event`` rows per table for ``events`` events, 500 events per
    transaction, and time it. Drops the scratch schema afterwards unless ``keep``."""
    with connect(settings_dict) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        tables = []
        for name in sorted(rows_per_event):
            table = _table(conn, name)
            if table is None:
                continue
            conn.execute(
                sql.SQL("CREATE TABLE {}.{} (LIKE public.{} INCLUDING ALL)").format(
                    sql.Identifier(SCHEMA), sql.Identifier(name), sql.Identifier(name)
                )
            )
            tables.append(table)
        conn.commit()
        inserts = {
            t.name: sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
                sql.Identifier(SCHEMA),
                sql.Identifier(t.name),
                sql.SQL(", ").join(map(sql.Identifier, t.columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(t.columns)),
            )
            for t in tables
        }
        owed = dict.fromkeys(inserts, 0.0)
        total_rows = 0
        # The end-to-end run leaves hundreds of MB of dirty pages for PostgreSQL and the OS
        # to write; timed against that write-back, the raw rate measured 1,219-1,974 events/s
        # on one machine in one day. A checkpoint first lets it start from a clean disk, as
        # the end-to-end run did (a non-superuser without pg_checkpoint goes without).
        try:
            conn.execute("CHECKPOINT")
            conn.commit()  # each batch below must be its own transaction, not a savepoint
        except psycopg.errors.InsufficientPrivilege:
            conn.rollback()
        started = time.perf_counter()
        done = 0
        while done < events:
            batch = min(EVENTS_PER_TRANSACTION, events - done)
            with conn.transaction(), conn.cursor() as cur:
                for t in tables:
                    owed[t.name] += rows_per_event[t.name] * batch
                    count = int(owed[t.name])
                    if count:
                        owed[t.name] -= count
                        cur.executemany(inserts[t.name], t.rows(count))
                        total_rows += count
            done += batch
        seconds = time.perf_counter() - started
        if not keep:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(SCHEMA)))
            conn.commit()
    return RawResult(
        events=events, seconds=seconds, rows=total_rows, rows_per_event=dict(rows_per_event)
    )


def raw_rate_best(
    settings_dict: dict[str, Any],
    rows_per_event: dict[str, float],
    events: int,
    *,
    repeats: int = 3,
    keep: bool = False,
) -> RawResult:
    """``raw_rate`` measured ``repeats`` times, the fastest kept: on a shared machine one
    measurement moved by a fifth between runs of the same day, and a yardstick that reads
    low flatters the ratio; the best of three is the machine's rate when nothing disturbs
    it. All the runs' rates are kept in ``runs``."""
    results = [
        raw_rate(settings_dict, rows_per_event, events, keep=keep and i == repeats - 1)
        for i in range(repeats)
    ]
    best = max(results, key=lambda r: r.events_per_second)
    best.runs = [r.events_per_second for r in results]
    return best
