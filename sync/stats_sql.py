"""The SQL of the dashboard delta triggers, for PostgreSQL and SQLite (see ``sync.models.stats``).

Every change to a journey (or exception) that can move a figure contributes the *old* row with
sign -1 and the *new* row with sign +1; summed, the contributions of unchanged figures cancel.
A journey row contributes:

- on the day it was created: ``started`` 1 and the gauges (``active``, ``in_exception``,
  ``at_risk`` and ``breached`` for a journey not finished);
- if completed, on the day it completed: ``completed`` 1, ``on_time`` 1 if it completed by its
  SLA due time, in the bucket of its end-to-end latency (``business_at`` to ``completed_at``).

An exception row contributes ``open`` 1 in the hour it was created while it is open or in
progress. PostgreSQL runs one statement-level trigger per statement (transition tables: a bulk
update of 2,000 journeys writes a few grouped rows, not 6,000); SQLite runs row triggers.

No import from ``sync.models``: the models import this module for their trigger definitions.
"""

from __future__ import annotations

# Upper bounds (seconds, exclusive) of the end-to-end latency buckets: bucket i holds latencies
# with LATENCY_BOUNDS[i-1] <= latency < LATENCY_BOUNDS[i]; the last bucket is open-ended.
# Changing them needs a migration that re-creates the triggers and rebuilds the summaries.
LATENCY_BOUNDS: tuple[int, ...] = (
    1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800,
    604800,
)  # fmt: skip

ACTIVE = ("pending", "running", "retrying", "waiting")
TERMINAL = ("completed", "cancelled", "skipped")
OPEN_CASES = ("open", "in_progress")

JOURNEY_DELTA = "sync_journeystatdelta"
EXCEPTION_DELTA = "sync_exceptionstatdelta"
_JOURNEY_COLS = (
    "journey_type",
    "legal_entity_id",
    "state",
    "sla_state",
    "created_at",
    "completed_at",
    "business_at",
    "sla_due_at",
)
_DELTA_COLS = (
    "journey_type, entity_id, day, latency_bucket, started, completed, on_time, active, "
    "in_exception, at_risk, breached"
)


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


class _Dialect:
    def day(self, col: str) -> str:
        raise NotImplementedError

    def hour(self, col: str) -> str:
        raise NotImplementedError

    def seconds_between(self, start: str, end: str) -> str:
        raise NotImplementedError

    def not_after(self, a: str, b: str) -> str:
        raise NotImplementedError


class _Postgres(_Dialect):
    def day(self, col: str) -> str:
        return f"({col} AT TIME ZONE 'UTC')::date"

    def hour(self, col: str) -> str:
        return f"(date_trunc('hour', {col} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"

    def seconds_between(self, start: str, end: str) -> str:
        return f"EXTRACT(EPOCH FROM ({end} - {start}))"

    def not_after(self, a: str, b: str) -> str:
        return f"{a} <= {b}"


class _Sqlite(_Dialect):
    def day(self, col: str) -> str:
        return f"date({col})"

    def hour(self, col: str) -> str:
        return f"strftime('%Y-%m-%d %H:00:00', {col})"

    def seconds_between(self, start: str, end: str) -> str:
        return f"((julianday({end}) - julianday({start})) * 86400.0)"

    def not_after(self, a: str, b: str) -> str:
        return f"julianday({a}) <= julianday({b})"


def _bucket(d: _Dialect) -> str:
    latency = d.seconds_between("r.business_at", "r.completed_at")
    whens = " ".join(f"WHEN {latency} < {b} THEN {i}" for i, b in enumerate(LATENCY_BOUNDS))
    return f"CASE {whens} ELSE {len(LATENCY_BOUNDS)} END"


def _flag(condition: str) -> str:
    return f"(CASE WHEN {condition} THEN r.s ELSE 0 END)"


def journey_delta_insert(d: _Dialect, src: str) -> str:
    """``INSERT`` of the grouped contributions of ``src``: a subquery with column ``s`` (the
    sign) and the journey columns of ``_JOURNEY_COLS``."""
    unfinished = f"r.state NOT IN {_in(TERMINAL)}"
    done = "r.state = 'completed' AND r.completed_at IS NOT NULL"
    return f"""
INSERT INTO {JOURNEY_DELTA} ({_DELTA_COLS})
SELECT journey_type, entity_id, day, latency_bucket, SUM(started), SUM(completed), SUM(on_time),
       SUM(active), SUM(in_exception), SUM(at_risk), SUM(breached)
FROM (
    SELECT r.journey_type, COALESCE(r.legal_entity_id, 0) AS entity_id,
           {d.day("r.created_at")} AS day, -1 AS latency_bucket,
           r.s AS started, 0 AS completed, 0 AS on_time,
           {_flag(f"r.state IN {_in(ACTIVE)}")} AS active,
           {_flag("r.state = 'exception'")} AS in_exception,
           {_flag(f"{unfinished} AND r.sla_state = 'at_risk'")} AS at_risk,
           {_flag(f"{unfinished} AND r.sla_state = 'breached'")} AS breached
    FROM ({src}) r
    UNION ALL
    SELECT r.journey_type, COALESCE(r.legal_entity_id, 0),
           {d.day("r.completed_at")}, {_bucket(d)},
           0, r.s, {_flag(d.not_after("r.completed_at", "r.sla_due_at"))}, 0, 0, 0, 0
    FROM ({src}) r
    WHERE {done}
) c
GROUP BY journey_type, entity_id, day, latency_bucket
HAVING SUM(started) <> 0 OR SUM(completed) <> 0 OR SUM(on_time) <> 0 OR SUM(active) <> 0
    OR SUM(in_exception) <> 0 OR SUM(at_risk) <> 0 OR SUM(breached) <> 0
"""


def exception_delta_insert(d: _Dialect, src: str) -> str:
    """``INSERT`` of the grouped contributions of ``src`` (sign ``s``, ``journey_type``,
    ``legal_entity_id``, ``state``, ``created_at`` of exception rows)."""
    return f"""
INSERT INTO {EXCEPTION_DELTA} (journey_type, entity_id, hour, open)
SELECT journey_type, entity_id, hour, SUM(open)
FROM (
    SELECT r.journey_type, COALESCE(r.legal_entity_id, 0) AS entity_id,
           {d.hour("r.created_at")} AS hour,
           (CASE WHEN r.state IN {_in(OPEN_CASES)} THEN r.s ELSE 0 END) AS open
    FROM ({src}) r
) c
GROUP BY journey_type, entity_id, hour
HAVING SUM(open) <> 0
"""


def _cols(prefix: str, cols: tuple[str, ...]) -> str:
    return ", ".join(f"{prefix}{c} AS {c}" for c in cols)


def _changed(old: str, new: str, cols: tuple[str, ...]) -> str:
    return " OR ".join(f"{old}.{c} IS DISTINCT FROM {new}.{c}" for c in cols)


# --- PostgreSQL: statement-level triggers over transition tables --------------------------------

PG = _Postgres()


def _pg_case_cols(alias: str) -> str:
    # The journey type lives on the journey: joined in.
    return (
        f"j.journey_type AS journey_type, {alias}.legal_entity_id AS legal_entity_id, "
        f"{alias}.state AS state, {alias}.created_at AS created_at"
    )


def pg_journey_functions() -> dict[str, str]:
    """Trigger function bodies (PL/pgSQL) for INSERT, UPDATE and DELETE on ``sync_journey``."""
    changed = _changed("o", "n", _JOURNEY_COLS)
    upd = (
        f"SELECT 1 AS s, {_cols('n.', _JOURNEY_COLS)} FROM new_rows n JOIN old_rows o "
        f"ON o.id = n.id WHERE {changed} "
        f"UNION ALL SELECT -1 AS s, {_cols('o.', _JOURNEY_COLS)} FROM old_rows o JOIN new_rows n "
        f"ON o.id = n.id WHERE {changed}"
    )
    return {
        "insert": journey_delta_insert(
            PG, f"SELECT 1 AS s, {_cols('n.', _JOURNEY_COLS)} FROM new_rows n"
        )
        + "; RETURN NULL;",
        "update": journey_delta_insert(PG, upd) + "; RETURN NULL;",
        "delete": journey_delta_insert(
            PG, f"SELECT -1 AS s, {_cols('o.', _JOURNEY_COLS)} FROM old_rows o"
        )
        + "; RETURN NULL;",
    }


def pg_exception_functions() -> dict[str, str]:
    """Trigger function bodies for INSERT, UPDATE and DELETE on ``sync_exceptioncase``."""
    cols = ("legal_entity_id", "state", "created_at", "journey_id")
    changed = _changed("o", "n", cols)
    join = "JOIN sync_journey j ON j.id = {a}.journey_id"
    upd = (
        f"SELECT 1 AS s, {_pg_case_cols('n')} FROM new_rows n JOIN old_rows o ON o.id = n.id "
        f"{join.format(a='n')} WHERE {changed} "
        f"UNION ALL SELECT -1 AS s, {_pg_case_cols('o')} FROM old_rows o JOIN new_rows n "
        f"ON o.id = n.id {join.format(a='o')} WHERE {changed}"
    )
    return {
        "insert": exception_delta_insert(
            PG, f"SELECT 1 AS s, {_pg_case_cols('n')} FROM new_rows n {join.format(a='n')}"
        )
        + "; RETURN NULL;",
        "update": exception_delta_insert(PG, upd) + "; RETURN NULL;",
        "delete": exception_delta_insert(
            PG, f"SELECT -1 AS s, {_pg_case_cols('o')} FROM old_rows o {join.format(a='o')}"
        )
        + "; RETURN NULL;",
    }


def stats_triggers(prefix: str, functions: dict[str, str]) -> list:
    """The three django-pgtrigger statement triggers (insert, update, delete) of a table."""
    import pgtrigger

    ops = {
        "insert": (pgtrigger.Insert, pgtrigger.Referencing(new="new_rows")),
        "update": (pgtrigger.Update, pgtrigger.Referencing(old="old_rows", new="new_rows")),
        "delete": (pgtrigger.Delete, pgtrigger.Referencing(old="old_rows")),
    }
    return [
        pgtrigger.Trigger(
            name=f"{prefix}_stats_{op}",
            level=pgtrigger.Statement,
            when=pgtrigger.After,
            operation=operation,
            referencing=referencing,
            func=pgtrigger.Func(functions[op]),
        )
        for op, (operation, referencing) in ops.items()
    ]


# --- SQLite: row triggers ------------------------------------------------------------------------

SQLITE = _Sqlite()
SQLITE_TRIGGERS = (
    "rct_journey_stats_ins",
    "rct_journey_stats_upd",
    "rct_journey_stats_del",
    "rct_exception_stats_ins",
    "rct_exception_stats_upd",
    "rct_exception_stats_del",
)


def _sqlite_row(prefix: str, sign: int, cols: tuple[str, ...]) -> str:
    return f"SELECT {sign} AS s, {_cols(prefix, cols)}"


def _sqlite_case_row(prefix: str, sign: int) -> str:
    return (
        # COALESCE: a flush may delete the journey first (its cases' delta is moot then).
        f"SELECT {sign} AS s, COALESCE((SELECT journey_type FROM sync_journey WHERE id = "
        f"{prefix}journey_id), '') AS journey_type, {prefix}legal_entity_id AS legal_entity_id, "
        f"{prefix}state AS state, {prefix}created_at AS created_at"
    )


def sqlite_create_statements() -> list[str]:
    j_changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _JOURNEY_COLS)
    c_cols = ("legal_entity_id", "state", "created_at", "journey_id")
    c_changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in c_cols)
    j_both = (
        f"{_sqlite_row('NEW.', 1, _JOURNEY_COLS)} UNION ALL "
        f"{_sqlite_row('OLD.', -1, _JOURNEY_COLS)}"
    )
    c_both = f"{_sqlite_case_row('NEW.', 1)} UNION ALL {_sqlite_case_row('OLD.', -1)}"
    return [
        f"CREATE TRIGGER rct_journey_stats_ins AFTER INSERT ON sync_journey BEGIN "
        f"{journey_delta_insert(SQLITE, _sqlite_row('NEW.', 1, _JOURNEY_COLS))}; END",
        f"CREATE TRIGGER rct_journey_stats_upd AFTER UPDATE ON sync_journey "
        f"WHEN {j_changed} BEGIN {journey_delta_insert(SQLITE, j_both)}; END",
        f"CREATE TRIGGER rct_journey_stats_del AFTER DELETE ON sync_journey BEGIN "
        f"{journey_delta_insert(SQLITE, _sqlite_row('OLD.', -1, _JOURNEY_COLS))}; END",
        f"CREATE TRIGGER rct_exception_stats_ins AFTER INSERT ON sync_exceptioncase BEGIN "
        f"{exception_delta_insert(SQLITE, _sqlite_case_row('NEW.', 1))}; END",
        f"CREATE TRIGGER rct_exception_stats_upd AFTER UPDATE ON sync_exceptioncase "
        f"WHEN {c_changed} BEGIN {exception_delta_insert(SQLITE, c_both)}; END",
        # Deleted with its journey (CASCADE runs before the journey row goes): the journey
        # type is still readable.
        f"CREATE TRIGGER rct_exception_stats_del BEFORE DELETE ON sync_exceptioncase BEGIN "
        f"{exception_delta_insert(SQLITE, _sqlite_case_row('OLD.', -1))}; END",
    ]


def sqlite_drop_statements() -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {name}" for name in SQLITE_TRIGGERS]


def seed_statements(vendor: str) -> list[str]:
    """Deltas that count every existing row once (sign +1): with empty summaries, what the
    triggers would have written had they always been there. Used by the migration that adds
    them and by ``stats_rebuild``."""
    d = PG if vendor == "postgresql" else SQLITE
    journeys = f"SELECT 1 AS s, {_cols('r0.', _JOURNEY_COLS)} FROM sync_journey r0"
    cases = (
        "SELECT 1 AS s, j.journey_type AS journey_type, r0.legal_entity_id AS legal_entity_id, "
        "r0.state AS state, r0.created_at AS created_at "
        "FROM sync_exceptioncase r0 JOIN sync_journey j ON j.id = r0.journey_id"
    )
    return [journey_delta_insert(d, journeys), exception_delta_insert(d, cases)]
