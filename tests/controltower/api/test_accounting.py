"""API: recognition runs, period close, revenue schedules and deliveries."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.stripe import emulator as se
from sync.models import AccountingPeriod, AuditEntry, JournalEntry, RevenueScheduleLine
from tests.conftest import drain
from tests.factories import map_product
from tests.stripe_events import post_signed

pytestmark = pytest.mark.django_db
V1 = "/api/v1/"


def ts(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def april_invoice(client, ledger, netsuite):
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
        invoice_id="in_api",
        created=ts(dt.date(2026, 4, 1)),
        finalized_at=ts(dt.date(2026, 4, 1)),
    )
    post_signed(client, se.make_event("invoice.finalized", obj))
    drain()


def test_finance_ops_runs_recognition_then_closes_the_period(api, finance_ops, april_invoice):
    body = {"entity": "us-inc", "period": "2026-04", "reason": "April close"}
    resp = api(finance_ops).post(f"{V1}recognition-runs/", body, format="json")
    assert resp.status_code == 202
    assert [j["business_key"] for j in resp.json()["journeys"]] == ["us-inc:2026-04:USD:1"]
    drain()
    again = api(finance_ops).post(f"{V1}recognition-runs/", body, format="json").json()
    assert again["nothing_due"] is True and again["journeys"] == []
    assert JournalEntry.objects.filter(kind="recognition", state="posted").count() == 1

    closed = api(finance_ops).post(f"{V1}periods/close/", body, format="json")
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert AccountingPeriod.objects.get().period == dt.date(2026, 4, 1)
    late = api(finance_ops).post(f"{V1}recognition-runs/", body, format="json")
    assert late.status_code == 409 and "closed" in late.json()["detail"]


@pytest.mark.parametrize("role", ["auditor", "manager", "integration_admin"])
def test_only_finance_ops_may_run_or_close(api, request, april_invoice, role):
    user = request.getfixturevalue(role)
    body = {"entity": "us-inc", "period": "2026-04"}
    assert api(user).post(f"{V1}recognition-runs/", body, format="json").status_code == 403
    assert api(user).post(f"{V1}periods/close/", body, format="json").status_code == 403
    assert not AuditEntry.objects.filter(action__in=["recognition.run", "period.close"]).exists()
    assert RevenueScheduleLine.objects.get().state == "planned"


def test_bad_input_names_the_field(api, finance_ops, ledger):
    resp = api(finance_ops).post(
        f"{V1}recognition-runs/", {"entity": "nope", "period": "April"}, format="json"
    )
    assert resp.status_code == 400 and set(resp.json()) == {"entity", "period"}


def test_schedules_list_with_lines_for_every_role(api, auditor, april_invoice):
    resp = api(auditor).get(f"{V1}revenue-schedules/", {"invoice": "in_api"})
    [schedule] = resp.json()["results"]
    assert schedule["total_minor"] == 90_00 and schedule["revenue_type"] == "ratable"
    assert [(ln["period"], ln["amount_minor"], ln["state"]) for ln in schedule["lines"]] == [
        ("2026-04-01", 90_00, "planned")
    ]
