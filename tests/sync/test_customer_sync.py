"""customer_sync, through the real webhook, engine and NetSuite emulator (engine inline)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from connectors.stripe import emulator as se
from sync.models import AuditEntry, CustomerLink, ExceptionCase, JournalEntry, Journey, Step
from sync.services.journeys import journey_replay
from tests.conftest import drain, emulator_records
from tests.factories import link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import invoice_event, post_signed

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def ledger(db):
    return make_ledger(subsidiary="7")


def customer_event(
    customer: str = "cus_sync",
    *,
    name: str = "Acme Corp",
    entity: str | None = "us-inc",
    event_type: str = "customer.created",
    at: dt.datetime = T0,
    email: str = "billing@acme.example",
) -> dict[str, Any]:
    obj = se.make_customer(
        customer_id=customer,
        name=name,
        email=email,
        metadata={"legal_entity": entity} if entity else {},
        created=T0,
    )
    return se.make_event(event_type, obj, created=at)


def customers(netsuite: str) -> list[dict]:
    return emulator_records(netsuite, "customer")


def journeys(customer: str = "cus_sync"):
    return Journey.objects.filter(journey_type="customer_sync", aggregate_key=f"stripe:{customer}")


def test_created_customer_becomes_one_erp_customer_and_the_link_keeps_its_id(
    client, ledger, netsuite
):
    event = customer_event()
    post_signed(client, event)
    drain()

    journey = Journey.objects.get(journey_type="customer_sync")
    assert journey.business_key == f"cus_sync:{event['id']}"
    assert journey.state == Journey.State.COMPLETED
    assert journey.legal_entity == ledger.entity
    [record] = customers(netsuite)
    assert record["externalId"] == "RCT-CUS-cus_sync"
    assert record["fields"]["companyName"] == "Acme Corp"
    assert record["fields"]["subsidiary"] == {"id": "7"}
    assert record["fields"]["email"] == "billing@acme.example"
    assert record["write_count"] == 1
    link = CustomerLink.objects.get(billing_customer_id="cus_sync")
    assert link.legal_entity == ledger.entity
    assert link.erp_customer_id == str(record["id"])
    assert journey.context["erp_customer_id"] == str(record["id"])
    created = AuditEntry.objects.get(action="customer_link.create")
    assert created.after == {"legal_entity": "us-inc", "source": "customer metadata"}
    set_id = AuditEntry.objects.get(action="customer_link.set_erp_id")
    assert set_id.before == {"erp_customer_id": ""}
    assert set_id.after == {"erp_customer_id": str(record["id"])}
    assert set_id.correlation_id == str(journey.correlation_id)


def test_an_existing_link_is_used_as_it_is(client, ledger, netsuite):
    link_customer(ledger, "cus_sync")
    post_signed(client, customer_event(entity=None))
    drain()
    [record] = customers(netsuite)
    assert CustomerLink.objects.get().erp_customer_id == str(record["id"])
    assert not AuditEntry.objects.filter(action="customer_link.create").exists()


def test_update_changes_the_same_erp_record(client, ledger, netsuite):
    post_signed(client, customer_event())
    drain()
    [first] = customers(netsuite)
    post_signed(
        client,
        customer_event(
            name="Acme Corporation", event_type="customer.updated", at=T0 + dt.timedelta(hours=1)
        ),
    )
    drain()

    assert [j.state for j in journeys()] == [Journey.State.COMPLETED] * 2
    [record] = customers(netsuite)
    assert record["id"] == first["id"]
    assert record["fields"]["companyName"] == "Acme Corporation"
    assert record["write_count"] == 2
    assert CustomerLink.objects.get().erp_customer_id == str(record["id"])
    # the id did not change, so the second write records nothing new on the link
    assert AuditEntry.objects.filter(action="customer_link.set_erp_id").count() == 1


def test_the_same_event_three_times_writes_once(client, ledger, netsuite):
    event = customer_event()
    answers = [post_signed(client, event).json()["duplicate"] for _ in range(3)]
    drain()
    assert answers == [False, True, True]
    assert journeys().count() == 1
    [record] = customers(netsuite)
    assert record["write_count"] == 1


def test_rerunning_the_upsert_step_never_makes_a_second_erp_customer(client, ledger, netsuite):
    post_signed(client, customer_event())
    drain()
    step = Step.objects.get(journey__journey_type="customer_sync", name="upsert_erp_customer")
    Step.objects.filter(pk=step.pk).update(state=Step.State.PENDING)
    Journey.objects.filter(pk=step.journey_id).update(state=Journey.State.RUNNING)
    drain()
    [record] = customers(netsuite)
    assert record["write_count"] == 2
    assert CustomerLink.objects.get().erp_customer_id == str(record["id"])


def test_an_older_update_delivered_late_does_not_overwrite_the_newer_name(client, ledger, netsuite):
    post_signed(client, customer_event())
    drain()
    newer = customer_event(
        name="Acme Newest", event_type="customer.updated", at=T0 + dt.timedelta(hours=2)
    )
    older = customer_event(
        name="Acme Older", event_type="customer.updated", at=T0 + dt.timedelta(hours=1)
    )
    post_signed(client, newer)
    drain()
    post_signed(client, older)
    drain()

    [record] = customers(netsuite)
    assert record["fields"]["companyName"] == "Acme Newest"
    assert record["write_count"] == 2
    late = Journey.objects.get(business_key=f"cus_sync:{older['id']}")
    assert late.state == Journey.State.SKIPPED  # stale: recorded with its reason, not lost
    assert late.context["skipped"].startswith("superseded")
    skip_audit = AuditEntry.objects.get(action="journey.skip", object_id=str(late.pk))
    assert skip_audit.reason.startswith("superseded")
    step = late.steps.get(name="upsert_erp_customer")
    assert step.state == "skipped"
    assert step.response_snapshot["skipped"].startswith("superseded")
    assert "2026-04-01 11:00:00" in step.response_snapshot["skipped"]


def test_both_updates_waiting_then_the_newest_is_written_once(client, ledger, netsuite):
    """Created and updated arrive before either journey runs: the created journey is
    superseded, the updated one writes the newest data."""
    post_signed(client, customer_event())
    post_signed(
        client,
        customer_event(name="Acme v2", event_type="customer.updated", at=T0 + dt.timedelta(1)),
    )
    drain()
    [record] = customers(netsuite)
    assert record["fields"]["companyName"] == "Acme v2"
    assert record["write_count"] == 1
    # The created journey was superseded before it ran: skipped with its reason.
    assert sorted(j.state for j in journeys()) == [Journey.State.COMPLETED, Journey.State.SKIPPED]


def test_unknown_entity_is_a_missing_entity_mapping_then_replay_completes(
    client, ledger, netsuite, finance_ops
):
    post_signed(client, customer_event(entity="jp-kk"))
    drain()
    journey = journeys().get()
    assert journey.state == Journey.State.EXCEPTION
    case = ExceptionCase.objects.get(journey=journey)
    assert case.category == ExceptionCase.Category.MISSING_ENTITY_MAPPING
    assert case.summary == (
        "Customer cus_sync belongs to legal entity 'jp-kk', which is not set up. Add the legal "
        "entity (or fix the customer link), then replay."
    )
    assert case.context["entity_code"] == "jp-kk"
    assert case.step.name == "link"
    assert customers(netsuite) == []

    make_ledger(code="jp-kk", currency="JPY", country="JP", subsidiary="9")
    journey_replay(journey_id=journey.pk, actor=finance_ops, reason="entity added")
    drain()
    journey.refresh_from_db()
    assert journey.state == Journey.State.COMPLETED
    [record] = customers(netsuite)
    assert record["fields"]["subsidiary"] == {"id": "9"}


def test_customer_without_entity_hint_is_not_linked(client, ledger, netsuite):
    post_signed(client, customer_event(entity=None))
    drain()
    case = ExceptionCase.objects.get(journey__journey_type="customer_sync")
    assert case.category == ExceptionCase.Category.CUSTOMER_NOT_LINKED
    assert case.summary == (
        "Customer cus_sync is not linked to a legal entity. Add a customer link, then replay."
    )
    assert customers(netsuite) == []


def test_entity_without_subsidiary_is_a_missing_entity_mapping(client, netsuite):
    make_ledger(subsidiary="")
    post_signed(client, customer_event())
    drain()
    case = ExceptionCase.objects.get(journey__journey_type="customer_sync")
    assert case.category == ExceptionCase.Category.MISSING_ENTITY_MAPPING
    assert case.summary == "Legal entity us-inc has no NetSuite subsidiary id. Set it, then replay."


def test_an_invoice_after_the_sync_names_the_erp_customer(client, ledger, netsuite):
    map_product("price_platform")
    map_tax(ledger, "txr_us_8")
    post_signed(client, customer_event("cus_inv"))
    drain()
    post_signed(client, invoice_event("cus_inv", invoice_id="in_cus"))
    drain()
    [customer] = customers(netsuite)
    entry = JournalEntry.objects.get(journey__business_key="in_cus")
    assert entry.state == JournalEntry.State.POSTED
    ar = entry.lines.get(debit_minor__gt=0)
    assert ar.customer_ref == str(customer["id"])


def test_customers_in_one_batch_are_upserted_in_one_bulk_call(client, ledger, netsuite):
    """Four customer journeys claimed together: the three valid ones written in one batch
    request, each link keeping its ERP id (audited), the nameless one in the exception
    queue; a second batch with an update writes the same record again."""
    from connectors.stripe.webhooks import event_parse
    from sync.engine import journeys_advance_claimed, steps_claim_batch
    from sync.services.dispatch import inbound_events_dispatch_received
    from sync.services.inbox import inbound_events_receive_bulk
    from tests.conftest import emulator_requests

    events = [customer_event(f"cus_b{n}", name=f"Batch {n}") for n in range(3)]
    events.append(customer_event("cus_b3", name=""))
    inbound_events_receive_bulk(source_system="stripe", envelopes=[event_parse(e) for e in events])
    inbound_events_dispatch_received(limit=500)
    journeys_advance_claimed(steps_claim_batch(50))

    stored = {r["externalId"]: r for r in customers(netsuite)}
    assert set(stored) == {f"RCT-CUS-cus_b{n}" for n in range(3)}
    assert all(r["write_count"] == 1 for r in stored.values())
    puts = [r for r in emulator_requests(netsuite) if r["method"] == "PUT"]
    assert [p["path"].split("?")[0] for p in puts] == ["/services/rest/record/v1/customer"]
    for n in range(3):
        journey = journeys(f"cus_b{n}").get()
        assert journey.state == Journey.State.COMPLETED
        link = CustomerLink.objects.get(billing_customer_id=f"cus_b{n}")
        assert link.erp_customer_id == str(stored[f"RCT-CUS-cus_b{n}"]["id"])
        audit = AuditEntry.objects.get(action="customer_link.set_erp_id", object_id=str(link.pk))
        assert audit.correlation_id == str(journey.correlation_id)
        assert str(journey.correlation_id) in puts[0]["correlation_id"]
    nameless = journeys("cus_b3").get()
    assert nameless.state == Journey.State.EXCEPTION
    case = ExceptionCase.objects.get(journey=nameless)
    assert "has no name" in case.summary

    updates = [
        customer_event(
            f"cus_b{n}",
            name=f"Renamed {n}",
            event_type="customer.updated",
            at=T0 + dt.timedelta(hours=1),
        )
        for n in range(2)
    ]
    inbound_events_receive_bulk(source_system="stripe", envelopes=[event_parse(e) for e in updates])
    inbound_events_dispatch_received(limit=500)
    journeys_advance_claimed(steps_claim_batch(50))
    stored = {r["externalId"]: r for r in customers(netsuite)}
    assert stored["RCT-CUS-cus_b0"]["fields"]["companyName"] == "Renamed 0"
    assert stored["RCT-CUS-cus_b0"]["write_count"] == 2
    assert stored["RCT-CUS-cus_b2"]["write_count"] == 1
    # Same ERP ids: the links did not change, so no new audit entry.
    assert AuditEntry.objects.filter(action="customer_link.set_erp_id").count() == 3
