import datetime as dt
import os
import select
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from connectors import http
from connectors.base import (
    AuthError,
    LedgerEntry,
    LedgerLine,
    PermanentError,
    PostResult,
    TransientError,
)
from connectors.netsuite import NetSuiteClient
from tests.connectors.conftest import TOKEN

REPO = Path(__file__).resolve().parents[2]
JE = "/services/rest/record/v1/journalEntry"


# --- helpers -----------------------------------------------------------------------------


def entry(external_id="INV-1", *, amount=1050, currency="USD", exponent=2, lines=None):
    return LedgerEntry(
        external_id=external_id,
        subsidiary="1",
        currency=currency,
        exponent=exponent,
        tran_date=dt.date(2024, 1, 31),
        memo=f"Invoice {external_id}",
        lines=lines
        or (
            LedgerLine(account="1200", debit_minor=amount, credit_minor=0, customer_ref="77"),
            LedgerLine(account="4000", debit_minor=0, credit_minor=amount, memo="revenue"),
        ),
    )


def control(base, method, path, **kwargs):
    resp = httpx.request(method, f"{base}/_emulator/{path}", timeout=5, **kwargs)
    resp.raise_for_status()
    return http.loads(resp.content)


def records(base, rtype="journalEntry"):
    return control(base, "GET", f"records/{rtype}")["records"]


def request_log(base):
    return control(base, "GET", "requests")["requests"]


def add_faults(base, *rules):
    return control(base, "POST", "faults", json={"rules": list(rules)})


def raw(base, method, path, body=None, token=TOKEN):
    """A request through connectors.http, bypassing the client's local validation."""
    return http.send(method, f"{base}{path}", json_body=body, timeout=5, auth_token=token)


# --- upsert / idempotency ----------------------------------------------------------------


def test_upsert_twice_makes_one_record(client, emulator):
    first = client.post_journal_entry(entry())
    second = client.post_journal_entry(entry())
    assert first == second
    assert first.external_id == "INV-1" and first.document_id.isdigit()

    stored = records(emulator)
    assert len(stored) == 1
    rec = stored[0]
    assert rec["id"] == first.document_id
    assert rec["externalId"] == "INV-1"
    assert rec["write_count"] == 2
    assert rec["fields"]["currency"] == {"refName": "USD"}
    assert rec["fields"]["tranDate"] == "2024-01-31"
    assert [(ln["account"], ln["debit"], ln["credit"]) for ln in rec["lines"]] == [
        ("1200", Decimal("10.50"), None),
        ("4000", None, Decimal("10.50")),
    ]
    assert rec["lines"][0]["entity"] == "77"

    assert client.find_journal_entry("INV-1") == first
    full = client.get_journal_entry("INV-1")
    assert full["id"] == first.document_id
    assert full["subsidiary"] == {"id": "1"}
    items = full["line"]["items"]
    assert items[0]["debit"] == Decimal("10.50") and "credit" not in items[0]
    assert items[1]["credit"] == Decimal("10.50") and "debit" not in items[1]
    assert items[1]["memo"] == "revenue"
    assert items[0]["entity"] == {"id": "77"}


def test_repost_with_changed_amount_replaces_lines(client, emulator):
    client.post_journal_entry(entry(amount=1050))
    result = client.post_journal_entry(entry(amount=2000))
    (rec,) = records(emulator)
    assert rec["id"] == result.document_id and rec["write_count"] == 2
    assert [ln["debit"] for ln in rec["lines"]] == [Decimal("20.00"), None]
    assert [ln["credit"] for ln in rec["lines"]] == [None, Decimal("20.00")]


@pytest.mark.parametrize(
    ("currency", "exponent", "minor", "wire"),
    [("JPY", 0, 1050, "1050"), ("USD", 2, 1050, "10.50"), ("KWD", 3, 1050, "1.050")],
)
def test_amounts_are_exact_per_currency(client, emulator, currency, exponent, minor, wire):
    body = NetSuiteClient.journal_entry_body(
        entry(amount=minor, currency=currency, exponent=exponent)
    )
    assert http.dumps(body["line"]["items"][0]["debit"]) == wire
    client.post_journal_entry(entry(amount=minor, currency=currency, exponent=exponent))
    (rec,) = records(emulator)
    assert str(rec["lines"][0]["debit"]) == wire
    assert str(client.get_journal_entry("INV-1")["line"]["items"][1]["credit"]) == wire


def test_external_id_with_reserved_characters(client, emulator):
    ext = "in_1/ABC:2024 #1"
    result = client.post_journal_entry(entry(ext))
    assert client.find_journal_entry(ext) == result
    assert records(emulator)[0]["externalId"] == ext


# --- validation --------------------------------------------------------------------------


def test_unbalanced_entry_refused_locally(client, emulator):
    bad = entry(
        lines=(
            LedgerLine(account="1200", debit_minor=1050, credit_minor=0),
            LedgerLine(account="4000", debit_minor=0, credit_minor=1000),
        )
    )
    with pytest.raises(PermanentError) as info:
        client.post_journal_entry(bad)
    assert info.value.code == "UNBALANCED"
    assert info.value.details == {"debit_minor": 1050, "credit_minor": 1000}
    assert request_log(emulator) == []  # never sent
    assert records(emulator) == []


@pytest.mark.parametrize(
    "lines",
    [
        (LedgerLine("1200", 100, 100), LedgerLine("4000", 0, 0)),  # both / neither
        (LedgerLine("1200", -100, 0), LedgerLine("4000", 0, -100)),  # negative
        (LedgerLine("", 100, 0), LedgerLine("4000", 0, 100)),  # no account
    ],
)
def test_bad_lines_refused_locally(client, emulator, lines):
    with pytest.raises(PermanentError) as info:
        client.post_journal_entry(entry(lines=lines))
    assert info.value.code == "INVALID"
    assert request_log(emulator) == []


def test_wrong_exponent_refused_locally(client):
    with pytest.raises(PermanentError) as info:
        client.post_journal_entry(entry(currency="JPY", exponent=2))
    assert info.value.code == "INVALID_CURRENCY"


GOOD_LINES = [
    {"account": {"id": "1200"}, "debit": Decimal("10.50")},
    {"account": {"id": "4000"}, "credit": Decimal("10.50")},
]


@pytest.mark.parametrize(
    ("body", "needle", "error_path"),
    [
        (
            {
                "subsidiary": {"id": "1"},
                "line": {"items": [GOOD_LINES[0], {"account": {"id": "4000"}, "credit": 10}]},
            },
            "out of balance",
            "line",
        ),
        (
            {
                "subsidiary": {"id": "1"},
                "line": {
                    "items": [
                        {"account": {"id": "1200"}, "debit": 5, "credit": 5},
                        {"account": {"id": "4000"}, "credit": 0},
                    ]
                },
            },
            "exactly one",
            "line.items[0]",
        ),
        (
            {"subsidiary": {"id": "1"}, "line": {"items": [{"account": {"id": "1200"}}]}},
            "exactly one",
            "line.items[0]",
        ),
        (
            {
                "subsidiary": {"id": "1"},
                "line": {
                    "items": [
                        {"account": {"id": "1200"}, "debit": -5},
                        {"account": {"id": "4000"}, "credit": -5},
                    ]
                },
            },
            "negative",
            "line.items[0]",
        ),
        ({"line": {"items": GOOD_LINES}}, "Subsidiary", "subsidiary"),
        (
            {"subsidiary": {"id": "1"}, "line": {"items": [{"debit": 1}, GOOD_LINES[1]]}},
            "Account",
            "line.items[0].account",
        ),
        ({"subsidiary": {"id": "1"}, "line": {"items": []}}, "at least one line", "line"),
        (
            {
                "subsidiary": {"id": "1"},
                "currency": {"refName": "USD"},
                "line": {
                    "items": [
                        {"account": {"id": "1200"}, "debit": Decimal("10.505")},
                        {"account": {"id": "4000"}, "credit": Decimal("10.505")},
                    ]
                },
            },
            "more decimals than USD",
            "line.items[0]",
        ),
    ],
)
def test_emulator_rejects_invalid_journal_entries(emulator, body, needle, error_path):
    with pytest.raises(PermanentError) as info:
        raw(emulator, "PUT", f"{JE}/eid:BAD-1", body)
    err = info.value
    assert err.status == 400
    detail = err.details["o:errorDetails"][0]
    assert detail["o:errorCode"] == "USER_ERROR"
    assert needle in detail["detail"]
    assert detail["o:errorPath"] == error_path
    assert err.details["title"] == "Bad Request"
    assert err.details["type"].endswith("#section-15.5.1")
    assert records(emulator) == []


def test_client_surfaces_netsuite_detail_and_code(client, emulator):
    # A 400 the client cannot foresee: a rule injects NetSuite's own error body.
    body = {
        "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
        "title": "Bad Request",
        "status": 400,
        "o:errorDetails": [
            {"detail": "Invalid account reference key 1200.", "o:errorCode": "INVALID_KEY_OR_REF"}
        ],
    }
    add_faults(emulator, {"status": 400, "body": body})
    with pytest.raises(PermanentError) as info:
        client.post_journal_entry(entry())
    err = info.value
    assert err.code == "INVALID_KEY_OR_REF"
    assert err.status == 400
    assert "Invalid account reference key 1200." in err.message
    assert "[INVALID_KEY_OR_REF]" in str(err)
    assert err.details == body


def test_invalid_update_keeps_previous_version(emulator):
    raw(
        emulator,
        "PUT",
        f"{JE}/eid:K-1",
        {"subsidiary": {"id": "1"}, "memo": "v1", "line": {"items": GOOD_LINES}},
    )
    unbalanced = [GOOD_LINES[0], {"account": {"id": "4000"}, "credit": Decimal("1")}]
    with pytest.raises(PermanentError):
        raw(emulator, "PUT", f"{JE}/eid:K-1", {"memo": "v2", "line": {"items": unbalanced}})
    (rec,) = records(emulator)
    assert rec["fields"]["memo"] == "v1"
    assert rec["write_count"] == 1
    assert [ln["debit"] for ln in rec["lines"]] == [Decimal("10.50"), None]


def test_post_duplicate_external_id_is_rejected(emulator):
    body = {"externalId": "DUP-1", "subsidiary": {"id": "1"}, "line": {"items": GOOD_LINES}}
    created = raw(emulator, "POST", JE, body)
    assert created.status_code == 204
    first_id = created.headers["Location"].rsplit("/", 1)[1]
    with pytest.raises(PermanentError) as info:
        raw(emulator, "POST", JE, body)
    assert "already exists" in info.value.details["o:errorDetails"][0]["detail"]
    (rec,) = records(emulator)
    assert rec["id"] == first_id and rec["write_count"] == 1


def test_get_by_internal_id_matches_eid(client, emulator):
    result = client.post_journal_entry(entry())
    by_id = http.parse_json(raw(emulator, "GET", f"{JE}/{result.document_id}"))
    by_eid = client.get_journal_entry("INV-1")
    assert by_id["externalId"] == "INV-1"
    assert by_id["line"]["items"] == by_eid["line"]["items"]


# --- faults ------------------------------------------------------------------------------


def test_503_twice_then_success(client, emulator):
    add_faults(emulator, {"status": 503, "times": 2})
    for _ in range(2):
        with pytest.raises(TransientError) as info:
            client.post_journal_entry(entry())
        assert info.value.status == 503
        assert info.value.code == "SERVICE_UNAVAILABLE"
        assert records(emulator) == []
    result = client.post_journal_entry(entry())
    (rec,) = records(emulator)
    assert rec["id"] == result.document_id and rec["write_count"] == 1
    assert [r["status"] for r in request_log(emulator)] == [503, 503, 204]
    assert control(emulator, "GET", "faults")["faults"] == []


def test_429_retry_after(client, emulator):
    add_faults(emulator, {"status": 429, "retry_after": 2, "times": 1})
    with pytest.raises(TransientError) as info:
        client.post_journal_entry(entry())
    err = info.value
    assert err.retry_after == 2
    assert err.status == 429
    assert err.code == "CONCURRENCY_LIMIT_EXCEEDED"
    assert http.backoff_delay(0, base=0.1, cap=1.0, retry_after=err.retry_after) >= 2
    assert records(emulator) == []
    assert client.post_journal_entry(entry()).document_id == records(emulator)[0]["id"]


def test_timeout_with_apply_stores_the_write(emulator):
    client = NetSuiteClient(emulator, token=TOKEN, timeout=0.5)
    add_faults(emulator, {"timeout": 5, "apply": True, "times": 1})
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        client.post_journal_entry(entry())
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 3
    found = client.find_journal_entry("INV-1")
    assert found is not None
    (rec,) = records(emulator)
    assert found == PostResult(document_id=rec["id"], external_id="INV-1")
    assert rec["write_count"] == 1
    # The engine's retry is harmless: same record, second write.
    assert client.post_journal_entry(entry()) == found
    (rec,) = records(emulator)
    assert rec["write_count"] == 2
    assert request_log(emulator)[0]["fault"] == "timeout:5:applied"


def test_timeout_without_apply_stores_nothing(emulator):
    client = NetSuiteClient(emulator, token=TOKEN, timeout=0.5)
    add_faults(emulator, {"timeout": 5, "times": 1})
    with pytest.raises(TransientError) as info:
        client.post_journal_entry(entry())
    assert info.value.code == "timeout"
    assert client.find_journal_entry("INV-1") is None
    assert records(emulator) == []


def test_delay_fault_then_normal_answer(client, emulator):
    add_faults(emulator, {"delay": 0.3, "times": 1})
    started = time.monotonic()
    result = client.post_journal_entry(entry())
    assert time.monotonic() - started >= 0.3
    assert records(emulator)[0]["id"] == result.document_id
    assert request_log(emulator)[0]["fault"] == "delay:0.3"


def test_drop_fault_is_a_connection_error(client, emulator):
    add_faults(emulator, {"drop": True})
    with pytest.raises(TransientError) as info:
        client.post_journal_entry(entry())
    assert info.value.code == "connection"
    assert records(emulator) == []


def test_fault_rules_can_match_method_and_path(client, emulator):
    add_faults(emulator, {"status": 500, "method": "PUT", "path_contains": "customer"})
    client.post_journal_entry(entry())  # not matched: journal entry
    assert client.find_journal_entry("INV-1") is not None  # not matched: GET
    with pytest.raises(TransientError):
        client.upsert_customer("C-1", name="Acme", subsidiary="1")
    assert records(emulator, "customer") == []


def test_invalid_fault_rule_rejected(emulator):
    resp = httpx.post(f"{emulator}/_emulator/faults", json={"rules": [{"times": 2}]})
    assert resp.status_code == 400
    assert control(emulator, "GET", "faults")["faults"] == []


def test_fault_queue_is_fifo_and_clearable(emulator):
    add_faults(emulator, {"status": 503, "times": 2}, {"status": 429, "retry_after": 1})
    pending = control(emulator, "GET", "faults")["faults"]
    assert [(f["rule"]["status"], f["remaining"]) for f in pending] == [(503, 2), (429, 1)]
    assert control(emulator, "DELETE", "faults")["cleared"] == 2
    assert control(emulator, "GET", "faults")["faults"] == []


# --- auth / not found --------------------------------------------------------------------


def test_wrong_token_is_auth_error(emulator):
    client = NetSuiteClient(emulator, token="wrong", timeout=5)
    with pytest.raises(AuthError) as info:
        client.post_journal_entry(entry())
    err = info.value
    assert err.status == 401
    assert err.code == "INVALID_LOGIN"
    assert "Invalid login attempt" in err.message
    assert "wrong" not in repr(client)
    assert records(emulator) == []
    with pytest.raises(AuthError):
        client.find_journal_entry("INV-1")


def test_find_missing_returns_none(client, emulator):
    assert client.find_journal_entry("NOPE-1") is None
    assert client.get_journal_entry("NOPE-1") is None
    assert client.get_customer("NOPE-1") is None
    assert [r["status"] for r in request_log(emulator)] == [404, 404, 404]


# --- customers ---------------------------------------------------------------------------


def test_upsert_customer(client, emulator):
    first = client.upsert_customer("cus_123", name="Acme GmbH", subsidiary="2")
    second = client.upsert_customer("cus_123", name="Acme AG", subsidiary="2", email="ap@acme.test")
    assert first == second
    (rec,) = records(emulator, "customer")
    assert rec["id"] == first.document_id
    assert rec["write_count"] == 2
    assert rec["fields"] == {
        "companyName": "Acme AG",
        "subsidiary": {"id": "2"},
        "email": "ap@acme.test",
    }
    assert client.get_customer("cus_123")["companyName"] == "Acme AG"


# --- concurrency, correlation, persistence -----------------------------------------------


def test_concurrent_puts_make_exactly_one_record(client, emulator):
    barrier = threading.Barrier(8)
    results: list[PostResult] = []
    errors: list[BaseException] = []

    def worker():
        try:
            barrier.wait(timeout=5)
            results.append(client.post_journal_entry(entry("RACE-1")))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(results) == 8
    stored = records(emulator)
    assert len(stored) == 1
    assert {r.document_id for r in results} == {stored[0]["id"]}
    assert stored[0]["write_count"] == 8
    assert len(stored[0]["lines"]) == 2


def test_correlation_id_recorded_in_request_log(client, emulator):
    with http.correlation("run-7:INV-1"):
        client.post_journal_entry(entry())
    client.find_journal_entry("INV-1")
    log = request_log(emulator)
    assert [(r["method"], r["correlation_id"]) for r in log] == [
        ("PUT", "run-7:INV-1"),
        ("GET", None),
    ]
    assert log[0]["path"] == f"{JE}/eid:INV-1?replace=line"
    assert log[0]["status"] == 204


def test_reset_wipes_everything(client, emulator):
    client.post_journal_entry(entry())
    add_faults(emulator, {"status": 503})
    assert control(emulator, "POST", "reset") == {"ok": True}
    assert records(emulator) == []
    assert request_log(emulator) == []
    assert control(emulator, "GET", "faults")["faults"] == []
    assert control(emulator, "GET", "health") == {"ok": True}


def _spawn(db: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connectors.netsuite.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--db",
            str(db),
            "--token",
            TOKEN,
            "--log-level",
            "WARNING",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    if not ready:
        proc.kill()
        raise AssertionError("emulator did not start: " + proc.stderr.read())
    line = proc.stdout.readline()
    assert line.startswith("NetSuite emulator listening on http://127.0.0.1:"), line
    base = line.split()[4]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/_emulator/health", timeout=1).json() == {"ok": True}:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("emulator not healthy")


@pytest.mark.e2e
def test_subprocess_emulator_survives_kill_and_restart(tmp_path):
    db = tmp_path / "ns.sqlite3"
    proc, base = _spawn(db)
    try:
        posted = NetSuiteClient(base, token=TOKEN, timeout=5).post_journal_entry(entry("KEEP-1"))
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean shutdown: durability must come from SQLite
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    proc, base = _spawn(db)
    try:
        client = NetSuiteClient(base, token=TOKEN, timeout=5)
        assert client.find_journal_entry("KEEP-1") == posted
        items = client.get_journal_entry("KEEP-1")["line"]["items"]
        assert [(i["account"]["id"], i.get("debit"), i.get("credit")) for i in items] == [
            ("1200", Decimal("10.50"), None),
            ("4000", None, Decimal("10.50")),
        ]
        # Upserting again after the restart reuses the internal id.
        assert client.post_journal_entry(entry("KEEP-1")) == posted
        (rec,) = records(base)
        assert rec["write_count"] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0  # SIGTERM is a clean exit
