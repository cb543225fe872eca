"""Journeys: list with the screen's filters, detail with steps, exceptions and entries."""

from __future__ import annotations

import pytest

from sync.models import Journey, Step
from tests.controltower.api.helpers import make_entry, make_journey
from tests.factories import make_ledger

pytestmark = pytest.mark.django_db

URL = "/api/v1/journeys/"


def _keys(resp) -> list[str]:
    assert resp.status_code == 200, resp.content
    return sorted(row["business_key"] for row in resp.json()["results"])


@pytest.fixture
def journeys(db):
    us = make_ledger("us-inc", "USD", "US", "1").entity
    de = make_ledger("de-gmbh", "EUR", "DE", "2").entity
    return {
        "done_us": make_journey(business_key="in_done_us", entity=us),
        "exc_de": make_journey(
            business_key="in_exc_de",
            entity=de,
            state=Journey.State.EXCEPTION,
            sla_state=Journey.SlaState.BREACHED,
        ),
        "run_us": make_journey(
            business_key="in_run_us",
            entity=us,
            state=Journey.State.RUNNING,
            sla_state=Journey.SlaState.AT_RISK,
        ),
        "pay_us": make_journey(
            business_key="pi_pay_us", entity=us, journey_type="payment_to_ledger"
        ),
    }


def test_list_shows_keys_states_and_entity_code(api, auditor, journeys):
    resp = api(auditor).get(URL)
    assert resp.json()["count"] == 4
    row = next(r for r in resp.json()["results"] if r["business_key"] == "in_exc_de")
    assert row["legal_entity"] == "de-gmbh"
    assert row["state"] == "exception"
    assert row["sla_state"] == "breached"
    assert row["correlation_id"] == str(journeys["exc_de"].correlation_id)
    assert "steps" not in row


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"business_key": "EXC"}, ["in_exc_de"]),
        ({"state": "exception"}, ["in_exc_de"]),
        ({"state": ["exception", "running"]}, ["in_exc_de", "in_run_us"]),
        ({"entity": "us-inc"}, ["in_done_us", "in_run_us", "pi_pay_us"]),
        ({"journey_type": "payment_to_ledger"}, ["pi_pay_us"]),
        ({"sla_state": "at_risk"}, ["in_run_us"]),
        ({"entity": "us-inc", "state": "completed"}, ["in_done_us", "pi_pay_us"]),
    ],
)
def test_filters_narrow_the_list(api, finance_ops, journeys, params, expected):
    assert _keys(api(finance_ops).get(URL, params)) == expected


def test_filter_by_correlation_id(api, manager, journeys):
    corr = journeys["run_us"].correlation_id
    assert _keys(api(manager).get(URL, {"correlation_id": str(corr)})) == ["in_run_us"]


def test_an_unknown_filter_value_is_a_400_naming_the_filter(api, manager, journeys):
    resp = api(manager).get(URL, {"entity": "nowhere", "state": "lost"})
    assert resp.status_code == 400
    assert set(resp.json()) == {"entity", "state"}


def test_list_of_25_journeys_costs_a_fixed_number_of_queries(
    api, auditor, django_assert_max_num_queries
):
    entity = make_ledger().entity
    for _ in range(25):
        make_journey(entity=entity)
    client = api(auditor)
    with django_assert_max_num_queries(4):  # token, roles, count, page
        resp = client.get(URL, {"limit": 100})
    assert len(resp.json()["results"]) == 25


def test_detail_has_steps_in_order_exceptions_and_entries_with_lines(api, auditor):
    ledger = make_ledger()
    journey = make_journey(
        business_key="in_detail",
        entity=ledger.entity,
        steps=[
            ("validate", Step.State.SUCCEEDED),
            ("link_customer", Step.State.SUCCEEDED),
            ("post_entry", Step.State.SUCCEEDED),
        ],
    )
    entry = make_entry(
        entity=ledger.entity,
        journey=journey,
        debit=ledger.ar,
        credit=ledger.revenue,
        amount_minor=4_200_00,
    )
    resp = api(auditor).get(f"{URL}{journey.pk}/")
    assert resp.status_code == 200
    body = resp.json()
    assert body["business_key"] == "in_detail"
    assert [(s["position"], s["name"]) for s in body["steps"]] == [
        (1, "validate"),
        (2, "link_customer"),
        (3, "post_entry"),
    ]
    assert body["exceptions"] == []
    [je] = body["journal_entries"]
    assert je["external_id"] == entry.external_id
    assert [
        (ln["account"]["number"], ln["debit_minor"], ln["credit_minor"]) for ln in je["lines"]
    ] == [
        ("1200", 420_000, 0),
        ("4000", 0, 420_000),
    ]


def test_detail_of_a_journey_with_many_steps_costs_a_fixed_number_of_queries(
    api, auditor, django_assert_max_num_queries
):
    ledger = make_ledger()
    journey = make_journey(
        entity=ledger.entity, steps=[(f"step_{i}", Step.State.SUCCEEDED) for i in range(20)]
    )
    for _ in range(3):
        make_entry(
            entity=ledger.entity,
            journey=journey,
            debit=ledger.ar,
            credit=ledger.revenue,
            amount_minor=100,
        )
    client = api(auditor)
    # token, roles, journey, steps, exceptions, entries, lines
    with django_assert_max_num_queries(7):
        resp = client.get(f"{URL}{journey.pk}/")
    assert len(resp.json()["steps"]) == 20
    assert len(resp.json()["journal_entries"]) == 3


def test_unknown_journey_is_404(api, auditor):
    assert api(auditor).get(f"{URL}999999/").status_code == 404
    assert api(auditor).get(f"{URL}abc/").status_code == 404
