"""Ledger reports over the API: figures as integers of minor units, drill-down lines whose total
is the figure, and a 400 naming the parameter for a bad query."""

from __future__ import annotations

import pytest

from sync.models import JournalEntry
from tests.controltower.api.helpers import make_journey
from tests.factories import UserFactory
from tests.sync.test_reports import APR, Books, build_books, post

pytestmark = pytest.mark.django_db

TB = "/api/v1/reports/trial-balance/"
RF = "/api/v1/reports/deferred-revenue/"
LINES = "/api/v1/reports/lines/"
APRIL = {"entity": "us-inc", "period": "2026-04"}


@pytest.fixture
def books() -> Books:
    return build_books()


def ok(resp) -> dict:
    assert resp.status_code == 200, resp.content
    return resp.json()


# --- access -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [TB, RF, LINES])
def test_no_credentials_get_401(api, url):
    resp = api().get(url, {**APRIL, "column": "opening"})
    assert resp.status_code == 401
    assert resp["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("url", [TB, RF, LINES])
def test_a_user_without_a_role_gets_403(api, books, url):
    resp = api(UserFactory(username="olga")).get(url, {**APRIL, "column": "opening"})
    assert resp.status_code == 403
    assert resp.json()["detail"] == "Your account has no Control Tower role."


@pytest.mark.parametrize("persona", ["finance_ops", "integration_admin", "manager", "auditor"])
def test_every_role_reads_the_reports(api, request, books, persona):
    client = api(request.getfixturevalue(persona))
    for url in (TB, RF, LINES):
        assert client.get(url, {**APRIL, "column": "opening"}).status_code == 200


@pytest.mark.parametrize("url", [TB, RF, LINES])
def test_reports_are_read_only(api, auditor, books, url):
    assert api(auditor).post(url, APRIL, format="json").status_code == 405


# --- figures ------------------------------------------------------------------------------------


def test_trial_balance_in_minor_units(api, auditor, books):
    body = ok(api(auditor).get(TB, APRIL))

    assert (body["entity"], body["period"], body["currency"]) == ("us-inc", "2026-04", "USD")
    rows = {
        r["account"]["number"]: (
            r["opening_minor"],
            r["debits_minor"],
            r["credits_minor"],
            r["closing_minor"],
        )
        for r in body["rows"]
    }
    assert rows == {
        "1200": (150_000, 60_000, 7_000, 203_000),
        "2400": (-140_000, 24_500, 60_000, -175_500),
        "4000": (-10_000, 0, 17_500, -27_500),
    }
    assert body["rows"][0]["account"] == {
        "id": books.us.ar.pk,
        "number": "1200",
        "name": "Accounts receivable",
        "kind": "asset",
    }
    assert body["totals"] == {
        "opening_minor": 0,
        "debits_minor": 84_500,
        "credits_minor": 84_500,
        "closing_minor": 0,
    }
    assert body["is_balanced"] is True
    assert body["difference_minor"] == 0
    assert body["excluded_entries"] == 0
    assert all(type(v) is int for r in body["rows"] for k, v in r.items() if k.endswith("_minor"))


def test_deferred_revenue_rollforward_in_minor_units(api, auditor, books):
    body = ok(api(auditor).get(RF, APRIL))

    assert (body["entity"], body["period"], body["currency"]) == ("us-inc", "2026-04", "USD")
    assert [a["number"] for a in body["accounts"]] == ["2400"]
    assert body["rows"] == [
        {
            "product_code": "API",
            "opening_minor": 30_000,
            "billed_minor": 0,
            "recognized_minor": 2_500,
            "credited_minor": 5_000,
            "closing_minor": 22_500,
            "actual_closing_minor": 22_500,
            "break_minor": 0,
        },
        {
            "product_code": "PLAT",
            "opening_minor": 110_000,
            "billed_minor": 60_000,
            "recognized_minor": 15_000,
            "credited_minor": 2_000,
            "closing_minor": 153_000,
            "actual_closing_minor": 153_000,
            "break_minor": 0,
        },
    ]
    assert body["totals"] == {
        "product_code": None,
        "opening_minor": 140_000,
        "billed_minor": 60_000,
        "recognized_minor": 17_500,
        "credited_minor": 7_000,
        "closing_minor": 175_500,
        "actual_closing_minor": 175_500,
        "break_minor": 0,
    }
    assert body["has_break"] is False


def test_another_entity_sees_only_its_own_figures(api, auditor, books):
    body = ok(api(auditor).get(RF, {"entity": "de-gmbh", "period": "2026-04"}))
    assert body["currency"] == "EUR"
    assert [(r["product_code"], r["billed_minor"]) for r in body["rows"]] == [("PLAT", 88_800)]
    lines = ok(
        api(auditor).get(LINES, {"entity": "de-gmbh", "period": "2026-04", "column": "closing"})
    )
    assert {r["entry"]["external_id"] for r in lines["results"]} == {
        books.entries["de"].external_id
    }


# --- drill-down ---------------------------------------------------------------------------------


def test_lines_behind_a_trial_balance_figure_add_up_to_it(api, auditor, books):
    client = api(auditor)
    tb = ok(client.get(TB, APRIL))
    for row in tb["rows"]:
        for column in ("opening", "debits", "credits", "closing"):
            params = {**APRIL, "account": row["account"]["id"], "column": column}
            body = ok(client.get(LINES, params))
            assert body["total_minor"] == row[f"{column}_minor"], (row["account"], column)
            assert sum(r["signed_minor"] for r in body["results"]) == body["total_minor"]
            assert body["currency"] == "USD"


def test_lines_behind_a_rollforward_figure_add_up_to_it(api, auditor, books):
    client = api(auditor)
    rf = ok(client.get(RF, APRIL))
    for row in [*rf["rows"], rf["totals"]]:
        for column in ("opening", "billed", "recognized", "credited", "closing", "actual_closing"):
            params = {**APRIL, "column": column, "report": "deferred_revenue"}
            if row["product_code"] is not None:
                params["product"] = row["product_code"]
            body = ok(client.get(LINES, params))
            assert body["total_minor"] == row[f"{column}_minor"], (row["product_code"], column)


def test_a_line_names_its_entry_journey_and_account(api, auditor, books):
    us = books.us
    journey = make_journey(business_key="in_api_rpt", entity=us.entity)
    post(
        us.entity,
        JournalEntry.Kind.INVOICE,
        APR.replace(day=28),
        (us.ar, 4_200, 0, ""),
        (us.deferred, 0, 4_200, "PLAT"),
        journey=journey,
        external_id="RCT-STRIPE-in_api_rpt",
    )
    body = ok(api(auditor).get(LINES, {**APRIL, "product": "PLAT", "column": "billed"}))

    assert body["count"] == 2 and body["total_minor"] == 64_200
    line = body["results"][-1]
    assert line["entry"] == {
        "id": journey.journal_entries.get().pk,
        "external_id": "RCT-STRIPE-in_api_rpt",
        "kind": "invoice",
        "posting_date": "2026-04-28",
        "journey": journey.pk,
        "business_key": "in_api_rpt",
    }
    assert line["account"]["number"] == "2400"
    assert (line["functional_debit_minor"], line["functional_credit_minor"]) == (0, 4_200)
    assert (line["signed_minor"], line["product_code"]) == (4_200, "PLAT")
    assert body["results"][0]["entry"]["journey"] is None
    assert body["results"][0]["entry"]["business_key"] is None


def test_lines_are_paginated_and_the_total_covers_every_page(api, auditor, books):
    body = ok(api(auditor).get(LINES, {**APRIL, "column": "closing", "limit": 2}))
    assert body["count"] == 14  # the lines of the six entries posted up to April
    assert len(body["results"]) == 2 and body["next"]
    assert body["total_minor"] == 0  # every account together balances


def test_empty_product_means_lines_without_a_product(api, auditor, books):
    us = books.us
    post(us.entity, JournalEntry.Kind.INVOICE, APR, (us.ar, 300, 0, ""), (us.deferred, 0, 300, ""))
    client = api(auditor)
    blank = ok(client.get(LINES, {**APRIL, "product": "", "column": "billed"}))
    every = ok(client.get(LINES, {**APRIL, "column": "billed"}))
    assert (blank["count"], blank["total_minor"]) == (1, 300)
    assert (every["count"], every["total_minor"]) == (2, 60_300)


# --- bad queries --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [TB, RF, LINES])
@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"entity": "xx-nope"}, "entity", "No legal entity has the code “xx-nope”."),
        ({"period": "2026-4"}, "period", "Period must be a month written YYYY-MM"),
        ({"period": "2026-13"}, "period", "is not a real month"),
        ({"period": None}, "period", "This field is required."),
        ({"entity": None}, "entity", "This field is required."),
    ],
)
def test_a_bad_entity_or_period_is_a_400_naming_it(
    api, auditor, books, url, params, field, message
):
    query = {**APRIL, "column": "opening", **params}
    resp = api(auditor).get(url, {k: v for k, v in query.items() if v is not None})
    assert resp.status_code == 400
    assert message in resp.json()[field][0]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"column": "nope"}, "column", '"nope" is not a valid choice.'),
        ({"column": "debits", "report": "deferred_revenue"}, "column", "has no column “debits”"),
        ({"column": "billed", "report": "trial_balance"}, "column", "has no column “billed”"),
        ({"column": "opening", "report": "p_and_l"}, "report", "not a valid choice"),
        ({"column": "opening", "account": "abc"}, "account", "A valid integer is required."),
        ({"column": "opening", "account": 999_999}, "account", "No GL account 999999"),
        ({}, "column", "This field is required."),
    ],
)
def test_a_bad_drill_down_is_a_400_naming_the_parameter(
    api, auditor, books, params, field, message
):
    resp = api(auditor).get(LINES, {**APRIL, **params})
    assert resp.status_code == 400
    assert message in resp.json()[field][0]


def test_an_account_of_another_entity_is_refused(api, auditor, books):
    resp = api(auditor).get(LINES, {**APRIL, "account": books.de.ar.pk, "column": "opening"})
    assert resp.status_code == 400
    assert resp.json() == {"account": [f"No GL account {books.de.ar.pk} in entity us-inc."]}


# --- cost ---------------------------------------------------------------------------------------


def _more_books(books: Books, count: int) -> None:
    us = books.us
    for i in range(count):
        post(
            us.entity,
            JournalEntry.Kind.INVOICE,
            APR.replace(day=1 + i % 28),
            (us.ar, 1_000 + i, 0, ""),
            (us.deferred, 0, 1_000 + i, f"P{i % 7}"),
            journey=make_journey(entity=us.entity),
        )


def test_reports_cost_a_fixed_number_of_queries(api, auditor, books, django_assert_max_num_queries):
    _more_books(books, 30)
    client = api(auditor)
    with django_assert_max_num_queries(5):  # token, roles, entity, aggregate, excluded count
        assert len(ok(client.get(TB, APRIL))["rows"]) == 3
    with django_assert_max_num_queries(6):  # token, roles, entity, accounts, aggregate, excluded
        assert len(ok(client.get(RF, APRIL))["rows"]) == 9


def test_lines_cost_a_fixed_number_of_queries(api, auditor, books, django_assert_max_num_queries):
    _more_books(books, 60)
    client = api(auditor)
    params = {**APRIL, "account": books.us.ar.pk, "column": "debits", "limit": 100}
    with django_assert_max_num_queries(6):  # token, roles, entity, account, summary, page
        body = ok(client.get(LINES, params))
    assert body["count"] == len(body["results"]) == 61
    assert sum(1 for r in body["results"] if r["entry"]["business_key"]) == 60


def test_schema_lists_the_report_routes(client):
    paths = client.get("/api/schema/", {"format": "json"}).json()["paths"]
    for path in (TB, RF, LINES):
        assert set(paths[path]) == {"get"}
        assert {"200", "400", "403"} <= set(paths[path]["get"]["responses"])
