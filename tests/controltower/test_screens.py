"""The screens: exception queue, journeys, journey detail, replay, login, money display.

Data comes through the real flow: a signed Stripe webhook into the inbox, the journey engine
run inline (``drain``), a real NetSuite emulator for posting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from connectors.stripe.emulator import (
    LineSpec,
    TaxSpec,
    make_customer,
    make_event,
    make_invoice,
    serialize,
    sign_payload,
)
from controltower.templatetags.money import format_minor, money
from controltower.templatetags.tower import age
from sync.models import AuditEntry, ExceptionCase, JournalEntry, Journey
from tests.conftest import drain
from tests.factories import UserFactory, link_customer, make_ledger, map_product, map_tax

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}
Cat = ExceptionCase.Category


# --- driving the real flow --------------------------------------------------------------------


def deliver(event: dict, client: Client | None = None) -> None:
    """POST one signed Stripe event to our webhook, as Stripe does."""
    body = serialize(event)
    response = (client or Client()).post(
        reverse("webhook-stripe"),
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": sign_payload(body, settings.STRIPE_WEBHOOK_SECRET)},
    )
    assert response.status_code == 200, response.content


def deliver_invoice(
    client: Client | None = None,
    *,
    customer: str = "cus_acme",
    price: str = "price_platform",
    amount_minor: int = 123456,
    currency: str = "usd",
    tax: TaxSpec | None = None,
    description: str = "Platform subscription",
) -> dict:
    """An ``invoice.finalized`` webhook with one line; returns the invoice."""
    invoice = make_invoice(
        customer,
        [
            LineSpec(
                amount_minor=amount_minor,
                price_id=price,
                description=description,
                taxes=(tax,) if tax else (),
            )
        ],
        currency=currency,
    )
    deliver(make_event("invoice.finalized", invoice), client)
    return invoice


def deliver_unlinked_customer_invoice(customer: str = "cus_stranger") -> dict:
    """A known billing customer with no legal entity, then an invoice of theirs: the journey
    stops at link_customer (an unknown customer would be waited for, not queued)."""
    deliver(make_event("customer.created", make_customer(customer_id=customer, metadata={})))
    return deliver_invoice(customer=customer, price="price_other", amount_minor=4900)


@dataclass
class Stuck:
    """A journey stopped in the queue because its price has no product mapping."""

    invoice: dict
    journey: Journey
    case: ExceptionCase


def stuck_on_unmapped_product(price: str = "price_platform", customer: str = "cus_acme") -> Stuck:
    invoice = deliver_invoice(price=price, customer=customer)
    drain()
    journey = Journey.objects.get(business_key=invoice["id"])
    assert journey.state == Journey.State.EXCEPTION
    case = ExceptionCase.objects.get(journey=journey)
    assert case.category == Cat.UNMAPPED_PRODUCT
    return Stuck(invoice, journey, case)


@pytest.fixture
def ledger(db):
    ledger = make_ledger()
    link_customer(ledger, "cus_acme")
    return ledger


@pytest.fixture
def stuck(ledger, netsuite) -> Stuck:
    return stuck_on_unmapped_product()


def rows(html: str) -> list[str]:
    """The ``<tr id="exception-N">`` rows of the queue."""
    return re.findall(r'<tr id="exception-\d+"[\s\S]*?</tr>', html)


def login(client: Client, user) -> Client:
    client.force_login(user)
    return client


# --- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/", "/exceptions/", "/journeys/", "/journeys/1/"])
def test_anonymous_user_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_htmx_request_without_session_asks_the_browser_to_load_login(client):
    response = client.get(reverse("exception-list"), headers=HX)
    assert response["HX-Redirect"] == reverse("login")


def test_user_without_a_role_gets_403(client):
    login(client, UserFactory(username="nobody"))
    response = client.get(reverse("exception-list"))
    assert response.status_code == 403
    assert b"no role in the Control Tower" in response.content


def test_login_form_signs_in_and_lands_on_the_dashboard(client, finance_ops):
    page = client.get(reverse("login"))
    assert b'name="username"' in page.content
    response = client.post(
        reverse("login"), {"username": "fiona", "password": "pw-for-tests-123"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("home")
    assert b"SLA dashboard" in response.content
    assert b"fiona" in response.content


def test_wrong_password_shows_an_error(client, finance_ops):
    response = client.post(reverse("login"), {"username": "fiona", "password": "nope"})
    assert response.status_code == 200
    assert b"alert-error" in response.content


def test_logout_ends_the_session(client, finance_ops):
    login(client, finance_ops)
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("exception-list")).status_code == 302


# --- the exception queue ----------------------------------------------------------------------


def test_queue_shows_the_exception_with_its_sentence(client, finance_ops, stuck):
    response = login(client, finance_ops).get("/exceptions/")
    html = response.content.decode()
    [row] = rows(html)
    assert "Unmapped product" in row
    assert stuck.case.summary in row
    assert "no product mapping for price_platform" in row
    assert f'href="/journeys/{stuck.journey.pk}/"' in row
    assert stuck.invoice["id"] in row
    assert "us-inc" in row
    assert "Open" in row and "Unassigned" in row
    assert ">Replay</button>" in row
    assert 'id="open-count"' in html and ">1</span>" in html
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert "django_htmx/htmx-2.min.js" in html


def test_queue_hides_resolved_exceptions_unless_asked(client, finance_ops, stuck):
    ExceptionCase.objects.filter(pk=stuck.case.pk).update(state=ExceptionCase.State.RESOLVED)
    login(client, finance_ops)
    assert rows(client.get(reverse("exception-list")).content.decode()) == []
    resolved = client.get(reverse("exception-list"), {"state": "resolved", "filtered": "1"})
    [row] = rows(resolved.content.decode())
    assert "Resolved" in row
    # Once the form is used, no state ticked means every state.
    assert len(rows(client.get(reverse("exception-list"), {"filtered": "1"}).content.decode())) == 1


def test_filter_by_category_narrows_the_rows(client, finance_ops, ledger, netsuite):
    unmapped = stuck_on_unmapped_product()
    unlinked = deliver_unlinked_customer_invoice()
    drain()
    unlinked_case = ExceptionCase.objects.get(journey__business_key=unlinked["id"])
    assert unlinked_case.category == Cat.CUSTOMER_NOT_LINKED
    login(client, finance_ops)
    # The customer with no entity also stops its own customer_sync journey: three rows.
    assert len(rows(client.get("/exceptions/").content.decode())) == 3

    response = client.get("/exceptions/", {"category": Cat.UNMAPPED_PRODUCT}, headers=HX)
    html = response.content.decode()
    [row] = rows(html)
    assert unmapped.invoice["id"] in row and unlinked["id"] not in html
    assert "<html" not in html and 'id="results"' in html  # the rows partial only

    response = client.get("/exceptions/", {"category": Cat.CUSTOMER_NOT_LINKED})
    found = rows(response.content.decode())
    assert len(found) == 2 and unmapped.invoice["id"] not in response.content.decode()
    assert all("cus_stranger" in row and "not linked to a legal entity" in row for row in found)
    assert 'value="customer_not_linked" selected' in response.content.decode()


def test_filter_by_entity_narrows_the_rows(client, finance_ops, ledger, netsuite):
    uk = make_ledger("uk-ltd", "GBP", "GB", "2")
    link_customer(uk, "cus_british")
    us_case = stuck_on_unmapped_product()
    uk_invoice = deliver_invoice(customer="cus_british", price="price_uk", currency="gbp")
    drain()
    login(client, finance_ops)
    [row] = rows(client.get("/exceptions/", {"entity": "uk-ltd"}).content.decode())
    assert uk_invoice["id"] in row and "uk-ltd" in row
    [row] = rows(client.get("/exceptions/", {"entity": "us-inc"}).content.decode())
    assert us_case.invoice["id"] in row


def test_search_matches_business_key_summary_and_correlation_id(
    client, finance_ops, ledger, netsuite
):
    first = stuck_on_unmapped_product(price="price_alpha")
    second = stuck_on_unmapped_product(price="price_beta")
    login(client, finance_ops)
    by_key = rows(client.get("/exceptions/", {"q": first.invoice["id"][-10:]}).content.decode())
    assert len(by_key) == 1 and first.invoice["id"] in by_key[0]
    by_summary = rows(client.get("/exceptions/", {"q": "price_beta"}).content.decode())
    assert len(by_summary) == 1 and second.invoice["id"] in by_summary[0]
    corr = str(second.journey.correlation_id)
    by_corr = rows(client.get("/exceptions/", {"q": corr}).content.decode())
    assert len(by_corr) == 1 and second.invoice["id"] in by_corr[0]


def test_filter_by_journey_type(client, finance_ops, stuck):
    login(client, finance_ops)
    assert (
        len(
            rows(client.get("/exceptions/", {"journey_type": "invoice_to_ledger"}).content.decode())
        )
        == 1
    )
    assert (
        rows(client.get("/exceptions/", {"journey_type": "payment_to_ledger"}).content.decode())
        == []
    )


def test_invalid_filter_value_shows_the_error_and_no_rows(client, finance_ops, stuck):
    login(client, finance_ops)
    html = client.get("/exceptions/", {"entity": "no-such-entity"}).content.decode()
    assert rows(html) == [] and "filter-errors" in html and "Entity:" in html
    html = client.get(reverse("journey-list"), {"correlation_id": "not-a-uuid"}).content.decode()
    assert "Enter a valid UUID" in html and stuck.invoice["id"] not in html


def _queue_of(count: int, assignee=None) -> None:
    for i in range(count):
        deliver_invoice(price=f"price_{i:03d}")
    drain()
    if assignee is not None:
        ExceptionCase.objects.filter(
            pk__in=ExceptionCase.objects.values("pk")[: count // 2]
        ).update(assignee=assignee)


def test_queue_has_no_n_plus_one(
    client, finance_ops, ledger, netsuite, django_assert_max_num_queries
):
    _queue_of(30, assignee=UserFactory(username="olga", roles=["finance_ops"]))
    entities = [make_ledger(f"e{i}", "EUR", "DE", str(10 + i)).entity for i in range(3)]
    for n, case in enumerate(ExceptionCase.objects.all()):
        ExceptionCase.objects.filter(pk=case.pk).update(legal_entity=entities[n % 3])
    login(client, finance_ops)
    # + the open alerts count in the nav; + the tags of the page's cases (one prefetch), the
    # tag names and the finance ops people for the filters and the bulk bar
    with django_assert_max_num_queries(12):
        response = client.get("/exceptions/")
    assert len(rows(response.content.decode())) == 30
    assert "olga" in response.content.decode()


def test_queue_is_paginated_by_50(client, finance_ops, ledger, netsuite):
    _queue_of(52)
    login(client, finance_ops)
    first = client.get("/exceptions/").content.decode()
    assert len(rows(first)) == 50
    assert "52</strong> exceptions" in first and "Page 1 of 2" in first
    second = client.get("/exceptions/", {"page": 2}, headers=HX).content.decode()
    assert len(rows(second)) == 2
    assert 'hx-get="?page=1"' in second


# --- replay -----------------------------------------------------------------------------------


def test_replay_by_finance_ops_audits_and_moves_the_states(client, finance_ops, stuck):
    map_product("price_platform")
    login(client, finance_ops)
    response = client.post(
        reverse("exception-replay", args=[stuck.case.pk]),
        {"reason": "Mapped price_platform to PLAT"},
        headers=HX,
    )
    assert response.status_code == 200
    html = response.content.decode()
    [row] = rows(html)
    assert "Replay queued from step “map_accounts”." in row
    assert "In progress" in row and ">Replay</button>" not in row
    [counter] = re.findall(r'<span id="open-count"[^>]*>\d+</span>', html)
    assert 'hx-swap-oob="true"' in counter and counter.endswith(">0</span>")

    stuck.journey.refresh_from_db()
    stuck.case.refresh_from_db()
    assert stuck.journey.state == Journey.State.PENDING
    assert stuck.case.state == ExceptionCase.State.IN_PROGRESS
    entry = AuditEntry.objects.get(action="journey.replay")
    assert entry.actor == finance_ops and entry.actor_label == "fiona"
    assert entry.object_type == "sync.journey" and entry.object_id == str(stuck.journey.pk)
    assert entry.reason == "Mapped price_platform to PLAT"
    assert entry.after["from_step"] == "map_accounts"

    drain()
    stuck.journey.refresh_from_db()
    stuck.case.refresh_from_db()
    assert stuck.journey.state == Journey.State.COMPLETED
    assert stuck.case.state == ExceptionCase.State.RESOLVED
    assert JournalEntry.objects.get(journey=stuck.journey).state == JournalEntry.State.POSTED


def test_replay_without_reason_records_the_default_reason(client, finance_ops, stuck):
    login(client, finance_ops).post(reverse("exception-replay", args=[stuck.case.pk]), headers=HX)
    assert AuditEntry.objects.get(action="journey.replay").reason.startswith("Replayed from")


def test_replay_refused_by_the_domain_shows_the_message_in_the_row(client, finance_ops, stuck):
    login(client, finance_ops)
    url = reverse("exception-replay", args=[stuck.case.pk])
    client.post(url, headers=HX)
    response = client.post(url, headers=HX)  # a double click: the journey is pending now
    assert response.status_code == 200
    [row] = rows(response.content.decode())
    assert 'class="row-msg err"' in row
    assert "only a journey in exception can be replayed" in row
    assert AuditEntry.objects.filter(action="journey.replay").count() == 1


def test_replay_without_htmx_redirects_with_a_message(client, finance_ops, stuck):
    login(client, finance_ops)
    response = client.post(reverse("exception-replay", args=[stuck.case.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("exception-list")
    assert "Replay queued from step “map_accounts”." in response.content.decode()


def test_replay_needs_post(client, finance_ops, stuck):
    login(client, finance_ops)
    assert client.get(reverse("exception-replay", args=[stuck.case.pk])).status_code == 405


@pytest.mark.parametrize("persona", ["manager", "auditor"])
@pytest.mark.parametrize("route", ["exception-replay", "journey-replay"])
def test_read_only_roles_get_403_on_replay_and_nothing_changes(
    client, request, stuck, persona, route
):
    user = request.getfixturevalue(persona)
    audit_before = AuditEntry.objects.count()
    pk = stuck.case.pk if route == "exception-replay" else stuck.journey.pk
    login(client, user)
    for headers in (HX, {}):
        response = client.post(reverse(route, args=[pk]), {"reason": "try"}, headers=headers)
        assert response.status_code == 403
    stuck.journey.refresh_from_db()
    stuck.case.refresh_from_db()
    assert stuck.journey.state == Journey.State.EXCEPTION
    assert stuck.case.state == ExceptionCase.State.OPEN
    assert AuditEntry.objects.exclude(action="access.denied").count() == audit_before
    assert not AuditEntry.objects.filter(action="journey.replay").exists()
    refused = AuditEntry.objects.filter(action="access.denied", actor=user)
    assert refused.count() == 2
    assert {r.object_id for r in refused} == {f"POST {reverse(route, args=[pk])}"}


@pytest.mark.parametrize("persona", ["manager", "auditor"])
def test_read_only_roles_see_the_queue_without_replay_buttons(client, request, stuck, persona):
    login(client, request.getfixturevalue(persona))
    [row] = rows(client.get("/exceptions/").content.decode())
    assert stuck.case.summary in row and "Replay" not in row
    detail = client.get(reverse("journey-detail", args=[stuck.journey.pk])).content.decode()
    assert "journey-replay" not in detail and ">Replay</button>" not in detail


# --- journey detail ---------------------------------------------------------------------------


def test_journey_detail_shows_header_steps_entry_lines_and_trail(
    client, finance_ops, ledger, netsuite
):
    map_product("price_platform")
    map_tax(ledger, "txr_ny", percent="8", code="US-NY")
    invoice = deliver_invoice(
        amount_minor=123456, tax=TaxSpec(amount_minor=9876, rate_id="txr_ny", jurisdiction="NY")
    )
    drain()
    journey = Journey.objects.get(business_key=invoice["id"])
    assert journey.state == Journey.State.COMPLETED
    entry = JournalEntry.objects.get(journey=journey)
    html = (
        login(client, finance_ops)
        .get(reverse("journey-detail", args=[journey.pk]))
        .content.decode()
    )

    assert 'id="journey-state">Completed<' in html
    assert str(journey.correlation_id) in html
    assert journey.source_event.source_event_id in html and "invoice.finalized" in html
    assert "us-inc" in html and "invoice_to_ledger" in html
    for step in ("validate", "link_customer", "map_accounts", "build_entry"):
        assert step in html
    assert entry.external_id in html and f"netsuite #{entry.erp_document_id}" in html
    assert ">Posted<" in html
    lines = html.split(f'id="entry-{entry.pk}-lines"')[1].split("</table>")[0]
    assert "Accounts receivable" in lines and "1200" in lines
    assert "Deferred revenue" in lines and "Sales tax payable" in lines
    assert "1,333.32 USD" in lines  # AR debit: 1,234.56 net + 98.76 tax
    assert "1,234.56 USD" in lines and "98.76 USD" in lines
    assert "PLAT" in lines and "US-NY" in lines
    totals = lines.split('class="totals')[1]
    assert totals.count("1,333.32 USD") == 4  # debit = credit, in both currencies
    assert "not balanced" not in totals
    assert "journey.complete" in html  # the audit trail
    assert ">Replay</button>" not in html


def test_journey_detail_formats_zero_decimal_currencies(client, finance_ops, netsuite):
    japan = make_ledger("jp-kk", "JPY", "JP", "3")
    link_customer(japan, "cus_tokyo")
    map_product("price_jp")
    invoice = deliver_invoice(
        customer="cus_tokyo", price="price_jp", amount_minor=1200000, currency="jpy"
    )
    drain()
    journey = Journey.objects.get(business_key=invoice["id"])
    html = (
        login(client, finance_ops)
        .get(reverse("journey-detail", args=[journey.pk]))
        .content.decode()
    )
    assert "1,200,000 JPY" in html and "12,000.00" not in html


def test_journey_detail_of_a_stuck_journey_offers_replay(client, finance_ops, stuck):
    html = (
        login(client, finance_ops)
        .get(reverse("journey-detail", args=[stuck.journey.pk]))
        .content.decode()
    )
    assert 'id="journey-state">Exception<' in html
    assert stuck.case.summary in html
    assert ">Replay</button>" in html
    assert "No journal entry yet" in html
    assert "exception.open" not in html  # the trail shown is the journey's own
    assert "Failed" in html and "DataDefect" in html


def test_journey_detail_replay_rerenders_the_journey_in_place(client, finance_ops, stuck):
    map_product("price_platform")
    login(client, finance_ops)
    response = client.post(
        reverse("journey-replay", args=[stuck.journey.pk]), {"reason": "fixed"}, headers=HX
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<article id="journey"')
    assert 'id="journey-state">Pending<' in html
    assert "Replay queued from step “map_accounts”." in html
    assert 'hx-swap-oob="true">0</span>' in html
    assert "journey.replay" in html and "fiona" in html
    drain()
    html = client.get(reverse("journey-detail", args=[stuck.journey.pk])).content.decode()
    assert 'id="journey-state">Completed<' in html and "1,234.56 USD" in html


def test_journey_detail_replay_refused_shows_the_message(client, finance_ops, stuck):
    login(client, finance_ops)
    url = reverse("journey-replay", args=[stuck.journey.pk])
    client.post(url, headers=HX)
    html = client.post(url, headers=HX).content.decode()
    assert 'class="alert alert-error"' in html and "only a journey in exception" in html


def test_journey_detail_reads_in_a_fixed_number_of_queries(
    client, finance_ops, stuck, django_assert_max_num_queries
):
    map_product("price_platform")
    login(client, finance_ops).post(reverse("journey-replay", args=[stuck.journey.pk]), headers=HX)
    drain()
    with django_assert_max_num_queries(12):  # + the open alerts count in the nav
        response = client.get(reverse("journey-detail", args=[stuck.journey.pk]))
    assert response.content.decode().count('<tr class="step-') == 6


def test_unknown_journey_is_404(client, finance_ops):
    login(client, finance_ops)
    assert client.get(reverse("journey-detail", args=[999999])).status_code == 404
    assert client.post(reverse("journey-replay", args=[999999])).status_code == 404


# --- journeys list ----------------------------------------------------------------------------


def test_journeys_list_filters_by_state_and_business_key(
    client, finance_ops, ledger, netsuite, django_assert_max_num_queries
):
    map_product("price_ok")
    done = deliver_invoice(price="price_ok")
    stuck = stuck_on_unmapped_product(price="price_missing")
    drain()
    login(client, finance_ops)
    # + the open alerts count in the nav; + the tags of the page's cases (one prefetch), the
    # tag names and the finance ops people for the filters and the bulk bar
    with django_assert_max_num_queries(12):
        html = client.get(reverse("journey-list")).content.decode()
    assert done["id"] in html and stuck.invoice["id"] in html
    html = client.get(reverse("journey-list"), {"state": "completed"}, headers=HX).content.decode()
    assert done["id"] in html and stuck.invoice["id"] not in html
    assert "<html" not in html
    html = client.get(
        reverse("journey-list"), {"business_key": stuck.invoice["id"]}
    ).content.decode()
    assert stuck.invoice["id"] in html and done["id"] not in html
    assert 'id="journey-' in html and "Exception" in html


# --- money and small formatting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (123456, "USD", "1,234.56 USD"),
        (5, "usd", "0.05 USD"),
        (0, "EUR", "0.00 EUR"),
        (-123456, "EUR", "-1,234.56 EUR"),
        (1200000, "JPY", "1,200,000 JPY"),
        (1050, "KWD", "1.050 KWD"),
        (123456789012, "KWD", "123,456,789.012 KWD"),
        (10**20 + 1, "USD", "1,000,000,000,000,000,000.01 USD"),  # exact beyond float precision
    ],
)
def test_money_formats_minor_units_exactly(minor, currency, shown):
    assert format_minor(minor, currency) == shown
    assert money(minor, currency) == shown


def test_money_refuses_floats_and_survives_odd_input():
    with pytest.raises(TypeError):
        format_minor(12.5, "USD")  # type: ignore[arg-type]
    assert money(None, "USD") == ""
    assert money("1050", "USD") == "10.50 USD"
    assert money(12.5, "USD") == "12.5 USD (minor units)"
    assert money(Decimal("10"), "USD") == "10 USD (minor units)"
    assert money(100, "XAU") == "100 XAU (minor units)"


def test_age_is_compact():
    import datetime as dt

    now = dt.datetime(2025, 1, 10, 12, 0, tzinfo=dt.UTC)
    assert age(now - dt.timedelta(seconds=20), now) == "<1m"
    assert age(now - dt.timedelta(minutes=42), now) == "42m"
    assert age(now - dt.timedelta(hours=5, minutes=12), now) == "5h 12m"
    assert age(now - dt.timedelta(days=3, hours=4), now) == "3d 4h"


def test_journey_detail_shows_the_source_payload_and_step_snapshots_redacted(
    client, finance_ops, stuck
):
    from sync.models import InboundEvent, Step

    event = InboundEvent.objects.get(pk=stuck.journey.source_event_id)
    event.payload = {**event.payload, "card": {"number": "4242424242424242", "cvc": "314"}}
    event.save(update_fields=["payload"])
    step = Step.objects.filter(journey=stuck.journey).order_by("position").first()
    Step.objects.filter(pk=step.pk).update(
        request_snapshot={"headers": {"Authorization": "Bearer sk_live_abc"}, "amount": 10}
    )
    html = (
        login(client, finance_ops)
        .get(reverse("journey-detail", args=[stuck.journey.pk]))
        .content.decode()
    )
    assert 'id="source-event"' in html and stuck.invoice["id"] in html
    assert "4242424242424242" not in html, html[html.find("4242424242424242") - 300 :][:400]
    assert "••••4242" in html
    assert "314" not in html.split('id="source-event"')[1].split("</details>")[0]
    assert "sk_live_abc" not in html
    assert f'id="request-{step.pk}"' in html


def test_journey_detail_links_to_the_source_and_erp_records_when_configured(
    client, finance_ops, stuck, settings
):
    from sync.models import JournalEntry

    map_product("price_platform")
    login(client, finance_ops).post(reverse("journey-replay", args=[stuck.journey.pk]), headers=HX)
    drain()
    entry = JournalEntry.objects.get(journey=stuck.journey)
    url = reverse("journey-detail", args=[stuck.journey.pk])
    html = client.get(url).content.decode()
    assert 'id="source-link"' not in html and 'class="erp-link"' not in html  # not configured
    settings.STRIPE_DASHBOARD_URL = "https://dashboard.example"
    settings.NETSUITE_UI_URL = "https://acct.app.example"
    html = client.get(url).content.decode()
    assert f'href="https://dashboard.example/invoices/{stuck.invoice["id"]}"' in html
    assert (
        f'href="https://acct.app.example/app/accounting/transactions/journal.nl?id='
        f'{entry.erp_document_id}"' in html
    )
