"""Claims between real OS processes: two qclusters racing for the same step ids, and a worker
killed in the middle of posting whose claim expires and is taken over by a fresh cluster.

What is asserted is outcome only (journey and step states, attempts, our ledger, what the
NetSuite emulator holds and was asked), never how many tasks carried the work."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import Exists, OuterRef

from sync import tasks
from sync.models import InboundEvent, JournalEntry, Journey, Step
from tests.e2e.conftest import deliver, describe, settled_journey, wait_for
from tests.factories import link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import invoice_event

pytestmark = [pytest.mark.e2e]

INVOICES = 40


def _amount(i: int) -> int:
    """Distinct amounts in minor units, some with odd cents so tax rounds."""
    return 100_00 + i * 37_13


def _gross(amount: int) -> Decimal:
    """Invoice total in major units: amount + 8% tax rounded half up, as Stripe computes it."""
    tax = (Decimal(amount) * Decimal("0.08")).quantize(Decimal(1), rounding="ROUND_HALF_UP")
    return (amount + tax) / Decimal(100)


@pytest.fixture
def ledger(transactional_db):
    ledger = make_ledger()
    map_product("price_platform")
    map_tax(ledger, "txr_us_8")
    for i in range(INVOICES):
        link_customer(ledger, f"cus_race_{i}")
    return ledger


def _ready_steps():
    """Steps a worker could claim now or is running: every earlier step of the journey done."""
    earlier_open = Step.objects.filter(
        journey=OuterRef("journey"), position__lt=OuterRef("position")
    ).exclude(state__in=Step.DONE)
    return Step.objects.filter(
        state__in=[Step.State.PENDING, Step.State.RETRYING, Step.State.RUNNING]
    ).filter(~Exists(earlier_open))


def test_two_clusters_racing_for_the_same_steps_post_each_invoice_once(live_server, stack, ledger):
    stack.faults({"delay": 1.0, "method": "PUT", "times": INVOICES})
    events = [
        invoice_event(f"cus_race_{i}", invoice_id=f"in_race_{i}", amount=_amount(i))
        for i in range(INVOICES)
    ]
    # Delivered before the workers start, so the whole burst is still ahead of them when the
    # test starts watching (batch claims and bulk posting finish 40 invoices in a second or
    # two, faster than the deliveries themselves).
    assert [deliver(live_server, e).status_code for e in events] == [200] * INVOICES
    stack.start_workers(clusters=2)

    # On top of the app's own enqueues the test enqueues every event, and every step it sees
    # ready to claim (or running), twice, so both clusters get the same ids while they matter
    # and must race for the claims. Each ERP write takes 1 s (latency, not a failure), so
    # post_entry steps are seen running and their duplicates must be refused.
    doubled_events: set[int] = set()
    doubled_steps: dict[int, str] = {}

    def double_enqueue_then_settled() -> bool:
        for event_id in InboundEvent.objects.exclude(pk__in=doubled_events).values_list(
            "pk", flat=True
        ):
            tasks.enqueue_dispatch(event_id)
            tasks.enqueue_dispatch(event_id)
            doubled_events.add(event_id)
        ready = _ready_steps().exclude(pk__in=list(doubled_steps)).values_list("pk", "state")
        for step_id, state in ready:
            tasks.enqueue_step(step_id)
            tasks.enqueue_step(step_id)
            doubled_steps[step_id] = state
        return (
            Journey.objects.filter(
                state__in=[Journey.State.COMPLETED, Journey.State.EXCEPTION]
            ).count()
            == INVOICES
        )

    wait_for(double_enqueue_then_settled, timeout=150, what=f"{INVOICES} journeys to settle")

    journeys = Journey.objects.filter(journey_type="invoice_to_ledger")
    assert journeys.count() == INVOICES
    assert set(journeys.values_list("state", flat=True)) == {Journey.State.COMPLETED}
    steps = Step.objects.filter(journey__in=journeys)
    assert set(steps.values_list("state", flat=True)) == {Step.State.SUCCEEDED}
    # No fault was injected, so no step ever needed a second claim.
    assert set(steps.values_list("attempts", flat=True)) == {1}
    assert len(doubled_events) == INVOICES
    assert Step.State.RUNNING in doubled_steps.values(), "no duplicate met a running step"

    # The ERP holds exactly one balanced entry per invoice, each written once.
    records = stack.records()
    by_eid = {r["externalId"]: r for r in records}
    assert len(records) == len(by_eid) == INVOICES
    assert set(by_eid) == {f"RCT-STRIPE-in_race_{i}" for i in range(INVOICES)}
    for i in range(INVOICES):
        record = by_eid[f"RCT-STRIPE-in_race_{i}"]
        debits = sum(ln["debit"] or 0 for ln in record["lines"])
        credits = sum(ln["credit"] or 0 for ln in record["lines"])
        assert debits == credits == _gross(_amount(i)), record["externalId"]
        assert record["write_count"] == 1
    # One write per external id (write_count above), in single upserts (``eid:`` in the
    # path) or batch upserts: never more calls than invoices, no single one sent twice.
    puts = [r["path"].split("?")[0] for r in stack.requests() if r["method"] == "PUT"]
    singles = [p for p in puts if "/eid:" in p]
    assert 0 < len(puts) <= INVOICES and len(singles) == len(set(singles))

    posted = JournalEntry.objects.filter(state=JournalEntry.State.POSTED)
    assert posted.count() == INVOICES
    assert {e.erp_document_id for e in posted} == {str(r["id"]) for r in records}

    # Both clusters worked on steps (the doubled step tasks, or the pull tasks that claim due
    # steps themselves), and more step tasks ran than there are steps: the duplicates were
    # delivered and executed, and the claims turned them away (attempts 1).
    first, second = stack.step_tasks("qcluster"), stack.step_tasks("qcluster-2")
    work = {name: stack.pull_tasks(name) for name in ("qcluster", "qcluster-2")}
    assert first or work["qcluster"], f"cluster 1 ran no step work ({work})"
    assert second or work["qcluster-2"], f"cluster 2 ran no step work ({work})"
    assert len(first) + len(second) > len(set(first) | set(second))
    for name in ("qcluster", "qcluster-2", "clock"):
        assert "Traceback" not in stack.log(name), name


def test_worker_killed_mid_post_is_taken_over_after_the_claim_ttl_and_posts_once(
    live_server, stack, ledger
):
    # The ERP stores the write at once but holds its answer for 20 s; the client would wait
    # 30 s. So once the emulator holds the record, the worker is blocked inside post_entry.
    stack.faults({"timeout": 20, "apply": True, "method": "PUT", "path_contains": "journalEntry"})
    stack.start_workers(env={"NETSUITE_TIMEOUT": "30"})
    assert (
        deliver(live_server, invoice_event("cus_race_0", invoice_id="in_kill")).status_code == 200
    )

    def post_in_flight() -> bool:
        step = Step.objects.filter(journey__business_key="in_kill", name="post_entry").first()
        return (
            step is not None
            and step.state == Step.State.RUNNING
            and step.claim_token is not None
            and any(r["externalId"] == "RCT-STRIPE-in_kill" for r in stack.records())
        )

    wait_for(post_in_flight, timeout=60, what="post_entry to be waiting on the ERP's answer")
    stack.kill_group("qcluster")  # the worker dies holding the claim, its PUT unanswered
    stack.stop("clock")
    step = Step.objects.get(journey__business_key="in_kill", name="post_entry")
    dead_token = step.claim_token
    assert (step.state, step.attempts) == (Step.State.RUNNING, 1)
    entry = JournalEntry.objects.get(external_id="RCT-STRIPE-in_kill")
    assert entry.state == JournalEntry.State.POSTING  # outcome unknown to us

    # A fresh cluster and clock that treat a claim older than 3 s as a crashed worker's.
    short_ttl = {"RCT_CLAIM_TTL_SECONDS": "3"}
    stack.start("qcluster-restarted", "qcluster", env=short_ttl)
    stack.start("clock-restarted", "rct_clock", env=short_ttl)
    journey = settled_journey("invoice_to_ledger", "in_kill")
    assert journey.state == Journey.State.COMPLETED, describe(journey)

    step.refresh_from_db()
    assert step.state == Step.State.SUCCEEDED and step.attempts == 2
    assert step.claim_token != dead_token
    # The second attempt read the entry back by external id and did not write again.
    record = stack.record("RCT-STRIPE-in_kill")
    assert record["write_count"] == 1
    entry.refresh_from_db()
    assert entry.state == JournalEntry.State.POSTED
    assert entry.erp_document_id == str(record["id"])
    assert step.response_snapshot == {"erp_document_id": str(record["id"])}
    calls = [(r["method"], r["status"], r["fault"]) for r in stack.requests()]
    assert calls == [
        ("PUT", 204, "timeout:20:applied"),  # the killed worker's write, never answered to it
        ("GET", 200, ""),  # attempt 2 reads back by external id: found, so no PUT
        ("GET", 200, ""),  # confirm_in_erp
    ]
    assert [s.attempts for s in journey.steps.order_by("position")] == [1, 1, 1, 1, 2, 1]
    assert "Traceback" not in stack.log("qcluster-restarted")
