"""A manager reads the SLA dashboard in a real browser: the numbers are the database's, a number
opens the records behind it, and an entity-limited manager sees only their entity."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from sync.models import Journey, Notification
from sync.services.audit import audit_record
from tests.factories import (
    ExceptionCaseFactory,
    GLAccountFactory,
    JourneyFactory,
    LegalEntityFactory,
    UserFactory,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def books(transactional_db):
    now = timezone.now()
    us = LegalEntityFactory()
    uk = LegalEntityFactory(code="uk-ltd", name="Acme UK Ltd", functional_currency="GBP")
    for i in range(8):
        JourneyFactory(
            legal_entity=us if i % 2 else uk,
            state="completed",
            business_at=now - dt.timedelta(minutes=20),
            completed_at=now - dt.timedelta(minutes=i),
        )
    JourneyFactory.create_batch(
        4, legal_entity=us, journey_type="payment_to_ledger", state="running"
    )
    JourneyFactory(legal_entity=uk, state="waiting", sla_state="at_risk")
    ExceptionCaseFactory.create_batch(2, journey__legal_entity=us)
    ExceptionCaseFactory(journey__legal_entity=uk)
    return us, uk


def _tile(page, name: str) -> str:
    return page.locator(f"#tile-{name} .v").inner_text().replace(",", "")


def test_manager_dashboard_numbers_match_the_database_and_open_their_records(
    books, manager, sign_in, shot
):
    page = sign_in("mona")
    expect(page.get_by_role("heading", name="SLA dashboard")).to_be_visible()
    assert _tile(page, "started") == str(Journey.objects.count())
    assert _tile(page, "in-flight") == str(Journey.objects.filter(state__in=Journey.ACTIVE).count())
    assert _tile(page, "in-exception") == str(Journey.objects.filter(state="exception").count())
    assert _tile(page, "at-risk") == "1"
    expect(page.locator("svg.chart").first).to_be_visible()
    shot("dashboard")

    page.select_option("#d-entity", "uk-ltd")
    expect(page).to_have_url(re.compile(r"[?&]entity=uk-ltd"))
    expect(page.locator("#tile-started .v")).to_have_text(
        str(Journey.objects.filter(legal_entity__code="uk-ltd").count())
    )
    expect(page.locator('#dashboard-table tr[data-entity="us-inc"]')).to_have_count(0)

    page.locator("#tile-in-exception").click()
    expect(page.get_by_role("heading", name="Journeys")).to_be_visible()
    expect(page.locator("#journey-table tbody tr")).to_have_count(1)


def test_entity_limited_manager_never_sees_another_entity(books, sign_in, shot, live_server):
    us, uk = books
    us_journey = Journey.objects.filter(legal_entity=us).first()
    GLAccountFactory(legal_entity=us, number="4000", name="US revenue", kind="revenue")
    GLAccountFactory(legal_entity=uk, number="5000", name="UK revenue", kind="revenue")
    audit_record(actor=None, action="journey.complete", obj=us_journey, reason="us only")
    Notification.objects.create(
        kind=Notification.Kind.SLA_BREACH, journey=us_journey, legal_entity=us, title="US breach"
    )
    UserFactory(username="ukmona", roles=["manager", "auditor"], entities=[uk])
    page = sign_in("ukmona")
    assert _tile(page, "started") == str(Journey.objects.filter(legal_entity=uk).count())
    expect(page.locator("#d-entity option[value='us-inc']")).to_have_count(0)
    expect(page.locator('#dashboard-table tr[data-entity="us-inc"]')).to_have_count(0)
    shot("dashboard-entity-limited")
    pages = [
        "/journeys/",
        "/exceptions/?filtered=1",
        f"/exceptions/?q={us_journey.business_key}",
        "/exceptions/causes/",
        "/alerts/?all=1",
        "/reports/",
        "/mappings/legal_entity/",
        "/mappings/gl_account/",
        "/audit/",
    ]
    for path in pages:
        page.goto(f"{live_server.url}{path}")
        body = page.locator("main")
        expect(body).not_to_contain_text("us-inc")
        expect(body).not_to_contain_text(us_journey.business_key)
        expect(body).not_to_contain_text("US revenue")
        expect(body).not_to_contain_text("US breach")
        expect(body).not_to_contain_text("us only")
    page.goto(f"{live_server.url}/mappings/gl_account/")
    expect(page.locator("main")).to_contain_text("UK revenue")  # their own, yes
    page.goto(f"{live_server.url}/journeys/{us_journey.pk}/")
    expect(page.locator("main")).to_contain_text("Not found")
