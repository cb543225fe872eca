"""Order per aggregate, dependency waits with a deadline, one task per journey, bulk ingest.

The engine is driven inline here (the end-to-end tests run the same functions in real
worker processes)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from connectors.stripe import emulator as se
from connectors.stripe.webhooks import event_parse
from sync.engine import journey_advance, journeys_advance_due, step_claim, steps_claim_batch
from sync.models import ExceptionCase, InboundEvent, JournalEntry, Journey, Step
from sync.services.dispatch import inbound_event_dispatch, inbound_events_dispatch_received
from sync.services.inbox import inbound_events_receive_bulk
from tests.conftest import drain, emulator_records
from tests.stripe_events import invoice_event, post_signed

pytestmark = pytest.mark.django_db
APR_10 = int(dt.datetime(2026, 4, 10, tzinfo=dt.UTC).timestamp())


def _dispatch_all() -> None:
    for pk in InboundEvent.objects.filter(state="received").values_list("pk", flat=True):
        inbound_event_dispatch(event_id=pk)


def _first_step(business_key: str) -> Step:
    return Step.objects.get(journey__business_key=business_key, position=1)


def _void_event(invoice: dict, *, after: int = 60) -> dict:
    """invoice.voided for ``invoice``, ``after`` seconds after it was finalized."""
    event = se.make_event("invoice.voided", dict(invoice, status="void"))
    event["created"] = invoice["created"] + after
    return event


def _charge_events(invoice: dict, charge_id: str, created: int) -> list[dict]:
    charge = se.make_charge(invoice, charge_id=charge_id, created=created)
    link = se.make_event("invoice_payment.paid", se.make_invoice_payment(invoice, charge))
    return [link, se.make_event("charge.succeeded", charge)]


def test_a_later_journey_of_an_aggregate_waits_for_the_earlier_one(client, ledger, netsuite):
    event = invoice_event(invoice_id="in_ord", amount=1000_00)
    post_signed(client, event)
    post_signed(client, _void_event(event["data"]["object"]))
    _dispatch_all()
    void = _first_step("in_ord:void")
    assert Journey.objects.get(business_key="in_ord:void").aggregate_key == "stripe:in_ord"
    # The invoice's journey came first in source order and has not run: the void queues.
    assert step_claim(void.pk) is None
    assert journey_advance(_first_step("in_ord").pk) == "completed"
    assert step_claim(void.pk) is not None


def test_a_step_in_flight_holds_its_aggregate_even_against_an_earlier_event(
    client, ledger, netsuite
):
    event = invoice_event(invoice_id="in_fl", amount=1000_00)
    # The void arrives first (webhooks come in any order) and is running when the invoice lands.
    post_signed(client, _void_event(event["data"]["object"]))
    _dispatch_all()
    void = _first_step("in_fl:void")
    assert step_claim(void.pk) is not None
    post_signed(client, event)
    _dispatch_all()
    invoice_step = _first_step("in_fl")
    assert step_claim(invoice_step.pk) is None  # one journey in flight per aggregate
    # The worker crashes: its claim expires and the void is taken again, still ahead of the
    # invoice (it started first)...
    Step.objects.filter(pk=void.pk).update(claimed_at=timezone.now() - dt.timedelta(seconds=3600))
    assert step_claim(invoice_step.pk) is None
    # ...and finds its invoice not started: it cancels it rather than posting and reversing.
    assert journey_advance(void.pk) == "completed"
    assert Journey.objects.get(business_key="in_fl").state == Journey.State.CANCELLED
    assert step_claim(invoice_step.pk) is None
    assert emulator_records(netsuite) == []


def test_a_void_before_its_invoice_waits_and_is_woken_when_the_invoice_posts(
    client, ledger, netsuite, django_capture_on_commit_callbacks
):
    event = invoice_event(invoice_id="in_wake", amount=1000_00)
    post_signed(client, _void_event(event["data"]["object"]))
    _dispatch_all()
    void = _first_step("in_wake:void")
    assert journey_advance(void.pk) == "waiting"
    void.refresh_from_db()
    assert void.next_attempt_at > timezone.now()  # it looks again later...
    assert void.attempts == 0 and void.journey.state == Journey.State.WAITING
    post_signed(client, event)
    _dispatch_all()
    # A waiting journey does not hold its aggregate: the invoice it waits for goes first.
    with django_capture_on_commit_callbacks(execute=True):
        assert journey_advance(_first_step("in_wake").pk) == "completed"
    void.refresh_from_db()
    assert void.next_attempt_at <= timezone.now()  # ...but the invoice woke it at once
    drain()
    assert Journey.objects.get(business_key="in_wake:void").state == Journey.State.COMPLETED
    records = {r["externalId"] for r in emulator_records(netsuite)}
    assert len(records) == 2 and "RCT-STRIPE-in_wake" in records


def test_a_dependency_that_never_comes_becomes_an_exception_at_the_deadline(
    client, ledger, netsuite, settings
):
    settings.RCT = {**settings.RCT, "DEPENDENCY_WAIT_SECONDS": 120}
    invoice = invoice_event(invoice_id="in_never", amount=1000_00)["data"]["object"]
    for e in _charge_events(invoice, "ch_never", created=APR_10):
        post_signed(client, e)
    drain()
    step = _first_step("ch_never")
    assert step.state == Step.State.PENDING and not ExceptionCase.objects.exists()
    # The next look is capped at the deadline, never after it.
    deadline = step.started_at + dt.timedelta(seconds=120)
    assert step.next_attempt_at <= deadline
    Step.objects.filter(pk=step.pk).update(
        started_at=timezone.now() - dt.timedelta(seconds=121), next_attempt_at=timezone.now()
    )
    drain()
    case = ExceptionCase.objects.get(journey__business_key="ch_never")
    assert case.category == ExceptionCase.Category.PAYMENT_NOT_LINKED
    assert "in_never" in case.summary and "(waited 2 min" in case.summary
    assert Step.objects.get(pk=step.pk).attempts == 1
    assert not JournalEntry.objects.filter(external_id="RCT-STRIPE-ch_never").exists()


def test_one_task_carries_a_journey_through_all_its_steps(client, ledger, netsuite):
    post_signed(client, invoice_event(invoice_id="in_one"))
    _dispatch_all()
    assert journey_advance(_first_step("in_one").pk) == "completed"
    steps = Step.objects.filter(journey__business_key="in_one")
    assert {(s.state, s.attempts) for s in steps} == {(Step.State.SUCCEEDED, 1)}
    assert len(emulator_records(netsuite)) == 1


# --- bulk ingest -----------------------------------------------------------------------------


def _events() -> list[dict]:
    later = invoice_event(invoice_id="in_b2", number="B-2")
    earlier = invoice_event(invoice_id="in_b1", number="B-1")
    earlier["created"] = later["created"] - 120
    return [later, earlier]


def test_bulk_ingest_dedups_and_dispatch_follows_source_order(ledger):
    later, earlier = _events()
    assert inbound_events_receive_bulk(source_system="stripe", envelopes=[event_parse(later)]) == 1
    envelopes = [event_parse(e) for e in (later, earlier, earlier)]
    assert inbound_events_receive_bulk(source_system="stripe", envelopes=envelopes) == 1
    assert InboundEvent.objects.count() == 2
    assert inbound_events_dispatch_received(limit=10) == 2
    # Journeys are started oldest business time first, whatever the arrival order.
    assert list(Journey.objects.order_by("pk").values_list("business_key", flat=True)) == [
        "in_b1",
        "in_b2",
    ]


def test_ingest_command_loads_a_file_and_refuses_one_with_a_bad_line(ledger, tmp_path):
    later, earlier = _events()
    good = tmp_path / "events.jsonl"
    good.write_text("\n".join(json.dumps(e) for e in (later, earlier, later)) + "\n")
    call_command("rct_ingest", str(good))
    assert InboundEvent.objects.count() == 2
    bad = tmp_path / "bad.jsonl"
    extra = invoice_event(invoice_id="in_b3")
    broken = dict(extra, created="yesterday")
    bad.write_text("\n".join([json.dumps(extra), json.dumps(broken), "{not json"]) + "\n")
    with pytest.raises(CommandError) as err:
        call_command("rct_ingest", str(bad))
    assert "2 bad line(s)" in str(err.value)
    assert "line 2:" in str(err.value) and "created" in str(err.value)
    assert "line 3: not JSON" in str(err.value)
    assert InboundEvent.objects.count() == 2  # nothing of the bad file was loaded


# --- the workers' pull loop ------------------------------------------------------------------


def test_a_batch_claim_takes_one_step_per_aggregate_and_the_pull_loop_settles_all(
    client, ledger, netsuite
):
    for n in range(3):
        post_signed(client, invoice_event(invoice_id=f"in_pull{n}", number=f"PULL-{n}"))
    event = invoice_event(invoice_id="in_pv", amount=1000_00)
    post_signed(client, event)
    post_signed(client, _void_event(event["data"]["object"]))
    _dispatch_all()
    claims = steps_claim_batch(10)
    claimed = Step.objects.filter(pk__in=[pk for pk, _ in claims])
    # Four invoices' first steps; the void queues behind its invoice (same aggregate).
    assert sorted(s.journey.business_key for s in claimed) == [
        "in_pull0",
        "in_pull1",
        "in_pull2",
        "in_pv",
    ]
    assert {s.state for s in claimed} == {Step.State.RUNNING}
    assert steps_claim_batch(10) == []  # nothing else is free
    # The claims were taken: the loop runs them (and everything after) to the end.
    for step_id, token in claims:
        journey_advance(step_id, token=token)
    assert journeys_advance_due(budget_seconds=30) > 0  # the void, once its invoice posted
    states = dict(Journey.objects.values_list("business_key", "state"))
    assert set(states.values()) == {Journey.State.COMPLETED}, states
    assert len(emulator_records(netsuite)) == 5  # four invoices and one reversal
