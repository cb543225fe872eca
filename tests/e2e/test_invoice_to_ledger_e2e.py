"""End to end on real parts: signed webhooks over HTTP to the live app, a real qcluster and
clock processing them, the NetSuite emulator over HTTP holding the result."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import httpx
import pytest
from django.conf import settings

from connectors.stripe import emulator as se
from sync.models import ExceptionCase, InboundEvent, JournalEntry, Journey
from sync.services.journeys import journey_replay
from tests.e2e.conftest import wait_for
from tests.factories import link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import invoice_event

pytestmark = [pytest.mark.e2e]


def _records(stack) -> list[dict]:
    resp = httpx.get(f"{stack.netsuite_url}/_emulator/records/journalEntry", timeout=5)
    return json.loads(resp.text, parse_float=Decimal)["records"]


def _deliver(live_server, event) -> httpx.Response:
    return se.deliver(f"{live_server.url}/webhooks/stripe/", event, settings.STRIPE_WEBHOOK_SECRET)


def _settled(n: int) -> bool:
    return (
        Journey.objects.filter(state__in=[Journey.State.COMPLETED, Journey.State.EXCEPTION]).count()
        >= n
    )


@pytest.fixture
def ledger(transactional_db):
    ledger = make_ledger()
    map_product("price_platform")
    map_tax(ledger, "txr_us_8")
    for i in range(6):
        link_customer(ledger, f"cus_e2e_{i}")
    return ledger


def test_webhooks_to_qcluster_to_netsuite_one_balanced_entry_per_invoice(
    live_server, stack, ledger
):
    amounts = [1_000_00, 2_500_00, 99_99, 12_000_00, 45_50, 7_777_77]
    events = [
        invoice_event(f"cus_e2e_{i}", invoice_id=f"in_e2e_{i}", amount=a)
        for i, a in enumerate(amounts)
    ]
    stack.start_workers()
    answers = [_deliver(live_server, e).status_code for e in events]
    dupes = [_deliver(live_server, events[0]).json()["duplicate"] for _ in range(4)]
    assert answers == [200] * 6 and dupes == [True] * 4

    wait_for(lambda: _settled(6), timeout=90, what="six journeys to settle")

    assert set(Journey.objects.values_list("state", flat=True)) == {Journey.State.COMPLETED}
    assert InboundEvent.objects.count() == 6
    records = sorted(_records(stack), key=lambda r: r["externalId"])
    assert [r["externalId"] for r in records] == [f"RCT-STRIPE-in_e2e_{i}" for i in range(6)]
    for record, amount in zip(records, amounts, strict=True):
        tax = (Decimal(amount) * Decimal("0.08")).quantize(Decimal(1), rounding="ROUND_HALF_UP")
        debits = sum((ln["debit"] or 0) for ln in record["lines"])
        credits = sum((ln["credit"] or 0) for ln in record["lines"])
        assert debits == credits == (amount + tax) / 100
        assert record["write_count"] == 1
    posted = JournalEntry.objects.filter(state=JournalEntry.State.POSTED)
    assert {e.erp_document_id for e in posted} == {str(r["id"]) for r in records}
    assert "Traceback" not in stack.log("qcluster")


def test_erp_503_twice_then_429_with_retry_after_completes_once(live_server, stack, ledger):
    httpx.post(
        f"{stack.netsuite_url}/_emulator/faults",
        json={"rules": [{"status": 503, "times": 2}, {"status": 429, "retry_after": 2}]},
        timeout=5,
    ).raise_for_status()
    stack.start_workers()
    assert (
        _deliver(live_server, invoice_event("cus_e2e_1", invoice_id="in_flaky")).status_code == 200
    )

    wait_for(lambda: _settled(1), timeout=90, what="the flaky journey")

    journey = Journey.objects.get(business_key="in_flaky")
    assert journey.state == Journey.State.COMPLETED
    assert journey.steps.get(name="post_entry").attempts == 4
    [record] = _records(stack)
    assert record["write_count"] == 1
    log = httpx.get(f"{stack.netsuite_url}/_emulator/requests", timeout=5).json()["requests"]
    calls = [(r["method"], r["status"]) for r in log]
    # After an attempt with an unknown outcome the step reads back before writing again.
    assert calls[:6] == [
        ("PUT", 503),
        ("GET", 503),
        ("GET", 429),
        ("GET", 404),
        ("PUT", 204),
        ("GET", 200),
    ]
    stamps = [datetime.fromisoformat(r["at"].replace("Z", "+00:00")) for r in log]
    assert (stamps[3] - stamps[2]).total_seconds() >= 2.0, "Retry-After: 2 was not honoured"
    assert {r["correlation_id"] for r in log} == {str(journey.correlation_id)}


def test_missing_mapping_exception_then_replay_posts_exactly_once(
    live_server, stack, ledger, finance_ops
):
    stack.start_workers()
    _deliver(live_server, invoice_event("cus_e2e_2", invoice_id="in_gap", price="price_gap"))
    wait_for(lambda: _settled(1), timeout=60, what="the journey to stop")
    journey = Journey.objects.get(business_key="in_gap")
    assert journey.state == Journey.State.EXCEPTION
    assert ExceptionCase.objects.get(journey=journey).category == "unmapped_product"

    map_product("price_gap", code="GAP")
    assert journey_replay(journey_id=journey.pk, actor=finance_ops).outcome == "requeued"
    wait_for(
        lambda: Journey.objects.get(pk=journey.pk).state == Journey.State.COMPLETED,
        timeout=60,
        what="the replayed journey to complete",
    )
    for _ in range(3):
        assert journey_replay(journey_id=journey.pk, actor=finance_ops).outcome == (
            "already_completed"
        )
    [record] = _records(stack)
    assert record["externalId"] == "RCT-STRIPE-in_gap" and record["write_count"] == 1
