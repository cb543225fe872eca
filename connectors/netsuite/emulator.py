"""A small, real, local implementation of the NetSuite REST record service.

Run it as a process::

    python -m connectors.netsuite.emulator --host 127.0.0.1 --port 8765 \\
        --db /tmp/netsuite.sqlite3 [--token SECRET]

(``--port 0`` picks a free port; the first stdout line is
``NetSuite emulator listening on http://HOST:PORT``) or in-process::

    server, base_url = start_emulator("/tmp/ns.sqlite3", token="SECRET")
    ...
    stop_emulator(server)          # or server.stop()

All state lives in the SQLite file (WAL mode), so a killed and restarted emulator serves the
same records. Each request uses its own connection; writes run in ``BEGIN IMMEDIATE``
transactions and ``UNIQUE(type, external_id)`` makes two records for one external id
impossible, even under concurrent upserts.

Record service (``/services/rest/record/v1``), record types ``journalEntry`` and
``customer`` (type names are case-insensitive, as in NetSuite):

* ``POST /<type>`` creates -> 204 + ``Location``; an ``externalId`` already in use -> 400.
* ``PUT /<type>/eid:<external id>`` upserts (create, or update the fields sent keeping the
  same internal id) -> 204 + ``Location``. Lines sent replace the stored lines (what
  ``?replace=line`` asks of NetSuite).
* ``PATCH /<type>/<id>|eid:<ext>`` updates an existing record; ``DELETE`` deletes it.
* ``GET /<type>/<id>|eid:<ext>`` -> 200 record JSON (``id``, ``externalId``, fields,
  ``line.items`` with exact amounts); ``GET /<type>`` lists ids.
* Batch writes, as NetSuite's REST batch operations: ``PUT /<type>`` (upsert by each item's
  ``externalId``) or ``POST /<type>`` (create) with ``Prefer: respond-async`` and
  ``Content-Type: application/vnd.oracle.resource+json; type=collection``, body
  ``{"items": [...]}`` of 1 to 100 records -> 202 + ``Location: .../async/v1/job/<id>``. Each
  item is written on its own, exactly as its one-record request (one may fail, the others
  stand); ``X-NetSuite-Idempotency-Key`` sent again answers the first job, writing nothing.
* Async jobs (``/services/rest/async/v1``): ``GET job/<id>`` -> ``completed`` and
  ``progress`` (``succeeded`` when every record was written, else ``failed``);
  ``GET job/<id>/task`` lists one task per item, in order; ``GET job/<id>/task/<n>/result``
  answers what the one-record request would have (204 + ``Location``, or the error).
* SuiteQL (``POST /services/rest/query/v1/suiteql``, ``Prefer: transient``, body
  ``{"q": ...}``, ``limit``/``offset``): only ``SELECT id, externalid FROM
  transaction|customer WHERE externalid IN ('...', ...)``; anything else -> 400
  ``INVALID_PARAMETER``.
* Errors use NetSuite's shape: ``{"type", "title", "status", "o:errorDetails": [{"detail",
  "o:errorCode", "o:errorPath"?}]}``. A journal entry that is unbalanced, has a line with
  both or neither of debit/credit, a negative amount, more decimals than its currency
  allows, or lacks subsidiary/account is refused with 400 and nothing is stored.
* With ``--token`` every record-service request needs ``Authorization: Bearer <token>``;
  otherwise 401 ``INVALID_LOGIN``.

Control API (not part of NetSuite, never authenticated)::

    POST   /_emulator/faults    {"rules": [RULE, ...]}   append rules to the FIFO queue
    GET    /_emulator/faults                             rules still pending
    DELETE /_emulator/faults                             clear the queue
    GET    /_emulator/records/<type>                     stored records, lines, write_count
    GET    /_emulator/requests[?since=<id>]              record-service request log
    POST   /_emulator/reset                              wipe records, faults and log
    GET    /_emulator/health                             {"ok": true}

A RULE has exactly one action and applies to the next ``times`` (default 1) record-service
requests, optionally only those matching ``method`` and/or ``path_contains``:

    {"status": 503, "times": 2}                     answer 503 (NetSuite error body)
    {"status": 429, "retry_after": 2}               ... with ``Retry-After: 2``
    {"delay": 1.5}                                  wait, then serve normally
    {"timeout": 30, "apply": true}                  serve (store the write), then hold the
                                                    answer 30 s: the client times out but
                                                    the record exists
    {"timeout": 30}                                 hold 30 s, store nothing, answer 504
    {"drop": true}                                  close the connection, no answer
    {"pending": true}                               an async job read says it is pending
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hmac
import logging
import re
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import simplejson

from connectors import currency

logger = logging.getLogger("connectors.netsuite.emulator")

RECORD_PREFIX = "/services/rest/record/v1/"
ASYNC_PREFIX = "/services/rest/async/v1/"
QUERY_PREFIX = "/services/rest/query/v1/"
SERVICE_PREFIXES = (RECORD_PREFIX, ASYNC_PREFIX, QUERY_PREFIX)
BATCH_LIMIT = 100
CONTROL_PREFIX = "/_emulator/"
CORRELATION_HEADER = "X-Correlation-ID"
RECORD_TYPES = {"journalentry": "journalEntry", "customer": "customer"}
ERROR_CONTENT_TYPE = "application/vnd.oracle.resource+json; type=error; charset=UTF-8"
RECORD_CONTENT_TYPE = "application/vnd.oracle.resource+json; type=singular; charset=UTF-8"
COLLECTION_CONTENT_TYPE = "application/vnd.oracle.resource+json; type=collection; charset=UTF-8"
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
ACCESS_PREFIX = "Error while accessing a resource. "

_RFC_SECTIONS = {
    400: "rfc9110.html#section-15.5.1",
    401: "rfc9110.html#section-15.5.2",
    403: "rfc9110.html#section-15.5.4",
    404: "rfc9110.html#section-15.5.5",
    405: "rfc9110.html#section-15.5.6",
    409: "rfc9110.html#section-15.5.10",
    411: "rfc9110.html#section-15.5.12",
    415: "rfc9110.html#section-15.5.16",
    429: "rfc6585.html#section-4",
    500: "rfc9110.html#section-15.6.1",
    502: "rfc9110.html#section-15.6.3",
    503: "rfc9110.html#section-15.6.4",
    504: "rfc9110.html#section-15.6.5",
}
_DEFAULT_CODES = {
    400: "USER_ERROR",
    401: "INVALID_LOGIN",
    403: "INSUFFICIENT_PERMISSION",
    404: "NONEXISTENT_ID",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    429: "CONCURRENCY_LIMIT_EXCEEDED",
    500: "UNEXPECTED_ERROR",
    502: "UNEXPECTED_ERROR",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}
_DEFAULT_DETAILS = {
    401: "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite "
    "UI at Setup > Users/Roles > User Management > View Login Audit Trail.",
    429: "Request blocked: the concurrency limit for this account has been exceeded. "
    "Retry the request later.",
    500: "An unexpected error occurred. Error ID: emulated.",
    503: "The service is temporarily unavailable. Retry the request later.",
    504: "The request took too long to process.",
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    external_id TEXT,
    fields TEXT NOT NULL,
    write_count INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (type, external_id)
);
CREATE TABLE IF NOT EXISTS lines (
    record_id INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    line_no INTEGER NOT NULL,
    account TEXT NOT NULL,
    debit TEXT,
    credit TEXT,
    memo TEXT NOT NULL DEFAULT '',
    entity TEXT,
    extra TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (record_id, line_no)
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT UNIQUE,
    record_type TEXT NOT NULL,
    progress TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS job_tasks (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    task_no INTEGER NOT NULL,
    status INTEGER NOT NULL,
    headers TEXT NOT NULL DEFAULT '{}',
    body TEXT,
    PRIMARY KEY (job_id, task_no)
);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    remaining INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER,
    correlation_id TEXT,
    fault TEXT NOT NULL DEFAULT ''
);
"""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dumps(value: Any) -> str:
    return simplejson.dumps(value, use_decimal=True, ensure_ascii=False)


def _loads(text: str | bytes) -> Any:
    return simplejson.loads(text, use_decimal=True)


# --- errors ------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-able; None -> no body
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON_CONTENT_TYPE


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(status: int, details: list[dict[str, str]]) -> dict[str, Any]:
    """A NetSuite-shaped error body."""
    section = _RFC_SECTIONS.get(status, "rfc9110.html#section-15")
    return {
        "type": f"https://www.rfc-editor.org/{section}",
        "title": _phrase(status),
        "status": status,
        "o:errorDetails": details,
    }


class ApiError(Exception):
    """Raised inside request handling; becomes a NetSuite error response."""

    def __init__(
        self,
        status: int,
        detail: str = "",
        code: str = "",
        *,
        path: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail or _DEFAULT_DETAILS.get(status) or _phrase(status)
        self.code = code or _DEFAULT_CODES.get(status, "UNEXPECTED_ERROR")
        self.path = path
        self.headers = headers or {}

    def response(self) -> Response:
        item = {"detail": self.detail, "o:errorCode": self.code}
        if self.path:
            item["o:errorPath"] = self.path
        return Response(
            self.status,
            problem(self.status, [item]),
            headers=dict(self.headers),
            content_type=ERROR_CONTENT_TYPE,
        )


def _user_error(detail: str, path: str = "", code: str = "USER_ERROR") -> ApiError:
    return ApiError(400, ACCESS_PREFIX + detail, code, path=path)


# --- storage -----------------------------------------------------------------------------


@dataclass
class Line:
    account: str
    debit: Decimal | None
    credit: Decimal | None
    memo: str = ""
    entity: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Store:
    """SQLite persistence: records, lines, fault queue and request log."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A serialized write transaction (``BEGIN IMMEDIATE``), rolled back on error."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    # records ---------------------------------------------------------------------------

    @staticmethod
    def find(
        conn: sqlite3.Connection, rtype: str, ref: str
    ) -> sqlite3.Row | None:  # ref: "<id>" or "eid:<ext>"
        if ref.startswith("eid:"):
            return conn.execute(
                "SELECT * FROM records WHERE type = ? AND external_id = ?", (rtype, ref[4:])
            ).fetchone()
        if not ref.isdigit():
            return None
        return conn.execute(
            "SELECT * FROM records WHERE type = ? AND id = ?", (rtype, int(ref))
        ).fetchone()

    @staticmethod
    def lines(conn: sqlite3.Connection, record_id: int) -> list[Line]:
        rows = conn.execute(
            "SELECT * FROM lines WHERE record_id = ? ORDER BY line_no", (record_id,)
        ).fetchall()
        return [
            Line(
                account=r["account"],
                debit=Decimal(r["debit"]) if r["debit"] is not None else None,
                credit=Decimal(r["credit"]) if r["credit"] is not None else None,
                memo=r["memo"],
                entity=r["entity"],
                extra=_loads(r["extra"]),
            )
            for r in rows
        ]

    @staticmethod
    def insert(
        conn: sqlite3.Connection,
        rtype: str,
        external_id: str | None,
        fields: dict[str, Any],
        lines: list[Line] | None,
    ) -> int:
        now = _now()
        cur = conn.execute(
            "INSERT INTO records (type, external_id, fields, write_count, created_at, "
            "updated_at) VALUES (?, ?, ?, 1, ?, ?)",
            (rtype, external_id, _dumps(fields), now, now),
        )
        record_id = int(cur.lastrowid or 0)
        Store._write_lines(conn, record_id, lines or [])
        return record_id

    @staticmethod
    def update(
        conn: sqlite3.Connection,
        record_id: int,
        fields: dict[str, Any],
        lines: list[Line] | None,
    ) -> None:
        conn.execute(
            "UPDATE records SET fields = ?, write_count = write_count + 1, updated_at = ? "
            "WHERE id = ?",
            (_dumps(fields), _now(), record_id),
        )
        if lines is not None:
            conn.execute("DELETE FROM lines WHERE record_id = ?", (record_id,))
            Store._write_lines(conn, record_id, lines)

    @staticmethod
    def _write_lines(conn: sqlite3.Connection, record_id: int, lines: list[Line]) -> None:
        conn.executemany(
            "INSERT INTO lines (record_id, line_no, account, debit, credit, memo, entity, "
            "extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    record_id,
                    n,
                    ln.account,
                    None if ln.debit is None else str(ln.debit),
                    None if ln.credit is None else str(ln.credit),
                    ln.memo,
                    ln.entity,
                    _dumps(ln.extra),
                )
                for n, ln in enumerate(lines)
            ],
        )

    # faults and request log --------------------------------------------------------------

    def add_faults(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        with self.write() as conn:
            for rule in rules:
                cur = conn.execute(
                    "INSERT INTO faults (rule, remaining) VALUES (?, ?)",
                    (_dumps(rule), int(rule.get("times", 1))),
                )
                out.append({"id": cur.lastrowid, "rule": rule, "remaining": rule.get("times", 1)})
        return out

    def list_faults(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            rows = conn.execute("SELECT * FROM faults ORDER BY id").fetchall()
        return [
            {"id": r["id"], "rule": _loads(r["rule"]), "remaining": r["remaining"]} for r in rows
        ]

    def clear_faults(self) -> int:
        with self.write() as conn:
            return conn.execute("DELETE FROM faults").rowcount

    def take_fault(self, method: str, path: str) -> dict[str, Any] | None:
        """Consume one use of the first queued rule matching this request."""
        with self.write() as conn:
            for row in conn.execute("SELECT * FROM faults ORDER BY id").fetchall():
                rule = _loads(row["rule"])
                if rule.get("method") and str(rule["method"]).upper() != method:
                    continue
                needle = rule.get("path_contains")
                if needle and str(needle).lower() not in path.lower():
                    continue
                if row["remaining"] <= 1:
                    conn.execute("DELETE FROM faults WHERE id = ?", (row["id"],))
                else:
                    conn.execute(
                        "UPDATE faults SET remaining = remaining - 1 WHERE id = ?", (row["id"],)
                    )
                return rule
        return None

    def log_request(
        self, method: str, path: str, status: int | None, cid: str | None, fault: str
    ) -> None:
        with self.write() as conn:
            conn.execute(
                "INSERT INTO requests (at, method, path, status, correlation_id, fault) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (_now(), method, path, status, cid, fault),
            )

    def list_requests(self, since: int = 0) -> list[dict[str, Any]]:
        with self.read() as conn:
            rows = conn.execute(
                "SELECT * FROM requests WHERE id > ? ORDER BY id", (since,)
            ).fetchall()
        return [dict(r) for r in rows]

    def reset(self) -> None:
        with self.write() as conn:
            for table in ("lines", "records", "job_tasks", "jobs", "faults", "requests"):
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            with contextlib.suppress(sqlite3.OperationalError):
                conn.execute("DELETE FROM sqlite_sequence")


# --- validation --------------------------------------------------------------------------


def _ref_id(value: Any) -> str | None:
    """``{"id": "7"}`` -> ``"7"``; accepts a bare id too."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        text = str(value).strip()
        return text or None
    return None


def _amount(item: dict[str, Any], key: str, path: str) -> Decimal | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ApiError(
            400,
            f"Invalid value for the resource or sub-resource field '{key}'. "
            "Provide a valid number.",
            "INVALID_CONTENT",
            path=f"{path}.{key}",
        )
    dec = Decimal(value)
    if not dec.is_finite():
        raise ApiError(400, f"Invalid number for '{key}'.", "INVALID_CONTENT", path=path)
    return dec


def parse_lines(body: dict[str, Any]) -> list[Line] | None:
    """Lines from ``body["line"]["items"]``; ``None`` when the body has no ``line``."""
    if "line" not in body:
        return None
    sub = body["line"]
    items = sub.get("items") if isinstance(sub, dict) else sub
    if not isinstance(items, list):
        raise ApiError(
            400,
            "The 'line' sublist must be an object with 'items'.",
            "INVALID_CONTENT",
            path="line",
        )
    lines: list[Line] = []
    for n, item in enumerate(items):
        path = f"line.items[{n}]"
        if not isinstance(item, dict):
            raise ApiError(400, "A line item must be an object.", "INVALID_CONTENT", path=path)
        extra = {
            k: v
            for k, v in item.items()
            if k not in {"account", "debit", "credit", "memo", "entity", "links", "line"}
        }
        lines.append(
            Line(
                account=_ref_id(item.get("account")) or "",
                debit=_amount(item, "debit", path),
                credit=_amount(item, "credit", path),
                memo=str(item.get("memo") or ""),
                entity=_ref_id(item.get("entity")),
                extra=extra,
            )
        )
    return lines


def validate(rtype: str, fields: dict[str, Any], lines: list[Line]) -> None:
    """Raise ``ApiError`` when the record (after merge) would be invalid in NetSuite."""
    if not _ref_id(fields.get("subsidiary")):
        raise _user_error("Please enter value(s) for: Subsidiary.", "subsidiary")
    if rtype == "customer":
        has_name = fields.get("companyName") or (fields.get("firstName") and fields.get("lastName"))
        if not has_name:
            raise _user_error("Please enter value(s) for: Company Name.", "companyName")
        return
    # journalEntry
    tran_date = fields.get("tranDate")
    if tran_date is not None:
        try:
            dt.date.fromisoformat(str(tran_date))
        except ValueError:
            raise ApiError(
                400,
                "Invalid value for the resource or sub-resource field 'tranDate'. "
                "Provide a date in the format YYYY-MM-DD.",
                "INVALID_CONTENT",
                path="tranDate",
            ) from None
    code = None
    cur = fields.get("currency")
    if isinstance(cur, dict) and cur.get("refName"):
        code = str(cur["refName"])
    exponent = None
    if code is not None:
        try:
            exponent = currency.exponent(code)
        except ValueError:
            raise _user_error(f"Invalid currency reference '{code}'.", "currency") from None
    if not lines:
        raise _user_error("You must enter at least one line item for this transaction.", "line")
    debits = Decimal(0)
    credits = Decimal(0)
    for n, ln in enumerate(lines):
        path = f"line.items[{n}]"
        if not ln.account:
            raise _user_error("Please enter value(s) for: Account.", f"{path}.account")
        if (ln.debit is None) == (ln.credit is None):
            raise _user_error(
                f"Line {n + 1}: enter either a debit or a credit amount (exactly one).", path
            )
        amount = ln.debit if ln.debit is not None else ln.credit
        assert amount is not None
        if amount < 0:
            raise _user_error(f"Line {n + 1}: amounts cannot be negative.", path)
        if exponent is not None:
            exp = amount.as_tuple().exponent
            if (
                isinstance(exp, int)
                and -exp > exponent
                and amount != amount.quantize(Decimal(1).scaleb(-exponent))
            ):
                raise _user_error(
                    f"Line {n + 1}: amount {amount} has more decimals than {code} allows "
                    f"({exponent}).",
                    path,
                )
        debits += ln.debit or 0
        credits += ln.credit or 0
    if debits != credits:
        raise _user_error(
            f"The transaction is out of balance: total debits {debits} do not equal total "
            f"credits {credits}.",
            "line",
        )


# --- record service ----------------------------------------------------------------------


def _split_body(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in {"id", "externalId", "line", "links"}}


class RecordService:
    """The NetSuite record endpoints, independent of the HTTP plumbing."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def record_type(name: str) -> str:
        rtype = RECORD_TYPES.get(name.lower())
        if rtype is None:
            raise ApiError(
                400,
                f"Record type '{name}' does not exist or is not supported by this emulator.",
                "INVALID_RCRD_TYPE",
            )
        return rtype

    @staticmethod
    def location(base: str, rtype: str, record_id: int) -> dict[str, str]:
        return {"Location": f"{base}{RECORD_PREFIX}{rtype}/{record_id}"}

    def record_json(
        self, base: str, conn: sqlite3.Connection, rtype: str, row: sqlite3.Row
    ) -> dict[str, Any]:
        href = f"{base}{RECORD_PREFIX}{rtype}/{row['id']}"
        out: dict[str, Any] = {"links": [{"rel": "self", "href": href}], "id": str(row["id"])}
        if row["external_id"] is not None:
            out["externalId"] = row["external_id"]
        out.update(_loads(row["fields"]))
        out["createdDate"] = row["created_at"]
        out["lastModifiedDate"] = row["updated_at"]
        if rtype == "journalEntry":
            items = []
            for n, ln in enumerate(self.store.lines(conn, row["id"])):
                item: dict[str, Any] = {"links": [], "line": n, "account": {"id": ln.account}}
                if ln.debit is not None:
                    item["debit"] = ln.debit
                if ln.credit is not None:
                    item["credit"] = ln.credit
                item["memo"] = ln.memo
                if ln.entity:
                    item["entity"] = {"id": ln.entity}
                item.update(ln.extra)
                items.append(item)
            out["line"] = {
                "links": [{"rel": "self", "href": f"{href}/line"}],
                "count": len(items),
                "hasMore": False,
                "items": items,
                "offset": 0,
                "totalResults": len(items),
            }
        return out

    def handle(
        self,
        method: str,
        path: str,
        body: Any,
        base: str,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        rest = path[len(RECORD_PREFIX) :].strip("/")
        parts = rest.split("/") if rest else []
        if not parts or len(parts) > 2:
            raise ApiError(404, "The requested resource does not exist.", "NONEXISTENT_ID")
        rtype = self.record_type(parts[0])
        ref = unquote(parts[1]) if len(parts) == 2 else ""
        if not ref:
            if method in ("POST", "PUT") and _is_collection(headers):
                return self.batch(base, method, rtype, body, headers or {})
            if method == "GET":
                return self.list(base, rtype)
            if method == "POST":
                return self.create(base, rtype, self._require_body(body))
            raise ApiError(405, f"Method {method} is not allowed on a collection.")
        if method == "GET":
            return self.get(base, rtype, ref)
        if method == "PUT":
            if not ref.startswith("eid:") or not ref[4:]:
                raise ApiError(
                    405,
                    "PUT (upsert) requires an external ID in the URL: .../eid:<external id>.",
                )
            return self.upsert(base, rtype, ref[4:], self._require_body(body))
        if method == "PATCH":
            return self.patch(base, rtype, ref, self._require_body(body))
        if method == "DELETE":
            return self.delete(rtype, ref)
        raise ApiError(405, f"Method {method} is not allowed on a record.")

    @staticmethod
    def _require_body(body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(
                400, "The request body must be a JSON object.", "INVALID_CONTENT", path="$"
            )
        return body

    @staticmethod
    def _not_found(rtype: str, ref: str) -> ApiError:
        return ApiError(
            404,
            f"The record instance does not exist. Provide a valid record instance ID. "
            f"({rtype} {ref})",
            "NONEXISTENT_ID",
        )

    def list(self, base: str, rtype: str) -> Response:
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT id FROM records WHERE type = ? ORDER BY id", (rtype,)
            ).fetchall()
        items = [
            {
                "links": [{"rel": "self", "href": f"{base}{RECORD_PREFIX}{rtype}/{r['id']}"}],
                "id": str(r["id"]),
            }
            for r in rows
        ]
        body = {
            "links": [{"rel": "self", "href": f"{base}{RECORD_PREFIX}{rtype}"}],
            "count": len(items),
            "hasMore": False,
            "items": items,
            "offset": 0,
            "totalResults": len(items),
        }
        return Response(200, body, content_type=COLLECTION_CONTENT_TYPE)

    def get(self, base: str, rtype: str, ref: str) -> Response:
        with self.store.read() as conn:
            row = self.store.find(conn, rtype, ref)
            if row is None:
                raise self._not_found(rtype, ref)
            body = self.record_json(base, conn, rtype, row)
        return Response(200, body, content_type=RECORD_CONTENT_TYPE)

    def create(self, base: str, rtype: str, body: dict[str, Any]) -> Response:
        with self.store.write() as conn:
            return self._create_in(conn, base, rtype, body)

    def _create_in(
        self, conn: sqlite3.Connection, base: str, rtype: str, body: dict[str, Any]
    ) -> Response:
        ext = body.get("externalId")
        if ext is not None and (not isinstance(ext, str) or not ext):
            raise ApiError(400, "Invalid externalId.", "INVALID_CONTENT", path="externalId")
        fields = _split_body(body)
        lines = parse_lines(body)
        validate(rtype, fields, lines or [])
        if ext is not None:
            existing = self.store.find(conn, rtype, f"eid:{ext}")
            if existing is not None:
                raise _user_error(
                    f"This record already exists: a {rtype} with external ID '{ext}' "
                    f"exists (internal ID {existing['id']}). Use upsert (PUT .../eid:) "
                    "to update it.",
                    "externalId",
                )
        try:
            record_id = self.store.insert(conn, rtype, ext, fields, lines)
        except sqlite3.IntegrityError:
            raise _user_error(
                f"This record already exists: external ID '{ext}'.", "externalId"
            ) from None
        return Response(204, headers=self.location(base, rtype, record_id))

    def upsert(self, base: str, rtype: str, ext: str, body: dict[str, Any]) -> Response:
        with self.store.write() as conn:
            return self._upsert_in(conn, base, rtype, ext, body)

    def _upsert_in(
        self, conn: sqlite3.Connection, base: str, rtype: str, ext: str, body: dict[str, Any]
    ) -> Response:
        body_ext = body.get("externalId")
        if body_ext is not None and body_ext != ext:
            raise ApiError(
                400,
                f"The externalId in the request body ('{body_ext}') differs from the one in "
                f"the URL ('{ext}').",
                "INVALID_CONTENT",
                path="externalId",
            )
        new_fields = _split_body(body)
        new_lines = parse_lines(body)
        row = self.store.find(conn, rtype, f"eid:{ext}")
        if row is None:
            validate(rtype, new_fields, new_lines or [])
            record_id = self.store.insert(conn, rtype, ext, new_fields, new_lines)
        else:
            record_id = int(row["id"])
            fields = {**_loads(row["fields"]), **new_fields}
            lines = new_lines if new_lines is not None else self.store.lines(conn, record_id)
            validate(rtype, fields, lines)
            self.store.update(conn, record_id, fields, new_lines)
        return Response(204, headers=self.location(base, rtype, record_id))

    def patch(self, base: str, rtype: str, ref: str, body: dict[str, Any]) -> Response:
        new_fields = _split_body(body)
        new_lines = parse_lines(body)
        with self.store.write() as conn:
            row = self.store.find(conn, rtype, ref)
            if row is None:
                raise self._not_found(rtype, ref)
            record_id = int(row["id"])
            fields = {**_loads(row["fields"]), **new_fields}
            lines = new_lines if new_lines is not None else self.store.lines(conn, record_id)
            validate(rtype, fields, lines)
            self.store.update(conn, record_id, fields, new_lines)
        return Response(204, headers=self.location(base, rtype, record_id))

    def batch(
        self, base: str, method: str, rtype: str, body: Any, headers: Mapping[str, str]
    ) -> Response:
        """A batch write: each item is created (POST) or upserted by its ``externalId``
        (PUT) on its own, exactly as the one-record request would be; the outcomes are kept
        as the tasks of an async job. Answers 202 with the job's ``Location``. A repeated
        ``X-NetSuite-Idempotency-Key`` answers the first job again and writes nothing."""
        if "respond-async" not in headers.get("prefer", "").lower():
            raise ApiError(
                400,
                "Batch operations are executed asynchronously: send the header "
                "'Prefer: respond-async'.",
                "INVALID_HEADER",
            )
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise ApiError(
                400,
                'The request body of a batch operation must be {"items": [...]} with at '
                "least one record.",
                "INVALID_CONTENT",
                path="items",
            )
        if len(items) > BATCH_LIMIT:
            raise ApiError(
                400,
                f"A batch request can hold at most {BATCH_LIMIT} records; it held {len(items)}.",
                "INVALID_CONTENT",
                path="items",
            )
        key = headers.get("x-netsuite-idempotency-key") or None
        # One write transaction (writers are serialized), so a key sent twice at once still
        # runs once; inside it each record is on its own, as its one-record request would be:
        # a savepoint per item, so one refused leaves the others written.
        with self.store.write() as conn:
            if key is not None:
                row = conn.execute(
                    "SELECT id FROM jobs WHERE idempotency_key = ?", (key,)
                ).fetchone()
                if row is not None:
                    return _accepted(base, int(row["id"]))
            tasks: list[tuple[int, dict[str, str], Any]] = []
            for n, item in enumerate(items):
                conn.execute("SAVEPOINT item")
                try:
                    resp = self._batch_item(conn, base, method, rtype, n, item)
                    conn.execute("RELEASE item")
                except ApiError as exc:
                    conn.execute("ROLLBACK TO item")
                    conn.execute("RELEASE item")
                    resp = exc.response()
                tasks.append((resp.status, resp.headers, resp.body))
            progress = "succeeded" if all(200 <= t[0] < 300 for t in tasks) else "failed"
            cur = conn.execute(
                "INSERT INTO jobs (idempotency_key, record_type, progress, created_at) "
                "VALUES (?, ?, ?, ?)",
                (key, rtype, progress, _now()),
            )
            job_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO job_tasks (job_id, task_no, status, headers, body) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (job_id, n + 1, status, _dumps(hdrs), None if out is None else _dumps(out))
                    for n, (status, hdrs, out) in enumerate(tasks)
                ],
            )
        return _accepted(base, job_id)

    def _batch_item(
        self, conn: sqlite3.Connection, base: str, method: str, rtype: str, n: int, item: Any
    ) -> Response:
        if not isinstance(item, dict):
            raise ApiError(
                400, "Each item must be a JSON object.", "INVALID_CONTENT", path=f"items[{n}]"
            )
        if method == "POST":
            return self._create_in(conn, base, rtype, item)
        ext = item.get("externalId")
        if not isinstance(ext, str) or not ext:
            raise ApiError(
                400,
                "A batch upsert (PUT) needs an externalId in every item.",
                "INVALID_CONTENT",
                path=f"items[{n}].externalId",
            )
        return self._upsert_in(conn, base, rtype, ext, item)

    def delete(self, rtype: str, ref: str) -> Response:
        with self.store.write() as conn:
            row = self.store.find(conn, rtype, ref)
            if row is None:
                raise self._not_found(rtype, ref)
            conn.execute("DELETE FROM records WHERE id = ?", (row["id"],))
        return Response(204)


def _is_collection(headers: Mapping[str, str] | None) -> bool:
    content_type = (headers or {}).get("content-type", "").lower().replace(" ", "")
    return "type=collection" in content_type


def _accepted(base: str, job_id: int) -> Response:
    return Response(
        202,
        headers={
            "Location": f"{base}{ASYNC_PREFIX}job/{job_id}",
            "Preference-Applied": "respond-async",
        },
    )


class AsyncService:
    """``/services/rest/async/v1/job/<id>[/task[/<n>[/result]]]``: the jobs batch writes make.

    The emulator runs a job before it answers the request that made it, so a job is complete
    when first read; a ``{"pending": true}`` fault makes one read say ``pending``. Task ``n``
    is the ``n``-th item of the request; its ``result`` is the response the one-record
    request would have had (204 and ``Location``, or the error)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def handle(self, method: str, path: str, base: str, *, pending: bool = False) -> Response:
        if method != "GET":
            raise ApiError(405, f"Method {method} is not allowed on an async job.")
        parts = path[len(ASYNC_PREFIX) :].strip("/").split("/")
        if parts[0] != "job" or len(parts) < 2 or not parts[1].isdigit() or len(parts) > 5:
            raise ApiError(404, "The requested resource does not exist.", "NONEXISTENT_ID")
        job_id = int(parts[1])
        href = f"{base}{ASYNC_PREFIX}job/{job_id}"
        with self.store.read() as conn:
            job = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if job is None:
                raise ApiError(404, f"The async job {job_id} does not exist.", "NONEXISTENT_ID")
            if len(parts) == 2:
                body = {
                    "links": [{"rel": "self", "href": href}],
                    "id": str(job_id),
                    "completed": not pending,
                    "progress": "pending" if pending else job["progress"],
                    "task": {"links": [{"rel": "self", "href": f"{href}/task"}]},
                }
                return Response(200, body)
            if parts[2] != "task":
                raise ApiError(404, "The requested resource does not exist.", "NONEXISTENT_ID")
            if len(parts) == 3:
                rows = conn.execute(
                    "SELECT task_no, status FROM job_tasks WHERE job_id = ? ORDER BY task_no",
                    (job_id,),
                ).fetchall()
                items = [
                    {
                        "links": [{"rel": "self", "href": f"{href}/task/{r['task_no']}"}],
                        "id": str(r["task_no"]),
                    }
                    for r in rows
                ]
                return Response(
                    200, _collection(f"{href}/task", items), content_type=COLLECTION_CONTENT_TYPE
                )
            task = conn.execute(
                "SELECT * FROM job_tasks WHERE job_id = ? AND task_no = ?",
                (job_id, int(parts[3]) if parts[3].isdigit() else -1),
            ).fetchone()
        if task is None:
            raise ApiError(404, "The requested task does not exist.", "NONEXISTENT_ID")
        task_href = f"{href}/task/{task['task_no']}"
        if len(parts) == 4:
            ok = 200 <= task["status"] < 300
            body = {
                "links": [{"rel": "self", "href": task_href}],
                "id": str(task["task_no"]),
                "completed": True,
                "progress": "succeeded" if ok else "failed",
                "result": {"links": [{"rel": "self", "href": f"{task_href}/result"}]},
            }
            return Response(200, body)
        if parts[4] != "result":
            raise ApiError(404, "The requested resource does not exist.", "NONEXISTENT_ID")
        out = None if task["body"] is None else _loads(task["body"])
        content_type = ERROR_CONTENT_TYPE if task["status"] >= 400 else JSON_CONTENT_TYPE
        return Response(task["status"], out, _loads(task["headers"]), content_type)


def _collection(href: str, items: list[dict[str, Any]], **page: Any) -> dict[str, Any]:
    return {
        "links": [{"rel": "self", "href": href}],
        "count": len(items),
        "hasMore": page.get("has_more", False),
        "items": items,
        "offset": page.get("offset", 0),
        "totalResults": page.get("total", len(items)),
    }


# SuiteQL, the one shape the connector sends: external ids to internal ids.
_SUITEQL = re.compile(
    r"^\s*SELECT\s+(?P<cols>[\w\s,]+?)\s+FROM\s+(?P<table>\w+)\s+WHERE\s+externalid\s+IN\s*"
    r"\((?P<values>.*)\)\s*$",
    re.IGNORECASE | re.DOTALL,
)
_SQL_STRING = re.compile(r"\s*'((?:[^']|'')*)'\s*(?:,|$)")
SUITEQL_TABLES = {"transaction": "journalEntry", "customer": "customer"}
SUITEQL_COLUMNS = ("id", "externalid")
SUITEQL_MAX_LIMIT = 1000


def _suiteql_error(detail: str) -> ApiError:
    return ApiError(
        400,
        "Invalid search query. Detailed unprocessed description follows. " + detail,
        "INVALID_PARAMETER",
        path="q",
    )


def parse_suiteql(query: str) -> tuple[list[str], str, list[str]]:
    """``SELECT id, externalid FROM transaction|customer WHERE externalid IN ('a', ...)``:
    the columns, the record type and the external ids; anything else is a 400 naming what
    this emulator does not support."""
    match = _SUITEQL.match(query or "")
    if match is None:
        raise _suiteql_error(
            "This emulator supports only: SELECT id, externalid FROM transaction|customer "
            "WHERE externalid IN ('...', ...)."
        )
    cols = [c.strip().lower() for c in match["cols"].split(",")]
    unknown = [c for c in cols if c not in SUITEQL_COLUMNS]
    table = match["table"].lower()
    if table not in SUITEQL_TABLES:
        raise _suiteql_error(f"Search error occurred: Record '{match['table']}' was not found.")
    if unknown or not all(cols):
        raise _suiteql_error(
            f"Search error occurred: Field '{unknown[0] if unknown else ''}' for record "
            f"'{table}' was not found."
        )
    text, values, pos = match["values"], [], 0
    while pos < len(text):
        lit = _SQL_STRING.match(text, pos)
        if lit is None or lit.end() == pos:
            raise _suiteql_error("Search error occurred: a value in IN (...) is not a string.")
        values.append(lit[1].replace("''", "'"))
        pos = lit.end()
    if not values:
        raise _suiteql_error("Search error occurred: IN () is empty.")
    return cols, SUITEQL_TABLES[table], values


class QueryService:
    """``POST /services/rest/query/v1/suiteql`` (``Prefer: transient`` required, as NetSuite
    requires it; ``limit`` up to 1000 and ``offset`` page the rows)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def handle(
        self,
        method: str,
        path: str,
        body: Any,
        base: str,
        headers: Mapping[str, str],
        query: Mapping[str, list[str]],
    ) -> Response:
        if path.rstrip("/") != QUERY_PREFIX + "suiteql":
            raise ApiError(404, "The requested resource does not exist.", "NONEXISTENT_ID")
        if method != "POST":
            raise ApiError(405, f"Method {method} is not allowed on suiteql.")
        if "transient" not in headers.get("prefer", "").lower():
            raise ApiError(
                400, "SuiteQL requests need the header 'Prefer: transient'.", "INVALID_HEADER"
            )
        if not isinstance(body, dict) or not isinstance(body.get("q"), str):
            raise ApiError(400, 'The request body must be {"q": "<query>"}.', "INVALID_CONTENT")
        cols, rtype, values = parse_suiteql(body["q"])
        try:
            limit = int(query.get("limit", [str(SUITEQL_MAX_LIMIT)])[0])
            offset = int(query.get("offset", ["0"])[0])
        except ValueError:
            raise ApiError(400, "limit and offset must be integers.", "INVALID_PARAMETER") from None
        if not 1 <= limit <= SUITEQL_MAX_LIMIT or offset < 0:
            raise ApiError(
                400, f"limit must be 1..{SUITEQL_MAX_LIMIT}, offset >= 0.", "INVALID_PARAMETER"
            )
        wanted = list(dict.fromkeys(values))
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT id, external_id FROM records WHERE type = ? AND external_id IN "  # noqa: S608
                f"({', '.join('?' for _ in wanted)}) ORDER BY id",
                (rtype, *wanted),
            ).fetchall()
        page = rows[offset : offset + limit]
        items = []
        for r in page:
            item: dict[str, Any] = {"links": []}
            for col in cols:
                item[col] = str(r["id"]) if col == "id" else r["external_id"]
            items.append(item)
        href = f"{base}{QUERY_PREFIX}suiteql"
        out = _collection(
            href, items, has_more=offset + limit < len(rows), offset=offset, total=len(rows)
        )
        return Response(200, out, content_type=COLLECTION_CONTENT_TYPE)


# --- control API -------------------------------------------------------------------------

_ACTIONS = ("status", "delay", "timeout", "drop", "pending")


def _number(rule: dict[str, Any], key: str) -> Decimal:
    value = rule.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or value < 0:
        raise ApiError(400, f"fault '{key}' must be a number >= 0", "INVALID_FAULT")
    return Decimal(value)


def validate_rule(rule: Any) -> dict[str, Any]:
    """Check a fault rule; returns it with ``times`` filled in."""
    if not isinstance(rule, dict):
        raise ApiError(400, "each fault rule must be an object", "INVALID_FAULT")
    actions = [a for a in _ACTIONS if a in rule]
    if len(actions) != 1:
        raise ApiError(
            400, f"a fault rule needs exactly one of {', '.join(_ACTIONS)}", "INVALID_FAULT"
        )
    times = rule.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ApiError(400, "fault 'times' must be an integer >= 1", "INVALID_FAULT")
    action = actions[0]
    if action == "status":
        status = rule["status"]
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ApiError(400, "fault 'status' must be an HTTP status code", "INVALID_FAULT")
        ra = rule.get("retry_after")
        if ra is not None and not isinstance(ra, str):
            _number(rule, "retry_after")
    elif action in ("delay", "timeout"):
        _number(rule, action)
    return {**rule, "times": times}


class ControlApi:
    def __init__(self, store: Store) -> None:
        self.store = store

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Response:
        parts = path[len(CONTROL_PREFIX) :].strip("/").split("/")
        head = parts[0]
        if head == "health" and method == "GET":
            return Response(200, {"ok": True})
        if head == "faults" and len(parts) == 1:
            if method == "GET":
                return Response(200, {"faults": self.store.list_faults()})
            if method == "DELETE":
                return Response(200, {"cleared": self.store.clear_faults()})
            if method == "POST":
                rules = body.get("rules") if isinstance(body, dict) else None
                if not isinstance(rules, list):
                    raise ApiError(400, 'expected {"rules": [...]}', "INVALID_FAULT")
                checked = [validate_rule(r) for r in rules]
                return Response(200, {"queued": self.store.add_faults(checked)})
        if head == "records" and len(parts) == 2 and method == "GET":
            return self.records(parts[1])
        if head == "requests" and method == "GET":
            try:
                since = int(query.get("since", ["0"])[0])
            except ValueError:
                since = 0
            return Response(200, {"requests": self.store.list_requests(since)})
        if head == "reset" and method == "POST":
            self.store.reset()
            return Response(200, {"ok": True})
        raise ApiError(404, f"unknown control endpoint {method} {path}", "NOT_FOUND")

    def records(self, name: str) -> Response:
        rtype = RecordService.record_type(name)
        out = []
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT * FROM records WHERE type = ? ORDER BY id", (rtype,)
            ).fetchall()
            for row in rows:
                out.append(
                    {
                        "id": str(row["id"]),
                        "type": rtype,
                        "externalId": row["external_id"],
                        "fields": _loads(row["fields"]),
                        "lines": [
                            {
                                "line": n,
                                "account": ln.account,
                                "debit": ln.debit,
                                "credit": ln.credit,
                                "memo": ln.memo,
                                "entity": ln.entity,
                                **ln.extra,
                            }
                            for n, ln in enumerate(self.store.lines(conn, row["id"]))
                        ],
                        "write_count": row["write_count"],
                        "created_at": row["created_at"],
                        "updated_at": row["updated_at"],
                    }
                )
        return Response(200, {"type": rtype, "count": len(out), "records": out})


# --- HTTP plumbing -----------------------------------------------------------------------


class EmulatorServer(ThreadingHTTPServer):
    """The HTTP server; holds the store, the token and the stop event."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], db_path: str | Path, token: str | None = None
    ) -> None:
        self.store = Store(db_path)
        self.records = RecordService(self.store)
        self.jobs = AsyncService(self.store)
        self.queries = QueryService(self.store)
        self.control = ControlApi(self.store)
        self.token = token
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        super().__init__(address, EmulatorHandler)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop serving, release held requests and close the socket."""
        self.stopping.set()
        if self.thread is not None:
            self.shutdown()
            self.thread.join(timeout=10)
            self.thread = None
        self.server_close()


class EmulatorHandler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    server_version = "NetSuiteEmulator/1.0"
    # Headers and body go out in two writes; with Nagle's algorithm on, the body waited for
    # the client's delayed ACK (~40 ms per response with a body, on a kept-alive connection).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # ---------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _base(self) -> str:
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        return f"http://{host}"

    def _write(self, resp: Response) -> None:
        try:
            self.send_response(resp.status)
            for key, value in resp.headers.items():
                self.send_header(key, value)
            if resp.status in (204, 304) or resp.body is None:
                if resp.status not in (204, 304):
                    self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = _dumps(resp.body).encode("utf-8")
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. after a held request)

    def _handle(self) -> None:
        method = self.command
        split = urlsplit(self.path)
        path = split.path
        try:
            raw = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._write(ApiError(400, "Malformed request body.", "INVALID_CONTENT").response())
            return
        body: Any = None
        body_error: ApiError | None = None
        if raw.strip():
            try:
                body = _loads(raw)
            except ValueError:
                body_error = ApiError(
                    400, "Invalid content in the request body: not valid JSON.", "INVALID_CONTENT"
                )

        if path.startswith(CONTROL_PREFIX):
            try:
                if body_error:
                    raise body_error
                resp = self.server.control.handle(method, path, parse_qs(split.query), body)
            except ApiError as exc:
                resp = exc.response()
            self._write(resp)
            return

        if not path.startswith(SERVICE_PREFIXES):
            self._write(ApiError(404, f"No such endpoint: {path}", "NONEXISTENT_ID").response())
            return

        self._record_request(method, path, body, body_error, parse_qs(split.query))

    def _record_request(
        self,
        method: str,
        path: str,
        body: Any,
        body_error: ApiError | None,
        query: dict[str, list[str]] | None = None,
    ) -> None:
        store = self.server.store
        cid = self.headers.get(CORRELATION_HEADER)
        rule = store.take_fault(method, path)
        fault = ""
        hold: float = 0.0
        pending = False
        if rule is not None:
            if "pending" in rule:
                fault, pending = "pending", True
            if "drop" in rule:
                store.log_request(method, self.path, None, cid, "drop")
                self.close_connection = True
                return
            if "status" in rule:
                resp = self._fault_response(rule)
                store.log_request(method, self.path, resp.status, cid, f"status:{resp.status}")
                self._write(resp)
                return
            if "delay" in rule:
                fault = f"delay:{rule['delay']}"
                if self.server.stopping.wait(float(rule["delay"])):
                    self.close_connection = True
                    return
            if "timeout" in rule:
                hold = float(rule["timeout"])
                if not rule.get("apply"):
                    store.log_request(method, self.path, 504, cid, f"timeout:{rule['timeout']}")
                    self.server.stopping.wait(hold)
                    self.close_connection = True
                    self._write(ApiError(504).response())
                    return
                fault = f"timeout:{rule['timeout']}:applied"

        resp = self._serve_record(method, path, body, body_error, query or {}, pending=pending)
        store.log_request(method, self.path, resp.status, cid, fault)
        if hold:
            self.server.stopping.wait(hold)
            self.close_connection = True
        self._write(resp)

    def _fault_response(self, rule: dict[str, Any]) -> Response:
        status = int(rule["status"])
        headers: dict[str, str] = {}
        if rule.get("retry_after") is not None:
            headers["Retry-After"] = str(rule["retry_after"])
        if rule.get("body") is not None:
            return Response(status, rule["body"], headers=headers, content_type=ERROR_CONTENT_TYPE)
        detail = str(rule.get("detail") or "")
        code = str(rule.get("code") or "")
        return ApiError(status, detail, code, headers=headers).response()

    def _serve_record(
        self,
        method: str,
        path: str,
        body: Any,
        body_error: ApiError | None,
        query: dict[str, list[str]],
        *,
        pending: bool = False,
    ) -> Response:
        token = self.server.token
        if token:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return ApiError(401).response()
        if body_error is not None:
            return body_error.response()
        try:
            headers = {k.lower(): v for k, v in self.headers.items()}
            if path.startswith(ASYNC_PREFIX):
                return self.server.jobs.handle(method, path, self._base(), pending=pending)
            if path.startswith(QUERY_PREFIX):
                return self.server.queries.handle(method, path, body, self._base(), headers, query)
            return self.server.records.handle(method, path, body, self._base(), headers)
        except ApiError as exc:
            return exc.response()
        except Exception:
            logger.exception("emulator failure on %s %s", method, path)
            return ApiError(500).response()


# --- entry points ------------------------------------------------------------------------


def start_emulator(
    db_path: str | Path,
    port: int = 0,
    token: str | None = None,
    host: str = "127.0.0.1",
) -> tuple[EmulatorServer, str]:
    """Serve in a daemon thread; returns ``(server, base_url)``. Stop with ``stop_emulator``."""
    server = EmulatorServer((host, port), db_path, token)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"netsuite-emulator-{server.server_address[1]}",
        daemon=True,
    )
    server.thread = thread
    thread.start()
    return server, server.base_url


def stop_emulator(server: EmulatorServer) -> None:
    """Stop a server returned by :func:`start_emulator`."""
    server.stop()


stop = stop_emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.netsuite.emulator",
        description="Local NetSuite REST record service emulator.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--db", required=True, help="SQLite file (created if missing)")
    parser.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN'")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    server = EmulatorServer((args.host, args.port), args.db, args.token)

    def _terminate(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _terminate)
    print(f"NetSuite emulator listening on {server.base_url} db={args.db}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stopping.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
