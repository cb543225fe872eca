"""customer_sync on real parts: customer events over HTTP to the live app, a real qcluster and
clock, the NetSuite emulator's customer master; and the invoice entry that then names the ERP
customer on its receivable line."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connectors.stripe import emulator as se
from sync.models import CustomerLink, JournalEntry, Journey
from tests.e2e.conftest import deliver, describe, record_lines, settled_journey
from tests.factories import make_ledger, map_product, map_tax
from tests.stripe_events import invoice_event

pytestmark = [pytest.mark.e2e]

T0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def ledger(transactional_db):
    ledger = make_ledger(subsidiary="7")
    map_product("price_platform")
    map_tax(ledger, "txr_us_8")
    return ledger  # cus_new has no link: its customer.created makes one


def customer_event(event_type: str, name: str, at: dt.datetime) -> dict:
    obj = se.make_customer(
        customer_id="cus_new",
        name=name,
        email="billing@new.example",
        metadata={"legal_entity": "us-inc"},
        created=T0,
    )
    return se.make_event(event_type, obj, created=at)


def completed(journey_type: str, business_key: str) -> Journey:
    journey = settled_journey(journey_type, business_key)
    assert journey.state == Journey.State.COMPLETED, describe(journey)
    return journey


def test_customer_created_then_updated_is_one_erp_customer_named_by_its_invoices(
    live_server, stack, ledger
):
    stack.start_workers()
    created = customer_event("customer.created", "New Co", T0)
    assert deliver(live_server, created).status_code == 200
    first = completed("customer_sync", f"cus_new:{created['id']}")

    link = CustomerLink.objects.get(billing_customer_id="cus_new")
    assert link.legal_entity == ledger.entity  # made from the customer's metadata
    record = stack.record("RCT-CUS-cus_new", "customer")
    assert record["fields"]["companyName"] == "New Co"
    assert record["fields"]["subsidiary"] == {"id": "7"}
    assert record["fields"]["email"] == "billing@new.example"
    assert record["write_count"] == 1
    assert link.erp_customer_id == str(record["id"]) == first.context["erp_customer_id"]

    updated = customer_event("customer.updated", "New Co Holdings", T0 + dt.timedelta(hours=1))
    invoice = invoice_event("cus_new", invoice_id="in_new", amount=500_00)
    assert [deliver(live_server, e).status_code for e in (updated, invoice)] == [200, 200]
    completed("customer_sync", f"cus_new:{updated['id']}")
    posted = completed("invoice_to_ledger", "in_new")

    [customer] = stack.records("customer")  # the same ERP record, updated in place
    assert customer["id"] == record["id"] and customer["write_count"] == 2
    assert customer["fields"]["companyName"] == "New Co Holdings"
    link.refresh_from_db()
    assert link.erp_customer_id == str(record["id"])

    # The invoice's receivable line names the ERP customer, in our ledger and in the ERP.
    entry = JournalEntry.objects.get(journey=posted)
    ar = entry.lines.get(account=ledger.ar)
    assert (ar.debit_minor, ar.customer_ref) == (540_00, str(record["id"]))
    erp_entry = stack.record("RCT-STRIPE-in_new")
    assert record_lines(erp_entry)[0] == ("1200", Decimal("540.00"), 0)
    assert erp_entry["lines"][0]["entity"] == str(record["id"])
