"""The exception queue over the API, fed by the real invoice flow."""

from __future__ import annotations

import pytest

from sync.models import ExceptionCase, Journey, Step
from tests.conftest import drain
from tests.controltower.api.helpers import invoice_event, make_journey, post_webhook
from tests.factories import make_ledger, map_product

pytestmark = pytest.mark.django_db

URL = "/api/v1/exceptions/"


def _ids(resp) -> list[int]:
    assert resp.status_code == 200, resp.content
    return sorted(row["id"] for row in resp.json()["results"])


def test_an_unmapped_price_shows_up_as_an_unmapped_product_exception(
    api, client, ledger, finance_ops, netsuite
):
    post_webhook(client, invoice_event(invoice_id="in_nomap", price="price_unknown"))
    drain()

    resp = api(finance_ops).get(URL)
    [row] = resp.json()["results"]
    journey = Journey.objects.get(business_key="in_nomap")
    assert row["journey"] == journey.pk
    assert row["business_key"] == "in_nomap"
    assert row["journey_type"] == "invoice_to_ledger"
    assert row["correlation_id"] == str(journey.correlation_id)
    assert row["category"] == "unmapped_product"
    assert row["state"] == "open"
    assert row["step"] == "map_accounts"
    assert row["legal_entity"] == "us-inc"
    assert "price_unknown" in row["summary"]
    assert row["context"]["missing"]["unmapped_product"] == ["price_unknown"]


@pytest.fixture
def queue(db):
    us = make_ledger("us-inc", "USD", "US", "1").entity
    de = make_ledger("de-gmbh", "EUR", "DE", "2").entity
    made = {}
    for key, entity, category, state in [
        ("in_a", us, ExceptionCase.Category.UNMAPPED_PRODUCT, ExceptionCase.State.OPEN),
        ("in_b", de, ExceptionCase.Category.MISSING_FX_RATE, ExceptionCase.State.OPEN),
        ("in_c", us, ExceptionCase.Category.UNMAPPED_PRODUCT, ExceptionCase.State.RESOLVED),
    ]:
        journey = make_journey(
            business_key=key,
            entity=entity,
            state=Journey.State.EXCEPTION,
            steps=[("map_accounts", Step.State.FAILED)],
        )
        made[key] = ExceptionCase.objects.create(
            journey=journey,
            step=journey.steps.get(),
            category=category,
            state=state,
            legal_entity=entity,
            summary=f"Invoice {key} cannot be posted.",
        )
    return made


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "unmapped_product"}, ["in_a", "in_c"]),
        ({"state": "open"}, ["in_a", "in_b"]),
        ({"entity": "de-gmbh"}, ["in_b"]),
        ({"business_key": "in_c"}, ["in_c"]),
        ({"q": "in_b"}, ["in_b"]),
        ({"category": "unmapped_product", "state": "open"}, ["in_a"]),
    ],
)
def test_filters_narrow_the_queue(api, manager, queue, params, expected):
    assert _ids(api(manager).get(URL, params)) == sorted(queue[k].pk for k in expected)


def test_search_by_correlation_id(api, manager, queue):
    corr = str(queue["in_b"].journey.correlation_id)
    assert _ids(api(manager).get(URL, {"q": corr})) == [queue["in_b"].pk]


def test_list_of_24_exceptions_costs_a_fixed_number_of_queries(
    api, auditor, django_assert_max_num_queries
):
    entity = make_ledger().entity
    for _ in range(24):
        journey = make_journey(
            entity=entity, state=Journey.State.EXCEPTION, steps=[("validate", "failed")]
        )
        ExceptionCase.objects.create(
            journey=journey,
            step=journey.steps.get(),
            legal_entity=entity,
            category=ExceptionCase.Category.INVALID_PAYLOAD,
            summary="Bad invoice.",
            assignee=auditor,
        )
    client = api(auditor)
    with django_assert_max_num_queries(4):  # token, roles, count, page
        resp = client.get(URL, {"limit": 100})
    rows = resp.json()["results"]
    assert len(rows) == 24 and {r["assignee"] for r in rows} == {"aude"}


def test_exception_detail(api, auditor, queue):
    case = queue["in_b"]
    body = api(auditor).get(f"{URL}{case.pk}/").json()
    assert (body["id"], body["category"], body["legal_entity"]) == (
        case.pk,
        "missing_fx_rate",
        "de-gmbh",
    )


def test_fixing_the_mapping_is_not_enough_the_exception_stays_until_replay(
    api, client, ledger, auditor, netsuite
):
    post_webhook(client, invoice_event(invoice_id="in_wait", price="price_later"))
    drain()
    map_product("price_later")
    drain()
    assert [r["state"] for r in api(auditor).get(URL).json()["results"]] == ["open"]
