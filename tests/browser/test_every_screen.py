"""Every screen opens in a real browser at laptop width (1280 px, no sideways scrolling of the
page), has its heading and a labelled main navigation, passes axe-core's accessibility rules
(WCAG 2 A/AA: labels, contrast, names, structure) and is captured as a screenshot."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.conftest import drain
from tests.controltower.test_screens import stuck_on_unmapped_product
from tests.factories import UserFactory, link_customer, make_ledger

pytestmark = pytest.mark.browser
AXE = Axe()

SCREENS = [
    ("/", "SLA dashboard", "dashboard-full"),
    ("/exceptions/", "Exception queue", "exception-queue-full"),
    ("/exceptions/causes/", "Exceptions by root cause", "exception-causes-full"),
    ("/journeys/", "Journeys", "journeys"),
    ("/reports/", None, "reports"),
    ("/alerts/", "Alerts", "alerts"),
    ("/connectors/", "Connectors", "connectors"),
    ("/mappings/", "Mappings", "mappings"),
    ("/mappings/product_mapping/", "Product mappings", "mapping-list"),
    ("/mappings/fx_rate/new/", "New FX rate", "mapping-new"),
    ("/mappings/changes/", "Mapping changes", "mapping-changes"),
    ("/audit/", "Audit log", "audit-log"),
]


@pytest.fixture
def busy(transactional_db, netsuite):
    ledger = make_ledger()
    link_customer(ledger, "cus_acme")
    stuck = stuck_on_unmapped_product()
    drain()
    UserFactory(username="boss", roles=["finance_ops", "integration_admin", "auditor"])
    return stuck


def test_every_screen_opens_at_laptop_width(busy, page, live_server, sign_in, shot):
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in("boss")
    for path, heading, name in [*SCREENS, (f"/journeys/{busy.journey.pk}/", None, "journey")]:
        page.goto(f"{live_server.url}{path}")
        if heading:
            expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} scrolls sideways by {overflow}px at 1280px"
        result = AXE.run(page, options={"runOnly": ["wcag2a", "wcag2aa"]})
        assert result.violations_count == 0, f"{path}: {result.generate_report()}"
        shot(name)
