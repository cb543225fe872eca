"""The ledger reports screen: trial balance and roll-forward of an entity and month, and the
drill-down from every figure to the lines behind it (whose total is that figure)."""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client

from sync.models import JournalEntry
from tests.controltower.api.helpers import make_journey
from tests.factories import UserFactory
from tests.sync.test_reports import APR, Books, build_books, post

pytestmark = pytest.mark.django_db

INDEX = "/reports/"
LINES = "/reports/lines/"
HX = {"HX-Request": "true"}
FIGURE = re.compile(r'<a class="figure" href="([^"]+)"[^>]*>([^<]+)</a>')
LINES_TOTAL = re.compile(r'id="lines-total">([^<]+)<')


@pytest.fixture
def books() -> Books:
    return build_books()


def login(client: Client, user) -> Client:
    client.force_login(user)
    return client


def figures(body: str) -> list[tuple[str, str]]:
    """``(drill-down url, figure as shown)`` for every figure link of the page."""
    return [(html.unescape(href), html.unescape(text)) for href, text in FIGURE.findall(body)]


def row(body: str, row_id: str) -> str:
    match = re.search(rf'<tr[^>]*id="{row_id}"[\s\S]*?</tr>', body)
    assert match, row_id
    return match[0]


def shown(fragment: str) -> list[str]:
    return [text for _, text in figures(fragment)]


# --- access -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [INDEX, f"{LINES}?entity=us-inc&period=2026-04&column=opening"])
def test_anonymous_user_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("url", [INDEX, f"{LINES}?entity=us-inc&period=2026-04&column=opening"])
def test_user_without_a_role_gets_403(client, url):
    login(client, UserFactory(username="olga"))
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("persona", ["finance_ops", "integration_admin", "manager", "auditor"])
def test_every_role_reads_the_reports(client, request, books, persona):
    login(client, request.getfixturevalue(persona))
    response = client.get(INDEX, {"entity": "us-inc", "period": "2026-04"})
    assert response.status_code == 200
    assert 'id="trial-balance-table"' in response.text


def test_nav_links_to_the_reports(client, finance_ops):
    body = login(client, finance_ops).get("/journeys/").text
    assert '<a href="/reports/">Reports</a>' in body


# --- the figures --------------------------------------------------------------------------------


def test_trial_balance_shows_the_figures_of_each_account(client, finance_ops, books):
    body = login(client, finance_ops).get(INDEX, {"entity": "us-inc", "period": "2026-04"}).text

    us = books.us
    assert 'Trial balance · <span class="mono">us-inc</span> · April 2026 · USD' in body
    assert shown(row(body, f"tb-{us.ar.pk}")) == [
        "1,500.00 USD",
        "600.00 USD",
        "70.00 USD",
        "2,030.00 USD",
    ]
    assert shown(row(body, f"tb-{us.deferred.pk}")) == [
        "-1,400.00 USD",
        "245.00 USD",
        "600.00 USD",
        "-1,755.00 USD",
    ]
    assert shown(row(body, f"tb-{us.revenue.pk}")) == [
        "-100.00 USD",
        "0.00 USD",
        "175.00 USD",
        "-275.00 USD",
    ]
    totals = row(body, "tb-totals")
    assert shown(totals) == ["0.00 USD", "845.00 USD", "845.00 USD", "0.00 USD"]
    assert "debits equal credits" in totals


def test_rollforward_shows_opening_billed_recognized_credited_closing(client, finance_ops, books):
    body = login(client, finance_ops).get(INDEX, {"entity": "us-inc", "period": "2026-04"}).text
    table = body[body.index('id="rollforward-table"') :]
    rows = re.findall(r'<tr class="rf-row[\s\S]*?</tr>', table)

    #        opening  billed  recognized  credited  closing  on the accounts  break
    assert [shown(r) for r in rows] == [
        [
            "300.00 USD",
            "0.00 USD",
            "25.00 USD",
            "50.00 USD",
            "225.00 USD",
            "225.00 USD",
            "0.00 USD",
        ],
        [
            "1,100.00 USD",
            "600.00 USD",
            "150.00 USD",
            "20.00 USD",
            "1,530.00 USD",
            "1,530.00 USD",
            "0.00 USD",
        ],
    ]
    assert ">API<" in rows[0] and ">PLAT<" in rows[1]
    assert shown(row(body, "rf-totals")) == [
        "1,400.00 USD",
        "600.00 USD",
        "175.00 USD",
        "70.00 USD",
        "1,755.00 USD",
        "1,755.00 USD",
        "0.00 USD",
    ]
    assert 'id="rf-break"' not in body


def test_a_break_in_the_rollforward_is_shown(client, finance_ops, books):
    us = books.us
    post(
        us.entity,
        JournalEntry.Kind.PAYMENT,
        APR.replace(day=12),
        (us.ar, 1_234, 0, ""),
        (us.deferred, 0, 1_234, "PLAT"),
    )
    body = login(client, finance_ops).get(INDEX, {"entity": "us-inc", "period": "2026-04"}).text
    assert 'id="rf-break"' in body
    assert shown(row(body, "rf-totals"))[-3:] == ["1,755.00 USD", "1,767.34 USD", "12.34 USD"]


def test_every_figure_links_to_lines_whose_total_is_the_figure(client, finance_ops, books):
    login(client, finance_ops)
    body = client.get(INDEX, {"entity": "us-inc", "period": "2026-04"}).text
    links = figures(body)
    assert (
        len(links) == 4 * 4 + 7 * 3
    )  # trial balance: 3 accounts + totals; roll-forward: 2 + totals

    for url, figure in links:
        assert url.startswith(f"{LINES}?entity=us-inc&period=2026-04&report=")
        drill = client.get(url)
        assert drill.status_code == 200, url
        assert LINES_TOTAL.findall(drill.text) == [figure], url


def test_drill_down_lists_the_entries_with_a_journey_link(client, finance_ops, books):
    us = books.us
    journey = make_journey(business_key="in_rpt_1", entity=us.entity)
    entry = post(
        us.entity,
        JournalEntry.Kind.INVOICE,
        APR.replace(day=25),
        (us.ar, 4_200, 0, ""),
        (us.deferred, 0, 4_200, "PLAT"),
        journey=journey,
        external_id="RCT-STRIPE-in_rpt_1",
    )
    login(client, finance_ops)
    body = client.get(
        LINES,
        {"entity": "us-inc", "period": "2026-04", "account": us.deferred.pk, "column": "credits"},
    ).text

    line = row(body, f"line-{entry.lines.get(line_no=2).pk}")
    for text in [
        "RCT-STRIPE-in_rpt_1",
        "2026-04-25",
        "Invoice",
        f'<a href="/journeys/{journey.pk}/">in_rpt_1</a>',
        "2400</span> Deferred revenue",
        "42.00 USD",
        "PLAT",
    ]:
        assert text in line, text
    assert books.entries["inv2"].external_id in body
    assert 'id="lines-total">642.00 USD<' in body
    assert "<strong>2</strong> lines" in body


def test_drill_down_leaves_out_unposted_and_other_entity_entries(client, finance_ops, books):
    login(client, finance_ops)
    body = client.get(LINES, {"entity": "us-inc", "period": "2026-04", "column": "closing"}).text
    for name in ("draft", "failed", "posting", "may", "de"):
        assert books.entries[name].external_id not in body, name
    for name in ("inv1", "rec1", "inv2", "cn1", "rev1", "rec2"):
        assert books.entries[name].external_id in body, name


def test_drill_down_of_lines_without_a_product(client, finance_ops, books):
    us = books.us
    post(
        us.entity,
        JournalEntry.Kind.INVOICE,
        APR,
        (us.ar, 300, 0, ""),
        (us.deferred, 0, 300, ""),
        external_id="RCT-NO-PRODUCT",
    )
    login(client, finance_ops)
    body = client.get(INDEX, {"entity": "us-inc", "period": "2026-04"}).text
    assert "(no product)" in body
    drill = client.get(
        LINES, {"entity": "us-inc", "period": "2026-04", "product": "", "column": "billed"}
    ).text
    assert "RCT-NO-PRODUCT" in drill
    assert 'id="lines-total">3.00 USD<' in drill


def test_another_entity_shows_only_its_own_books(client, finance_ops, books):
    body = login(client, finance_ops).get(INDEX, {"entity": "de-gmbh", "period": "2026-04"}).text
    assert shown(row(body, f"tb-{books.de.ar.pk}")) == [
        "0.00 EUR",
        "888.00 EUR",
        "0.00 EUR",
        "888.00 EUR",
    ]
    assert f"tb-{books.us.ar.pk}" not in body
    assert "USD</a>" not in body


def test_first_visit_picks_the_first_entity_and_this_month(client, finance_ops, books):
    response = login(client, finance_ops).get(INDEX)
    assert response.status_code == 200
    assert '<option value="de-gmbh" selected>' in response.text
    assert re.search(r'name="period" value="\d{4}-\d{2}"', response.text)


def test_htmx_request_gets_only_the_report(client, finance_ops, books):
    response = login(client, finance_ops).get(
        INDEX, {"entity": "us-inc", "period": "2026-03"}, headers=HX
    )
    body = response.text
    assert body.lstrip().startswith('<section id="report"')
    assert "<nav" not in body
    assert shown(row(body, "tb-totals")) == ["0.00 USD", "1,600.00 USD", "1,600.00 USD", "0.00 USD"]


# --- bad requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"entity": "xx-nope", "period": "2026-04"}, "No legal entity has the code “xx-nope”."),
        ({"entity": "us-inc", "period": "April"}, "Period must be a month written YYYY-MM"),
        ({"entity": "us-inc", "period": "2026-13"}, "is not a real month"),
    ],
)
def test_a_bad_entity_or_period_shows_the_error(client, finance_ops, books, params, message):
    response = login(client, finance_ops).get(INDEX, params)
    assert response.status_code == 400
    assert message in html.unescape(response.text)
    assert 'id="trial-balance-table"' not in response.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"column": "nope"}, "Unknown column “nope”."),
        ({"column": "debits", "report": "deferred_revenue"}, "has no column “debits”"),
        ({"column": "opening", "account": "abc"}, "No GL account abc in entity us-inc."),
        ({"column": "opening", "period": ""}, "Period must be a month"),
        ({"column": "opening", "entity": ""}, "Choose a legal entity."),
    ],
)
def test_a_bad_drill_down_shows_the_error(client, finance_ops, books, params, message):
    response = login(client, finance_ops).get(
        LINES, {"entity": "us-inc", "period": "2026-04", **params}
    )
    assert response.status_code == 400
    assert message in html.unescape(response.text)
    assert 'id="lines-table"' not in response.text


def test_drill_down_refuses_an_account_of_another_entity(client, finance_ops, books):
    response = login(client, finance_ops).get(
        LINES,
        {"entity": "us-inc", "period": "2026-04", "account": books.de.ar.pk, "column": "opening"},
    )
    assert response.status_code == 400
    assert f"No GL account {books.de.ar.pk} in entity us-inc." in response.text


# --- cost ---------------------------------------------------------------------------------------


def _more_books(books: Books, count: int) -> None:
    us = books.us
    for i in range(count):
        journey = make_journey(entity=us.entity)
        post(
            us.entity,
            JournalEntry.Kind.INVOICE,
            APR.replace(day=1 + i % 28),
            (us.ar, 1_000 + i, 0, ""),
            (us.deferred, 0, 1_000 + i, f"P{i % 7}"),
            journey=journey,
        )


def test_reports_page_reads_in_a_fixed_number_of_queries(
    client, finance_ops, books, django_assert_max_num_queries
):
    _more_books(books, 30)
    login(client, finance_ops)
    # session, user, roles, open-exception count, entities, trial balance (2), roll-forward (3)
    with django_assert_max_num_queries(11):  # + the open alerts count in the nav
        response = client.get(INDEX, {"entity": "us-inc", "period": "2026-04"})
    assert len(re.findall(r'<tr class="rf-row', response.text)) == 9  # API, P0..P6, PLAT


def test_drill_down_reads_in_a_fixed_number_of_queries(
    client, finance_ops, books, django_assert_max_num_queries
):
    _more_books(books, 60)
    login(client, finance_ops)
    # session, user, roles, open-exception count, entities, account, summary, page
    with django_assert_max_num_queries(9):  # + the open alerts count in the nav
        response = client.get(
            LINES,
            {
                "entity": "us-inc",
                "period": "2026-04",
                "account": books.us.ar.pk,
                "column": "debits",
            },
        )
    assert "<strong>61</strong> lines" in response.text
    assert len(re.findall(r'<tr id="line-', response.text)) == 50
    assert 'rel="next"' in response.text
