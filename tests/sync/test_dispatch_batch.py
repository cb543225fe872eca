"""Dispatch in batches: one transaction and bulk writes for many inbox events, with the same
outcome per event as dispatching them one by one, and a one-by-one fallback."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connectors.stripe.webhooks import event_parse
from sync.models import Customer, InboundEvent, Journey, SlaPolicy, Step
from sync.services import dispatch
from sync.services.dispatch import inbound_event_dispatch, inbound_events_dispatch_received
from sync.services.inbox import inbound_events_receive_bulk
from tests.stripe_events import customer_event, invoice_event

pytestmark = pytest.mark.django_db


def _receive(*events: dict) -> None:
    inbound_events_receive_bulk(source_system="stripe", envelopes=[event_parse(e) for e in events])


def _state(event: dict) -> tuple[str, str]:
    row = InboundEvent.objects.get(source_event_id=event["id"])
    return row.state, row.state_reason


def test_a_batch_starts_each_journey_once_and_says_what_it_did_with_every_event():
    SlaPolicy.objects.create(journey_type="invoice_to_ledger", warning_minutes=5, target_minutes=9)
    old = invoice_event(invoice_id="in_old")
    _receive(old)
    inbound_event_dispatch(event_id=InboundEvent.objects.get().pk)
    old_journey = Journey.objects.get(business_key="in_old")

    first = invoice_event(invoice_id="in_new", number="N-1")
    again = invoice_event(invoice_id="in_new", number="N-1")  # same invoice, new event id
    again["created"] = first["created"] + 5
    old_again = invoice_event(invoice_id="in_old")
    customer = customer_event("cus_batch", entity="US01")
    broken = customer_event("cus_broken", entity="US01")
    broken["data"]["object"]["currency"] = "dollars"  # not an ISO-4217 code
    _receive(first, again, old_again, customer, broken)

    assert inbound_events_dispatch_received(limit=50) == 5

    new = Journey.objects.get(business_key="in_new")
    assert _state(first) == ("dispatched", f"started journey {new.pk}")
    assert _state(again) == ("dispatched", f"journey {new.pk} already exists for in_new")
    assert _state(old_again) == (
        "dispatched",
        f"journey {old_journey.pk} already exists for in_old",
    )
    state, reason = _state(broken)
    assert state == "failed" and "currency" in reason
    assert _state(customer)[0] == "dispatched"  # customer_sync starts, and the master data
    assert Customer.objects.filter(source_id="cus_batch").exists()
    assert not Customer.objects.filter(source_id="cus_broken").exists()
    # Every new journey has all its steps, the SLA policy applied from the business time.
    assert Journey.objects.count() == 3
    assert list(new.steps.order_by("position").values_list("name", flat=True)) == [
        "validate",
        "link_customer",
        "map_accounts",
        "build_entry",
        "post_entry",
        "confirm_in_erp",
    ]
    assert new.sla_due_at - new.business_at == dt.timedelta(minutes=9)
    assert new.sla_warning_at - new.business_at == dt.timedelta(minutes=5)
    assert new.source_event.source_event_id == first["id"]
    assert Step.objects.filter(idempotency_key="invoice_to_ledger:in_new:validate").count() == 1
    # The batch's steps are the rows one-by-one dispatch makes (the first journey's).
    fields = ("position", "state", "attempts", "error_class", "error_message", "claim_token")
    made_alone = list(old_journey.steps.order_by("position").values_list(*fields))
    assert list(new.steps.order_by("position").values_list(*fields)) == made_alone
    assert made_alone[0] == (1, "pending", 0, "", "", None)


def test_the_batch_costs_the_same_few_queries_however_many_events():
    events = [invoice_event(invoice_id=f"in_q{i}", number=f"Q-{i}") for i in range(40)]
    _receive(*events)
    with CaptureQueriesContext(connection) as queries:
        assert inbound_events_dispatch_received(limit=100) == 40
    assert Journey.objects.count() == 40 and Step.objects.count() == 240
    # Lock the events, read policies, read existing journeys, insert journeys, insert steps,
    # update the events (plus the transaction's own statements) — not a dozen per event.
    assert len(queries.captured_queries) <= 12, [q["sql"][:80] for q in queries]


def test_a_failed_batch_keeps_nothing_and_falls_back_to_one_by_one(monkeypatch):
    events = [invoice_event(invoice_id=f"in_f{i}", number=f"F-{i}") for i in range(3)]
    _receive(*events)
    real = dispatch._dispatch_batch

    def half_then_fail(batch):
        real(batch)  # writes journeys, then fails: the whole batch must be rolled back
        raise RuntimeError("simulated failure after the bulk writes")

    monkeypatch.setattr(dispatch, "_dispatch_batch", half_then_fail)
    assert inbound_events_dispatch_received(limit=10) == 3
    # Each event dispatched once, by the fallback: one journey each, no duplicate steps.
    assert Journey.objects.count() == 3
    assert Step.objects.count() == 18
    assert set(InboundEvent.objects.values_list("state", flat=True)) == {"dispatched"}
    for event in events:
        assert _state(event)[1].startswith("started journey ")


def test_an_event_the_database_refuses_is_marked_failed_and_does_not_hold_up_the_rest(
    monkeypatch,
):
    good = [invoice_event(invoice_id=f"in_g{i}", number=f"G-{i}") for i in range(2)]
    bad = customer_event("cus_long", entity="US01")
    bad["created"] = good[0]["created"] - 60  # oldest: it comes first in the batch
    _receive(bad, *good)
    real = dispatch._master_row

    def refuse(event):
        if event.source_event_id == bad["id"]:
            raise ValueError("simulated: a value the database refuses")
        return real(event)

    monkeypatch.setattr(dispatch, "_master_row", refuse)
    assert inbound_events_dispatch_received(limit=10) == 3
    state, reason = _state(bad)
    assert state == "failed" and "simulated: a value the database refuses" in reason
    assert [_state(e)[0] for e in good] == ["dispatched", "dispatched"]
    assert Journey.objects.filter(business_key__startswith="in_g").count() == 2


def test_the_inbox_is_indexed_for_dispatch_order_and_payment_links():
    """Without these, each dispatch batch sorts the whole backlog and each payment scans
    every link event: quadratic in a quarter-end burst."""
    if connection.vendor != "postgresql":
        pytest.skip("the GIN index is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'sync_inboundevent'"
        )
        indexes = dict(cursor.fetchall())
    assert "WHERE ((state)::text = 'received'::text)" in indexes["inbox_received_idx"]
    for name, path in (
        ("inbox_link_pay_intent_idx", "{data,object,payment,payment_intent}"),
        ("inbox_link_intent_idx", "{data,object,payment_intent}"),
        ("inbox_link_pay_charge_idx", "{data,object,payment,charge}"),
        ("inbox_link_charge_idx", "{data,object,charge}"),
    ):
        assert f"(payload #>> '{path}'::text[])" in indexes[name], name
        assert "'invoice_payment.paid'::text" in indexes[name]
    assert "inbox_payment_link_gin" not in indexes
    # (That the links query is answered from them: test_inbox_lookup.)


def test_master_data_in_one_batch_keeps_the_newest_version_and_says_which_were_stale():
    newer = customer_event("cus_v", entity="us-inc", name="Newer Name")
    older = customer_event("cus_v", entity="us-inc", name="Older Name")
    older["type"] = newer["type"] = "customer.updated"
    older["created"] = newer["created"] - 60
    other = customer_event("cus_w", entity="us-inc", name="Other")
    _receive(newer, other)
    inbound_events_dispatch_received(limit=10)
    _receive(older)  # delivered late, in a later batch
    late = list(InboundEvent.objects.filter(source_event_id=older["id"]))
    (outcome,) = dispatch.master_data_apply(late)
    assert outcome.startswith("stale: we hold a newer version")
    inbound_events_dispatch_received(limit=10)
    assert Customer.objects.get(source_id="cus_v").name == "Newer Name"
    assert Customer.objects.get(source_id="cus_w").name == "Other"
    # Both versions in one batch, the older first (source order): the newer one is kept.
    first = customer_event("cus_x", entity="us-inc", name="First")
    second = customer_event("cus_x", entity="us-inc", name="Second")
    first["created"] = second["created"] - 30
    _receive(first, second)
    events = list(
        InboundEvent.objects.filter(source_event_id__in=[first["id"], second["id"]]).order_by(
            "occurred_at"
        )
    )
    assert dispatch.master_data_apply(events) == ["applied", "applied"]
    assert Customer.objects.get(source_id="cus_x").name == "Second"


def test_an_older_version_never_overwrites_a_newer_one_written_meanwhile():
    """The upsert's own guard: between our read of the versions and our write, another
    dispatcher stored a newer version; ours (older) must not replace it."""
    from django.utils import timezone

    now = timezone.now()
    Customer.objects.create(
        source_system="stripe", source_id="cus_race", name="Newest", source_updated_at=now
    )
    dispatch._upsert_newer(
        Customer,
        {
            ("stripe", "cus_race"): {
                "name": "Older",
                "email": "",
                "country": "",
                "currency": "usd",
                "metadata": {},
                "source_updated_at": now - dt.timedelta(minutes=5),
            },
            ("stripe", "cus_new"): {
                "name": "Fresh",
                "email": "",
                "country": "",
                "currency": "usd",
                "metadata": {"k": "v"},
                "source_updated_at": now,
            },
        },
    )
    assert Customer.objects.get(source_id="cus_race").name == "Newest"
    fresh = Customer.objects.get(source_id="cus_new")
    assert (fresh.name, fresh.metadata) == ("Fresh", {"k": "v"})
    dispatch._upsert_newer(
        Customer,
        {
            ("stripe", "cus_race"): {
                "name": "Later",
                "email": "",
                "country": "",
                "currency": "usd",
                "metadata": {},
                "source_updated_at": now + dt.timedelta(minutes=5),
            }
        },
    )
    assert Customer.objects.get(source_id="cus_race").name == "Later"
