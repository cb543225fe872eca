"""Replay options over the API: from a chosen step, a selection, cancel, and the dry run."""

from __future__ import annotations

import pytest

from sync.models import AuditEntry, ExceptionCase, Invoice, JournalEntry, Journey
from tests.conftest import drain, emulator_records
from tests.controltower.api.helpers import invoice_event, post_webhook
from tests.factories import map_product

pytestmark = pytest.mark.django_db


def _stuck(client, invoice_id: str) -> Journey:
    post_webhook(client, invoice_event(invoice_id=invoice_id, price="price_new"))
    drain()
    journey = Journey.objects.get(business_key=invoice_id)
    assert journey.state == Journey.State.EXCEPTION
    return journey


@pytest.fixture
def stuck(client, ledger, netsuite) -> Journey:
    return _stuck(client, "in_api_stuck")


def test_replay_from_a_chosen_step(api, stuck, finance_ops, netsuite):
    map_product("price_new")
    resp = api(finance_ops).post(
        f"/api/v1/journeys/{stuck.pk}/replay/",
        {"reason": "mapped", "from_step": "link_customer"},
        format="json",
    )
    assert resp.status_code == 202, resp.content
    assert resp.json() == {"journey": stuck.pk, "outcome": "requeued", "from_step": "link_customer"}
    drain()
    assert len(emulator_records(netsuite)) == 1


def test_replay_from_a_step_before_the_posting_of_a_posted_entry_is_a_409(
    api, client, ledger, netsuite, finance_ops
):
    map_product("price_platform")
    post_webhook(client, invoice_event(invoice_id="in_api_posted"))
    drain()
    journey = Journey.objects.get(business_key="in_api_posted")
    resp = api(finance_ops).post(
        f"/api/v1/journeys/{journey.pk}/replay/", {"from_step": "build_entry"}, format="json"
    )
    assert resp.status_code == 409
    assert "already posted as RCT-STRIPE-in_api_posted" in resp.json()["detail"]
    assert "post a correction instead" in resp.json()["detail"]
    assert not AuditEntry.objects.filter(action="journey.replay").exists()


def test_bulk_replay_by_ids_and_by_exception_filter(api, client, ledger, netsuite, finance_ops):
    journeys = [_stuck(client, f"in_api_bulk{i}") for i in range(3)]
    map_product("price_new")
    client_ = api(finance_ops)

    resp = client_.post(
        "/api/v1/journeys/replay/",
        {"reason": "price_new mapped", "exception_filter": {"category": ["unmapped_product"]}},
        format="json",
    )

    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert sorted(body["requeued"]) == sorted(j.pk for j in journeys)
    assert body["already_completed"] == [] and body["refused"] == []
    assert (
        AuditEntry.objects.filter(action="journey.replay", reason="price_new mapped").count() == 3
    )
    assert AuditEntry.objects.get(action="journey.replay_bulk").actor == finance_ops
    drain()
    records = emulator_records(netsuite)
    assert len(records) == 3 and {r["write_count"] for r in records} == {1}

    again = client_.post(
        "/api/v1/journeys/replay/",
        {"reason": "again", "journeys": [j.pk for j in journeys]},
        format="json",
    )
    assert again.status_code == 202
    assert sorted(again.json()["already_completed"]) == sorted(j.pk for j in journeys)


@pytest.mark.parametrize(
    "body",
    [
        {"journeys": [1]},
        {"reason": "  ", "journeys": [1]},
        {"reason": "r"},
        {"reason": "r", "journeys": [1], "journey_filter": {}},
        {"reason": "r", "journey_filter": {"entity": "nowhere"}},
    ],
)
def test_bulk_replay_needs_a_reason_and_one_valid_selection(api, finance_ops, body):
    resp = api(finance_ops).post("/api/v1/journeys/replay/", body, format="json")
    assert resp.status_code == 400, resp.content
    assert not AuditEntry.objects.exists()


def test_cancel_needs_a_reason_then_resolves_the_exception(api, stuck, finance_ops):
    url = f"/api/v1/journeys/{stuck.pk}/cancel/"
    assert api(finance_ops).post(url, {"reason": ""}, format="json").status_code == 400
    resp = api(finance_ops).post(url, {"reason": "test invoice"}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["state"] == "cancelled"
    assert ExceptionCase.objects.get(journey=stuck).state == ExceptionCase.State.RESOLVED
    audit = AuditEntry.objects.get(action="journey.cancel")
    assert (audit.actor, audit.reason) == (finance_ops, "test invoice")
    assert api(finance_ops).post(url, {"reason": "again"}, format="json").status_code == 409


@pytest.mark.parametrize("persona", ["auditor", "manager"])
def test_other_roles_get_403_on_writes_but_may_dry_run(api, stuck, persona, request, netsuite):
    user = api(request.getfixturevalue(persona))
    writes = [
        (f"/api/v1/journeys/{stuck.pk}/replay/", {"reason": "r", "from_step": "validate"}),
        ("/api/v1/journeys/replay/", {"reason": "r", "journeys": [stuck.pk]}),
        (f"/api/v1/journeys/{stuck.pk}/cancel/", {"reason": "r"}),
    ]
    for url, body in writes:
        assert user.post(url, body, format="json").status_code == 403, url
    assert user.post(writes[2][0], {"reason": "r"}, format="json").json()["detail"] == (
        "Only finance ops may cancel journeys."
    )
    assert (
        not AuditEntry.objects.filter(actor__isnull=False).exclude(action="access.denied").exists()
    )
    assert AuditEntry.objects.filter(action="access.denied").count() == 4
    map_product("price_new")
    audits = AuditEntry.objects.count()
    resp = user.get(f"/api/v1/journeys/{stuck.pk}/dry-run/")
    assert resp.status_code == 200
    assert AuditEntry.objects.count() == audits


def test_dry_run_shows_the_entry_and_the_put_and_writes_nothing(api, stuck, auditor, netsuite):
    map_product("price_new")
    counts = (JournalEntry.objects.count(), Invoice.objects.count(), AuditEntry.objects.count())

    resp = api(auditor).get(f"/api/v1/journeys/{stuck.pk}/dry-run/")

    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["defect"] is None and body["stopped_before"] == "post_entry"
    entry = body["entry"]
    assert entry["external_id"] == "RCT-STRIPE-in_api_stuck"
    assert [
        (ln["account_number"], ln["debit_minor"], ln["credit_minor"]) for ln in entry["lines"]
    ] == [
        ("1200", 1_296_000, 0),
        ("2400", 0, 1_200_000),
        ("2200", 0, 96_000),
    ]
    assert entry["totals"]["debit_minor"] == entry["totals"]["credit_minor"] == 1_296_000
    [put] = [c for c in body["calls"] if c["method"] == "PUT"]
    assert put["path"] == "/services/rest/record/v1/journalEntry/eid:RCT-STRIPE-in_api_stuck"
    assert put["body"]["externalId"] == "RCT-STRIPE-in_api_stuck"
    assert (JournalEntry.objects.count(), Invoice.objects.count(), AuditEntry.objects.count()) == (
        counts
    )
    assert emulator_records(netsuite) == []


def test_dry_run_before_the_fix_reports_the_defect(api, stuck, manager):
    body = api(manager).get(f"/api/v1/journeys/{stuck.pk}/dry-run/").json()
    assert body["defect"]["category"] == "unmapped_product"
    assert body["defect"]["summary"] == ExceptionCase.objects.get(journey=stuck).summary
    assert body["entry"] is None and body["calls"] == []


def test_dry_run_of_an_unknown_journey_is_404(api, auditor):
    assert api(auditor).get("/api/v1/journeys/424242/dry-run/").status_code == 404
