"""NetSuite batch writes (REST batch operations, async jobs) and SuiteQL read-back: the
client against the emulator over HTTP."""

from decimal import Decimal

import httpx
import pytest

from connectors import http
from connectors.base import AuthError, LedgerLine, PermanentError, PostResult, TransientError
from connectors.netsuite import client as ns
from connectors.netsuite.client import CustomerRecord, NetSuiteClient
from tests.connectors.test_netsuite import (
    TOKEN,
    add_faults,
    control,
    entry,
    raw,
    records,
    request_log,
)

JE = "/services/rest/record/v1/journalEntry"
SUITEQL = "/services/rest/query/v1/suiteql"
BATCH_HEADERS = {
    "Prefer": "respond-async",
    "Content-Type": "application/vnd.oracle.resource+json; type=collection",
}


def send(base, method, path, body=None, headers=None, params=None):
    return http.send(
        method,
        f"{base}{path}",
        json_body=body,
        headers=headers,
        params=params,
        timeout=5,
        auth_token=TOKEN,
    )


# --- the client ----------------------------------------------------------------------------


def test_batch_post_writes_each_entry_once_in_three_calls(client, emulator):
    entries = [entry(f"INV-{n}", amount=100 + n) for n in range(5)]
    results = client.post_journal_entries(entries)
    stored = {r["externalId"]: r for r in records(emulator)}
    assert [r.external_id for r in results] == [f"INV-{n}" for n in range(5)]
    assert [r.document_id for r in results] == [stored[f"INV-{n}"]["id"] for n in range(5)]
    assert stored["INV-3"]["lines"][0]["debit"] == Decimal("1.03")  # 103 minor units
    assert all(r["write_count"] == 1 for r in stored.values())
    calls = [(r["method"], r["path"].split("?")[0]) for r in request_log(emulator)]
    assert calls == [("PUT", JE), ("GET", "/services/rest/async/v1/job/1"), ("POST", SUITEQL)]
    # Posting the same entries again updates the same records: still five, written twice.
    again = client.post_journal_entries(entries)
    assert again == results
    assert sorted(r["write_count"] for r in records(emulator)) == [2] * 5


def test_batch_post_splits_at_the_netsuite_limit(client, emulator, monkeypatch):
    monkeypatch.setattr(ns, "BATCH_LIMIT", 3)
    results = client.post_journal_entries([entry(f"INV-{n}") for n in range(7)])
    assert all(isinstance(r, PostResult) for r in results)
    assert len({r.document_id for r in results}) == 7
    puts = [r for r in request_log(emulator) if r["method"] == "PUT"]
    assert len(puts) == 3  # 3 + 3 + 1


def test_one_bad_entry_fails_alone(client, emulator):
    unbalanced = entry(
        "INV-BAD",
        lines=(
            LedgerLine(account="1200", debit_minor=100, credit_minor=0),
            LedgerLine(account="4000", debit_minor=0, credit_minor=90),
        ),
    )
    # An entry the client itself refuses is not sent; the others are written.
    good = entry("INV-OK")
    results = client.post_journal_entries([good, unbalanced, entry("INV-OK2")])
    assert isinstance(results[0], PostResult) and isinstance(results[2], PostResult)
    assert isinstance(results[1], PermanentError) and results[1].code == "UNBALANCED"
    assert sorted(r["externalId"] for r in records(emulator)) == ["INV-OK", "INV-OK2"]
    assert not any("INV-BAD" in str(r) for r in request_log(emulator))


def test_record_refused_by_the_erp_is_that_records_error(client, emulator):
    # Sent raw, bypassing the client's checks: the emulator refuses item 1 (no account) and
    # keeps items 0 and 2; the client reads each task's result.
    body = NetSuiteClient.journal_entry_body(entry("INV-B"))
    body["line"]["items"][0]["account"] = {"id": ""}
    bodies = [
        NetSuiteClient.journal_entry_body(entry("INV-A")),
        body,
        NetSuiteClient.journal_entry_body(entry("INV-C")),
    ]
    results = client._upsert_batch(ns.JOURNAL_ENTRY, bodies, params={"replace": "line"})
    assert isinstance(results[0], PostResult) and isinstance(results[2], PostResult)
    assert isinstance(results[1], PermanentError)
    assert results[1].status == 400 and "account" in str(results[1]).lower()
    assert sorted(r["externalId"] for r in records(emulator)) == ["INV-A", "INV-C"]
    paths = [r["path"] for r in request_log(emulator)]
    assert paths[1:] == [
        "/services/rest/async/v1/job/1",
        "/services/rest/async/v1/job/1/task",
        "/services/rest/async/v1/job/1/task/1/result",
        "/services/rest/async/v1/job/1/task/2/result",
        "/services/rest/async/v1/job/1/task/3/result",
    ]


def test_request_failing_as_a_whole_gives_every_entry_the_same_error(client, emulator):
    add_faults(emulator, {"status": 503, "method": "PUT"})
    results = client.post_journal_entries([entry("INV-1"), entry("INV-2")])
    assert isinstance(results[0], TransientError) and results[0].status == 503
    assert results[1] is results[0]  # one call, one failure
    assert records(emulator) == []


def test_auth_failure_on_batch(emulator):
    bad = NetSuiteClient(emulator, token="wrong", timeout=5.0)
    results = bad.post_journal_entries([entry("INV-1"), entry("INV-2")])
    assert isinstance(results[0], AuthError) and results[1] is results[0]
    assert records(emulator) == []


def test_pending_job_is_polled_until_done(client, emulator):
    add_faults(emulator, {"pending": True, "times": 2, "path_contains": "/async/"})
    (result,) = client.post_journal_entries([entry("INV-1")])
    assert result.document_id == records(emulator)[0]["id"]
    job_reads = [r for r in request_log(emulator) if "/async/" in r["path"]]
    assert [r["fault"] for r in job_reads] == ["pending", "pending", ""]


def test_job_never_finishing_is_transient_and_the_retry_reads_back(client, emulator, monkeypatch):
    monkeypatch.setattr(ns, "ASYNC_POLL_DELAYS", (0.01, 0.01))
    add_faults(emulator, {"pending": True, "times": 3, "path_contains": "/async/"})
    (result,) = client.post_journal_entries([entry("INV-1")])
    assert isinstance(result, TransientError) and result.code == "ASYNC_PENDING"
    # The emulator did write it: read back by external id finds it, so nothing is re-sent.
    found = client.find_journal_entries(["INV-1", "INV-NOT-THERE"])
    assert found == {"INV-1": PostResult(records(emulator)[0]["id"], "INV-1")}


def test_find_many_by_suiteql_pages_and_quotes(client, emulator, monkeypatch):
    monkeypatch.setattr(ns, "SUITEQL_PAGE", 2)
    ids = ["INV-1", "INV-O'BRIEN", "INV-3", "INV-4", "INV-5"]
    posted = client.post_journal_entries([entry(e) for e in ids])
    found = client.find_journal_entries([*ids, "INV-ABSENT"])
    assert found == {p.external_id: p for p in posted}
    pages = [r for r in request_log(emulator) if r["path"].startswith(SUITEQL)]
    # 1 page after the post (its 5 ids in pages of 2: 3 requests), 3 for the find.
    assert len(pages) == 6


def test_batch_upsert_customers(client, emulator):
    out = client.upsert_customers(
        [
            CustomerRecord("RCT-CUS-1", name="Acme", subsidiary="1"),
            CustomerRecord("RCT-CUS-2", name="", subsidiary="1"),
            CustomerRecord("RCT-CUS-3", name="Globex", subsidiary="2", email="ap@globex.test"),
        ]
    )
    assert isinstance(out[0], PostResult) and isinstance(out[2], PostResult)
    assert isinstance(out[1], PermanentError)
    stored = {r["externalId"]: r for r in records(emulator, "customer")}
    assert set(stored) == {"RCT-CUS-1", "RCT-CUS-3"}
    assert stored["RCT-CUS-3"]["fields"]["email"] == "ap@globex.test"
    assert out[2].document_id == stored["RCT-CUS-3"]["id"]
    # Renamed: the same record updated.
    (again,) = client.upsert_customers([CustomerRecord("RCT-CUS-1", "Acme Corp", "1")])
    assert again == out[0]
    assert records(emulator, "customer")[0]["fields"]["companyName"] == "Acme Corp"


def test_correlation_ids_of_a_batch_are_sent(client, emulator):
    with http.correlation("cid-1,cid-2"):
        client.post_journal_entries([entry("INV-1"), entry("INV-2")])
    assert {r["correlation_id"] for r in request_log(emulator)} == {"cid-1,cid-2"}


# --- the emulator's batch, async and SuiteQL endpoints -----------------------------------


def test_batch_needs_respond_async(emulator):
    with pytest.raises(PermanentError) as info:
        send(
            emulator,
            "PUT",
            JE,
            {"items": [NetSuiteClient.journal_entry_body(entry())]},
            headers={"Content-Type": BATCH_HEADERS["Content-Type"]},
        )
    assert info.value.status == 400 and "respond-async" in str(info.value.details)
    assert records(emulator) == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"items": []}, "at least one"),
        ({"rows": [1]}, "items"),
        ({"items": [{"externalId": f"X{n}"} for n in range(101)]}, "at most 100"),
    ],
)
def test_batch_body_refused(emulator, body, needle):
    with pytest.raises(PermanentError) as info:
        send(emulator, "PUT", JE, body, headers=BATCH_HEADERS)
    assert info.value.status == 400 and needle in str(info.value.details)
    assert records(emulator) == []


def test_batch_upsert_item_without_external_id_fails_alone(emulator):
    good = NetSuiteClient.journal_entry_body(entry("INV-1"))
    nameless = {k: v for k, v in NetSuiteClient.journal_entry_body(entry("X")).items()}
    del nameless["externalId"]
    resp = send(emulator, "PUT", JE, {"items": [good, nameless]}, headers=BATCH_HEADERS)
    assert resp.status_code == 202 and resp.headers["Preference-Applied"] == "respond-async"
    job = http.loads(send(emulator, "GET", resp.headers["Location"].split(emulator)[1]).content)
    assert job["completed"] is True and job["progress"] == "failed"
    with pytest.raises(PermanentError) as info:
        send(emulator, "GET", "/services/rest/async/v1/job/1/task/2/result")
    assert "externalId" in str(info.value.details)
    ok = send(emulator, "GET", "/services/rest/async/v1/job/1/task/1/result")
    assert ok.status_code == 204 and ok.headers["Location"].endswith(
        f"/{records(emulator)[0]['id']}"
    )


def test_idempotency_key_answers_the_first_job_and_writes_nothing(emulator):
    headers = {
        **BATCH_HEADERS,
        "X-NetSuite-Idempotency-Key": "6f1c1f0e-8c1c-4b7e-9d7a-1f2e3d4c5b6a",
    }
    body = {"items": [NetSuiteClient.journal_entry_body(entry("INV-1"))]}
    first = send(emulator, "PUT", JE, body, headers=headers)
    second = send(emulator, "PUT", JE, body, headers=headers)
    assert first.headers["Location"] == second.headers["Location"]
    (rec,) = records(emulator)
    assert rec["write_count"] == 1


def test_batch_create_with_post(emulator):
    bodies = [NetSuiteClient.journal_entry_body(entry(f"INV-{n}")) for n in range(2)]
    send(emulator, "POST", JE, {"items": bodies}, headers=BATCH_HEADERS)
    again = send(emulator, "POST", JE, {"items": bodies}, headers=BATCH_HEADERS)
    assert len(records(emulator)) == 2
    job = http.loads(send(emulator, "GET", again.headers["Location"].split(emulator)[1]).content)
    assert job["progress"] == "failed"  # a create of an existing external id is refused


def test_unknown_job_is_404(emulator):
    with pytest.raises(PermanentError) as info:
        send(emulator, "GET", "/services/rest/async/v1/job/99")
    assert info.value.status == 404


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM transaction",
        "SELECT id, amount FROM transaction WHERE externalid IN ('A')",
        "SELECT id FROM invoice WHERE externalid IN ('A')",
        "SELECT id FROM transaction WHERE externalid IN (1, 2)",
        "DELETE FROM transaction WHERE externalid IN ('A')",
        "SELECT id FROM transaction WHERE externalid IN ('A') OR 1=1",
    ],
)
def test_suiteql_outside_the_supported_shape_is_refused(emulator, query):
    with pytest.raises(PermanentError) as info:
        send(emulator, "POST", SUITEQL, {"q": query}, headers={"Prefer": "transient"})
    assert info.value.status == 400
    assert "INVALID_PARAMETER" in str(info.value.details)


def test_suiteql_needs_prefer_transient(client, emulator):
    client.post_journal_entry(entry("INV-1"))
    query = {"q": "SELECT id, externalid FROM transaction WHERE externalid IN ('INV-1')"}
    with pytest.raises(PermanentError):
        send(emulator, "POST", SUITEQL, query)
    resp = send(emulator, "POST", SUITEQL, query, headers={"Prefer": "transient"})
    body = http.loads(resp.content)
    assert body["count"] == 1 and body["items"][0]["externalid"] == "INV-1"
    assert body["items"][0]["id"] == records(emulator)[0]["id"]


def test_async_and_query_services_need_the_token(client, emulator):
    client.post_journal_entries([entry("INV-1")])
    for method, path in (("GET", "/services/rest/async/v1/job/1"), ("POST", SUITEQL)):
        resp = httpx.request(method, f"{emulator}{path}", json={"q": "x"}, timeout=5)
        assert resp.status_code == 401
    assert raw(emulator, "GET", "/services/rest/async/v1/job/1").status_code == 200
    assert control(emulator, "POST", "reset") == {"ok": True}
    with pytest.raises(PermanentError):
        send(emulator, "GET", "/services/rest/async/v1/job/1")
