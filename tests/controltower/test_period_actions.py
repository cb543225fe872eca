"""Reports screen: finance ops run recognition and close the month from the page."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.stripe import emulator as se
from sync.models import AccountingPeriod, AuditEntry, JournalEntry, Journey
from tests.conftest import drain
from tests.factories import link_customer, make_ledger, map_product
from tests.stripe_events import post_signed

pytestmark = pytest.mark.django_db
URL = "/reports/period/"


def ts(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def april(client, netsuite):
    ledger = make_ledger()
    link_customer(ledger, "cus_acme")
    map_product("price_m")
    obj = se.make_invoice(
        "cus_acme",
        [
            se.LineSpec(
                amount_minor=90_00,
                price_id="price_m",
                period_start=ts(dt.date(2026, 4, 1)),
                period_end=ts(dt.date(2026, 5, 1)),
            )
        ],
        currency="usd",
        invoice_id="in_ui",
        created=ts(dt.date(2026, 4, 1)),
        finalized_at=ts(dt.date(2026, 4, 1)),
    )
    post_signed(client, se.make_event("invoice.finalized", obj))
    drain()
    return ledger


def test_finance_ops_runs_recognition_and_closes_from_the_report(client, april, finance_ops):
    client.force_login(finance_ops)
    page = client.get("/reports/", {"entity": "us-inc", "period": "2026-04"})
    assert "Run revenue recognition up to April 2026" in page.content.decode()

    resp = client.post(
        URL,
        {"entity": "us-inc", "period": "2026-04", "action": "recognize", "reason": "April close"},
        follow=True,
    )
    assert "Recognition started: us-inc:2026-04:USD:1." in resp.content.decode()
    drain()
    assert JournalEntry.objects.get(kind="recognition").state == "posted"
    assert AuditEntry.objects.get(action="recognition.run").reason == "April close"

    resp = client.post(
        URL, {"entity": "us-inc", "period": "2026-04", "action": "close"}, follow=True
    )
    assert "us-inc 2026-04 is closed." in resp.content.decode()
    assert AccountingPeriod.objects.get().state == "closed"
    again = client.post(
        URL, {"entity": "us-inc", "period": "2026-04", "action": "recognize"}, follow=True
    )
    assert "is closed; late items are recognized in 2026-05" in again.content.decode()


@pytest.mark.parametrize("role", ["auditor", "manager"])
def test_read_only_roles_see_no_actions_and_get_403(client, april, request, role):
    client.force_login(request.getfixturevalue(role))
    page = client.get("/reports/", {"entity": "us-inc", "period": "2026-04"})
    assert "Run revenue recognition" not in page.content.decode()
    resp = client.post(URL, {"entity": "us-inc", "period": "2026-04", "action": "recognize"})
    assert resp.status_code == 403
    assert not Journey.objects.filter(journey_type="revenue_recognition").exists()
    assert not AuditEntry.objects.filter(action="recognition.run").exists()
