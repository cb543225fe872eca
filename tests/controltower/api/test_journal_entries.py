"""Journal entries with their lines: integers of minor units, balanced, filterable."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sync.models import FxRate, JournalEntry
from tests.conftest import drain
from tests.controltower.api.helpers import invoice_event, make_entry, make_journey, post_webhook
from tests.factories import make_ledger, map_product

pytestmark = pytest.mark.django_db

URL = "/api/v1/journal-entries/"
SIDES = ("debit_minor", "credit_minor", "functional_debit_minor", "functional_credit_minor")


def _ids(resp) -> list[int]:
    assert resp.status_code == 200, resp.content
    return sorted(row["id"] for row in resp.json()["results"])


def test_posted_invoice_entry_has_balanced_lines_in_minor_units(
    api, client, ledger, auditor, netsuite
):
    map_product("price_platform")
    post_webhook(client, invoice_event(invoice_id="in_je_1"))
    drain()
    entry = JournalEntry.objects.get(journey__business_key="in_je_1")

    body = api(auditor).get(f"{URL}{entry.pk}/").json()

    assert body["state"] == "posted"
    assert body["external_id"] == "RCT-STRIPE-in_je_1"
    assert body["erp_document_id"] == entry.erp_document_id != ""
    assert (body["legal_entity"], body["business_key"]) == ("us-inc", "in_je_1")
    assert (body["currency"], body["functional_currency"]) == ("USD", "USD")
    assert body["fx_rate"] is None
    # 12,000.00 subscription + 8% tax: Dr AR 12,960.00 / Cr deferred 12,000.00 / Cr tax 960.00
    assert [
        (ln["line_no"], ln["account"]["number"], ln["debit_minor"], ln["credit_minor"])
        for ln in body["lines"]
    ] == [(1, "1200", 1_296_000, 0), (2, "2400", 0, 1_200_000), (3, "2200", 0, 96_000)]
    for line in body["lines"]:
        assert all(type(line[side]) is int for side in SIDES)
    totals = body["totals"]
    assert totals["debit_minor"] == totals["credit_minor"] == 1_296_000
    assert totals["functional_debit_minor"] == totals["functional_credit_minor"] == 1_296_000
    assert sum(ln["debit_minor"] for ln in body["lines"]) == sum(
        ln["credit_minor"] for ln in body["lines"]
    )


def test_foreign_currency_entry_shows_the_rate_as_a_decimal_string(
    api, client, ledger, auditor, netsuite
):
    map_product("price_platform")
    FxRate.objects.create(
        rate_date=dt.date(2026, 4, 1),
        base_currency="EUR",
        quote_currency="USD",
        rate=Decimal("1.0842"),
    )
    post_webhook(
        client,
        invoice_event(invoice_id="in_eur", currency="eur", tax_rate=None, amount_minor=1_000_00),
    )
    drain()
    entry = JournalEntry.objects.get(journey__business_key="in_eur")
    body = api(auditor).get(f"{URL}{entry.pk}/").json()
    assert (body["currency"], body["functional_currency"]) == ("EUR", "USD")
    assert body["fx_rate"] == "1.0842000000"
    assert body["totals"]["debit_minor"] == body["totals"]["credit_minor"] == 100_000
    assert body["totals"]["functional_debit_minor"] == 108_420
    assert body["totals"]["functional_credit_minor"] == 108_420


@pytest.fixture
def entries(db):
    us = make_ledger("us-inc", "USD", "US", "1")
    de = make_ledger("de-gmbh", "EUR", "DE", "2")
    inv = make_journey(business_key="in_100", entity=us.entity)
    pay = make_journey(business_key="pi_200", entity=us.entity, journey_type="payment_to_ledger")
    inv_de = make_journey(business_key="in_300", entity=de.entity)
    return {
        "mar": make_entry(
            entity=us.entity,
            journey=inv,
            debit=us.ar,
            credit=us.revenue,
            amount_minor=100,
            posting_date=dt.date(2026, 3, 31),
            external_id="RCT-STRIPE-in_100",
        ),
        "apr": make_entry(
            entity=us.entity,
            journey=pay,
            debit=us.ar,
            credit=us.revenue,
            amount_minor=200,
            posting_date=dt.date(2026, 4, 15),
            state=JournalEntry.State.FAILED,
        ),
        "may": make_entry(
            entity=de.entity,
            journey=inv_de,
            debit=de.ar,
            credit=de.revenue,
            amount_minor=300,
            posting_date=dt.date(2026, 5, 1),
            state=JournalEntry.State.DRAFT,
        ),
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"entity": "us-inc"}, ["mar", "apr"]),
        ({"state": "posted"}, ["mar"]),
        ({"state": ["failed", "draft"]}, ["apr", "may"]),
        ({"business_key": "in_"}, ["mar", "may"]),
        ({"journey_type": "payment_to_ledger"}, ["apr"]),
        ({"external_id": "RCT-STRIPE-in_100"}, ["mar"]),
        ({"posting_date_from": "2026-04-01"}, ["apr", "may"]),
        ({"posting_date_to": "2026-04-30"}, ["mar", "apr"]),
        ({"posting_date_from": "2026-04-01", "posting_date_to": "2026-04-30"}, ["apr"]),
    ],
)
def test_filters_narrow_the_entries(api, finance_ops, entries, params, expected):
    assert _ids(api(finance_ops).get(URL, params)) == sorted(entries[k].pk for k in expected)


def test_list_of_22_entries_with_lines_costs_a_fixed_number_of_queries(
    api, auditor, django_assert_max_num_queries
):
    ledger = make_ledger()
    for i in range(22):
        journey = make_journey(entity=ledger.entity)
        make_entry(
            entity=ledger.entity,
            journey=journey,
            debit=ledger.ar,
            credit=ledger.revenue,
            amount_minor=1_000 + i,
        )
    client = api(auditor)
    with django_assert_max_num_queries(5):  # token, roles, count, page, lines
        resp = client.get(URL, {"limit": 100})
    rows = resp.json()["results"]
    assert len(rows) == 22
    assert all(len(r["lines"]) == 2 and r["lines"][0]["account"]["number"] for r in rows)
    assert all(r["totals"]["debit_minor"] == r["totals"]["credit_minor"] for r in rows)
