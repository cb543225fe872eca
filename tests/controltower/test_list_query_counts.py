"""No N+1 anywhere: every list screen and API list costs the same number of queries with 3 rows
of everything as with 30 (and stays under a small bound)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sync.models import MappingChange, Notification
from sync.root_causes import root_cause_of
from sync.services.audit import audit_record
from tests.factories import (
    ExceptionCaseFactory,
    GLAccountFactory,
    JourneyFactory,
    UserFactory,
    make_ledger,
)

pytestmark = pytest.mark.django_db

SCREENS = [
    "/",
    "/exceptions/",
    "/exceptions/causes/",
    "/journeys/",
    "/alerts/?all=1",
    "/connectors/",
    "/audit/",
    "/mappings/",
    "/mappings/changes/?state=pending",
    "/mappings/gl_account/",
    "/mappings/posting_rule/",
    "/mappings/product_mapping/",
]
API = [
    "/api/v1/journeys/",
    "/api/v1/exceptions/",
    "/api/v1/mapping-changes/",
    "/api/v1/gl-accounts/",
    "/api/v1/connectors/",
    "/api/v1/revenue-schedules/",
    "/api/v1/journal-entries/",
]


def _add(ledger, n: int, proposer) -> None:
    for i in range(n):
        context = {"missing": {"unmapped_product": [f"price_{i}"]}}
        case = ExceptionCaseFactory(
            journey__legal_entity=ledger.entity,
            context=context,
            root_cause=root_cause_of("unmapped_product", context),
        )
        done = JourneyFactory(legal_entity=ledger.entity)
        Notification.objects.create(
            kind=Notification.Kind.SLA_BREACH,
            journey=done,
            legal_entity=ledger.entity,
            title=f"breach {i}",
        )
        GLAccountFactory(legal_entity=ledger.entity, kind="revenue")
        MappingChange.objects.create(
            kind="posting_rule",
            operation="create",
            legal_entity=ledger.entity,
            values={},
            reason=f"r{i}",
            proposed_by=proposer,
        )
        audit_record(actor=proposer, action="journey.replay", obj=case.journey, reason="r")


def _count(get, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(ctx.captured_queries)


@pytest.fixture
def users(db):
    boss = UserFactory(username="boss", roles=["finance_ops", "integration_admin", "auditor"])
    return boss, make_ledger()


@pytest.mark.parametrize("url", SCREENS)
def test_screen_costs_the_same_with_3_or_30_rows(client, users, url):
    boss, ledger = users
    _add(ledger, 3, boss)
    client.force_login(boss)
    client.get(url)
    few = _count(client.get, url)
    _add(ledger, 27, boss)
    many = _count(client.get, url)
    assert many == few <= 16, (url, few, many)


@pytest.mark.parametrize("url", API)
def test_api_list_costs_the_same_with_3_or_30_rows(users, url):
    boss, ledger = users
    _add(ledger, 3, boss)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=boss).key}")
    api.get(url)
    few = _count(api.get, url)
    _add(ledger, 27, boss)
    many = _count(api.get, url)
    assert many == few <= 10, (url, few, many)
