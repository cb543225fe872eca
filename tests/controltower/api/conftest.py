"""API test fixtures: token clients per persona and a ready ledger."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import Ledger, link_customer, make_ledger, map_tax


@pytest.fixture
def api() -> Callable[..., APIClient]:
    """``api(user)``: a client sending ``Authorization: Token ...``; ``api()`` sends nothing."""

    def _client(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return _client


@pytest.fixture
def ledger(db) -> Ledger:
    """us-inc (USD) with its chart and rules, an 8% tax rate and customer cus_acme linked."""
    ledger = make_ledger()
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger
