"""A finance person works the exception queue in a real browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from sync.models import AuditEntry, ExceptionCase, Journey
from tests.conftest import drain
from tests.controltower.test_screens import (
    deliver_unlinked_customer_invoice,
    stuck_on_unmapped_product,
)
from tests.factories import link_customer, make_ledger, map_product

pytestmark = pytest.mark.browser


@pytest.fixture
def queue(transactional_db, netsuite):
    """Three stuck journeys: an unmapped price, and a customer not linked to any entity (its
    customer_sync and its invoice both stop on it)."""
    ledger = make_ledger()
    link_customer(ledger, "cus_acme")
    stuck = stuck_on_unmapped_product()
    stranger = deliver_unlinked_customer_invoice()
    drain()
    return stuck, stranger


def test_finance_ops_filters_replays_in_place_and_sees_the_posted_entry(
    queue, finance_ops, sign_in, live_server, shot
):
    stuck, _ = queue
    page = sign_in("fiona", then="/exceptions/")
    expect(page.get_by_role("heading", name="Exception queue")).to_be_visible()
    rows = page.locator("#exception-table tbody tr")
    expect(rows).to_have_count(3)
    row = page.locator(f"#exception-{stuck.case.pk}")
    expect(row).to_contain_text(
        "cannot be posted: no product mapping for price_platform. Add the mapping, then replay."
    )
    expect(page.locator("#open-count")).to_have_text("3")
    shot("exception-queue")

    page.select_option("#f-category", "unmapped_product")
    expect(rows).to_have_count(1)
    expect(row).to_be_visible()
    expect(page).to_have_url(re.compile(r"[?&]category=unmapped_product"))

    map_product("price_platform")  # the fix a finance person makes before replaying
    page.evaluate("window.__sameDocument = true")
    row.get_by_role("button", name="Replay").click()
    expect(row).to_contain_text("Replay queued from step “map_accounts”.")
    expect(row).to_contain_text("In progress")
    expect(row.get_by_role("button", name="Replay")).to_have_count(0)
    expect(page.locator("#open-count")).to_have_text("2")  # refreshed out of band
    assert page.evaluate("window.__sameDocument") is True  # no full reload
    shot("exception-queue-replayed")
    replay = AuditEntry.objects.get(action="journey.replay")
    assert replay.actor_label == "fiona"

    drain()
    assert Journey.objects.get(pk=stuck.journey.pk).state == Journey.State.COMPLETED
    row.get_by_role("link", name=stuck.invoice["id"]).click()
    expect(page.locator("#journey-state")).to_have_text("Completed")
    ledger = page.locator("table.ledger")
    expect(ledger).to_contain_text("Accounts receivable")
    expect(ledger).to_contain_text("Deferred revenue")
    expect(ledger.locator("tfoot")).to_contain_text("1,234.56 USD")
    expect(page.locator("#audit")).to_contain_text("journey.replay")
    shot("journey-detail")
    assert ExceptionCase.objects.get(pk=stuck.case.pk).state == ExceptionCase.State.RESOLVED


def test_auditor_sees_the_queue_but_no_replay_button(queue, auditor, sign_in):
    stuck, _ = queue
    page = sign_in("aude", then="/exceptions/")
    row = page.locator(f"#exception-{stuck.case.pk}")
    expect(row).to_contain_text("no product mapping for price_platform")
    expect(page.get_by_role("button", name="Replay")).to_have_count(0)
    row.get_by_role("link", name=stuck.invoice["id"]).click()
    expect(page.locator("#journey-state")).to_have_text("Exception")
    expect(page.get_by_role("button", name="Replay")).to_have_count(0)


def test_finance_ops_works_a_root_cause_group_from_the_keyboard_and_bulk_bar(
    queue, finance_ops, sign_in, shot
):
    stuck, _ = queue
    page = sign_in("fiona", then="/exceptions/causes/")
    expect(page.get_by_role("heading", name="Exceptions by root cause")).to_be_visible()
    group = page.locator('tr[data-root-cause="unmapped_product:price_platform"]')
    expect(group).to_contain_text(
        "1 exception blocked by the missing product mapping for price_platform"
    )
    expect(group.get_by_role("link", name="Map price_platform to a product")).to_have_attribute(
        "href", re.compile(r"/mappings/product_mapping/new/\?source_ref=price_platform")
    )
    shot("exception-causes")

    group.get_by_role("link", name=re.compile("blocked by")).click()
    rows = page.locator("#exception-table tbody tr")
    expect(rows).to_have_count(1)
    page.locator("#select-all").check()  # ticks every row box of the page
    expect(page.locator(f"#exception-{stuck.case.pk} input[name=case]")).to_be_checked()
    page.select_option("#bulk-assignee", "fiona")
    page.get_by_role("button", name="Assign").click()
    expect(page.locator("#bulk-result")).to_contain_text("1 of 1 done.")
    expect(page.locator(f"#exception-{stuck.case.pk}")).to_contain_text("fiona")
    expect(page.locator(f"#exception-{stuck.case.pk}")).to_contain_text("In progress")
    page.locator(f"#exception-{stuck.case.pk} input[name=case]").check()  # the row was redrawn
    page.locator("#bulk-tag").fill("quarter-end")
    page.get_by_role("button", name="Tag", exact=True).click()
    expect(page.locator(f"#exception-{stuck.case.pk} .tag")).to_have_text("quarter-end")
    case = ExceptionCase.objects.get(pk=stuck.case.pk)
    assert case.assignee == finance_ops and list(case.tags.values_list("name", flat=True)) == [
        "quarter-end"
    ]
    # Keyboard: "/" jumps to the search box.
    page.locator("body").press("Escape")
    page.keyboard.press("/")
    expect(page.locator("#f-q")).to_be_focused()
