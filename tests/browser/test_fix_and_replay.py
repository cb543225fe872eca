"""The whole loop in a real browser: invoices stop on an unmapped price; one integration admin
proposes the product mapping from the root-cause page, a second approves it; finance ops filter
the queue, replay the selection and see the journeys complete."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from sync.models import ExceptionCase, Journey, MappingChange, ProductMapping
from tests.browser.conftest import PASSWORD
from tests.conftest import drain
from tests.controltower.test_screens import deliver_invoice
from tests.factories import UserFactory, link_customer, make_ledger

pytestmark = pytest.mark.browser


@pytest.fixture
def stuck(transactional_db, netsuite):
    ledger = make_ledger()
    link_customer(ledger, "cus_acme")
    invoices = [
        deliver_invoice(price="price_platform", amount_minor=1000 * (i + 1)) for i in range(2)
    ]
    drain()
    journeys = list(Journey.objects.filter(business_key__in=[i["id"] for i in invoices]))
    assert {j.state for j in journeys} == {"exception"}
    return journeys


def _signed_in(browser, live_server, username: str, path: str):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{live_server.url}{path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    return page


def test_fix_approved_by_a_second_admin_then_bulk_replayed_completes_the_journeys(
    stuck, browser, live_server, integration_admin, finance_ops, shot
):
    UserFactory(username="iris", roles=["integration_admin"])

    # 1. Ivan proposes the mapping from the root-cause page, pre-filled.
    ivan = _signed_in(browser, live_server, "ivan", "/exceptions/causes/")
    group = ivan.locator('tr[data-root-cause="unmapped_product:price_platform"]')
    expect(group).to_contain_text("2 exceptions blocked by the missing product mapping")
    group.get_by_role("link", name="Map price_platform to a product").click()
    expect(ivan.locator("#id_source_ref")).to_have_value("price_platform")
    ivan.locator("#id_product_code").fill("PLAT")
    ivan.locator("#id_product_name").fill("Platform")
    ivan.select_option("#id_revenue_type", "ratable")
    ivan.locator("#id_reason").fill("new platform price")
    ivan.get_by_role("button", name="Propose change").click()
    expect(ivan.locator("#change-state")).to_have_text("Awaiting approval")
    expect(ivan.get_by_text("another integration admin must approve it")).to_be_visible()
    expect(ivan.get_by_role("button", name="Approve and apply")).to_have_count(0)
    assert not ProductMapping.objects.exists()
    shot("mapping-change-pending", on=ivan)

    # 2. Iris approves; the fix page lists the two exceptions it unblocks.
    iris = _signed_in(browser, live_server, "iris", "/mappings/changes/")
    change = MappingChange.objects.get()
    iris.locator(f"#change-{change.pk} a").click()
    expect(iris.locator("#change-diff")).to_contain_text("price_platform")
    iris.locator("#approve-note").fill("checked with sales ops")
    iris.get_by_role("button", name="Approve and apply").click()
    expect(iris.locator("#unblocked-count")).to_have_text("2")
    shot("fix-and-replay", on=iris)
    assert ProductMapping.objects.get().product_code == "PLAT"

    # 3. Fiona filters the queue, selects all, replays with a reason; the journeys complete.
    fiona = _signed_in(browser, live_server, "fiona", "/exceptions/")
    fiona.select_option("#f-category", "unmapped_product")
    expect(fiona).to_have_url(re.compile(r"[?&]category=unmapped_product"))
    rows = fiona.locator("#exception-table tbody tr")
    expect(rows).to_have_count(2)
    fiona.locator("#select-all").check()
    fiona.locator("input[name=reason]").fill("mapping approved")
    fiona.get_by_role("button", name="Replay selected").click()
    expect(fiona.locator("#bulk-result")).to_contain_text("2 replays queued")
    drain()
    assert {j.state for j in Journey.objects.filter(pk__in=[j.pk for j in stuck])} == {"completed"}
    assert not ExceptionCase.objects.filter(state__in=ExceptionCase.ACTIVE).exists()
    fiona.goto(f"{live_server.url}/journeys/{stuck[0].pk}/")
    expect(fiona.locator("#journey-state")).to_have_text("Completed")
    fiona.goto(f"{live_server.url}/exceptions/")
    expect(fiona.locator("#open-count")).to_have_text("0")
    fiona.goto(
        f"{live_server.url}/mappings/product_mapping/{ProductMapping.objects.get().pk}/history/"
    )
    expect(fiona.locator("#history-table")).to_contain_text("approved by iris")
    shot("mapping-history", on=fiona)
