"""Fixtures shared by the journey tests of this folder."""

from __future__ import annotations

import pytest

from tests.factories import add_cash_accounts, link_customer, make_ledger, map_product, map_tax


@pytest.fixture
def ledger(db):
    """A US entity with its chart and cash accounts, price_platform mapped (ratable), US sales
    tax txr_us_8 mapped, and cus_acme linked to it. A module may define its own ``ledger``."""
    ledger = make_ledger()
    add_cash_accounts(ledger)
    map_product("price_platform")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger
