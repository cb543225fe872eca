"""Who may do what, for every screen and every API endpoint: role x URL x action.

Each row names a URL and an action (method and data) and the roles that may perform it. For
every persona the answer must match: an allowed role is not refused (2xx, 3xx, or a 400/404/409
about the data); a refused one gets 403 (and the refusal is audited); nobody signed in is sent
to the login page (screens) or answered 401 (API). ``test_every_url_is_in_the_matrix`` fails
when a URL is added without a row here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sync.models import AuditEntry, FxRate, MappingChange, Notification
from tests.factories import (
    ExceptionCaseFactory,
    JourneyFactory,
    UserFactory,
    make_ledger,
    map_product,
)

pytestmark = pytest.mark.django_db

F, ADM, M, A = "finance_ops", "integration_admin", "manager", "auditor"
ROLES = (F, ADM, M, A)
PERSONAS = ("anonymous", "no_role", *ROLES)
READ = frozenset(ROLES)

# Public or machine-to-machine URLs, with why they are outside the role matrix.
OUTSIDE = {
    "login": "the sign-in form itself",
    "logout": "ends whatever session there is",
    "webhook-stripe": "signed by Stripe, not a person (tests/sync/test_webhook_intake.py)",
    "api-schema": "the public OpenAPI description (no data)",
}


@dataclass
class World:
    journey: Any
    case: Any
    alert: Any
    change: Any
    rate: Any
    product: Any
    entity: Any


@pytest.fixture
def world(db) -> World:
    ledger = make_ledger()
    case = ExceptionCaseFactory(journey__legal_entity=ledger.entity)
    done = JourneyFactory(legal_entity=ledger.entity)
    alert = Notification.objects.create(
        kind=Notification.Kind.SLA_BREACH,
        journey=done,
        legal_entity=ledger.entity,
        title="SLA breached",
    )
    iris = UserFactory(username="iris", roles=[ADM])
    product = map_product("price_m")
    change = MappingChange.objects.create(
        kind="product_mapping",
        operation="update",
        target_id=product.pk,
        values={"product_code": "M2"},
        before=None,
        reason="r",
        proposed_by=iris,
    )
    rate = FxRate.objects.create(
        rate_date=dt.date(2026, 1, 1), base_currency="EUR", quote_currency="USD", rate="1.1"
    )
    return World(case.journey, case, alert, change, rate, product, ledger.entity)


@dataclass
class Row:
    name: str
    method: str
    allowed: frozenset[str]
    args: Callable[[World], list] = lambda w: []
    data: Callable[[World], dict] = lambda w: {}
    query: str = ""
    api: bool = False
    authenticated_is_enough: bool = False
    label: str = field(default="")

    def __str__(self) -> str:
        return self.label or f"{self.method} {self.name}"


def _row(name, method, allowed, **kw) -> Row:
    return Row(name, method, frozenset(allowed), **kw)


J = lambda w: [w.journey.pk]  # noqa: E731
ROWS = [
    # --- screens ------------------------------------------------------------------------------
    _row("home", "GET", READ),
    _row("exception-list", "GET", READ),
    _row(
        "exception-list",
        "POST",
        {F},
        data=lambda w: {"action": "assign", "case": [w.case.pk], "assignee": "-"},
        label="POST exception-list (bulk)",
    ),
    _row("exception-causes", "GET", READ),
    _row(
        "exception-replay", "POST", {F}, args=lambda w: [w.case.pk], data=lambda w: {"reason": "r"}
    ),
    _row("journey-list", "GET", READ),
    _row("journey-detail", "GET", READ, args=J),
    _row("journey-replay", "POST", {F}, args=J, data=lambda w: {"reason": "r"}),
    _row(
        "journey-action",
        "GET",
        READ,
        args=lambda w: [w.journey.pk, "dry-run"],
        label="GET journey dry-run",
    ),
    _row(
        "journey-action",
        "POST",
        {F},
        args=lambda w: [w.journey.pk, "cancel"],
        data=lambda w: {"reason": "r"},
        label="POST journey cancel",
    ),
    _row("report-index", "GET", READ),
    _row("report-lines", "GET", READ),
    _row(
        "report-period-action",
        "POST",
        {F},
        data=lambda w: {
            "entity": w.entity.code,
            "period": "2020-01",
            "action": "close",
            "reason": "r",
        },
    ),
    _row("alert-list", "GET", READ),
    _row("alert-acknowledge", "POST", {F, ADM}, args=lambda w: [w.alert.pk]),
    _row("connector-list", "GET", READ),
    _row(
        "connector-action",
        "POST",
        {ADM},
        args=lambda w: ["netsuite", "pause"],
        data=lambda w: {"reason": "maintenance"},
    ),
    _row("mapping-index", "GET", READ),
    _row("mapping-changes", "GET", READ),
    _row("mapping-change", "GET", READ, args=lambda w: [w.change.pk]),
    _row(
        "mapping-change-action",
        "POST",
        {ADM},
        args=lambda w: [w.change.pk, "reject"],
        data=lambda w: {"note": "no"},
        label="POST mapping change reject",
    ),
    _row("mapping-fix", "GET", READ, query="?kind=fx_rate&pk={rate}"),
    _row(
        "mapping-fix",
        "POST",
        {F},
        data=lambda w: {"kind": "fx_rate", "pk": w.rate.pk, "reason": "r"},
    ),
    _row("mapping-list", "GET", READ, args=lambda w: ["fx_rate"]),
    _row("mapping-new", "GET", READ, args=lambda w: ["fx_rate"]),
    _row(
        "mapping-new",
        "POST",
        {ADM},
        args=lambda w: ["fx_rate"],
        data=lambda w: {
            "rate_date": "2026-02-01",
            "base_currency": "EUR",
            "quote_currency": "USD",
            "rate": "1.2",
            "reason": "r",
        },
    ),
    _row("mapping-edit", "GET", READ, args=lambda w: ["fx_rate", w.rate.pk]),
    _row(
        "mapping-edit",
        "POST",
        {ADM},
        args=lambda w: ["fx_rate", w.rate.pk],
        data=lambda w: {
            "rate_date": "2026-01-01",
            "base_currency": "EUR",
            "quote_currency": "USD",
            "rate": "1.3",
            "reason": "r",
        },
    ),
    _row("mapping-history", "GET", READ, args=lambda w: ["fx_rate", w.rate.pk]),
    _row(
        "mapping-delete",
        "POST",
        {ADM},
        args=lambda w: ["fx_rate", w.rate.pk],
        data=lambda w: {"reason": "r"},
    ),
    _row("metrics", "GET", READ),
    _row("audit-log", "GET", READ),
    _row("audit-export", "GET", {A}),
    # --- API ------------------------------------------------------------------------------------
    _row("v1:api-root", "GET", READ, api=True, authenticated_is_enough=True),
    _row("v1:journey-list", "GET", READ, api=True),
    _row("v1:journey-detail", "GET", READ, api=True, args=J),
    _row("v1:journey-dry-run", "GET", READ, api=True, args=J),
    _row("v1:journey-replay", "POST", {F}, api=True, args=J, data=lambda w: {"reason": "r"}),
    _row("v1:journey-cancel", "POST", {F}, api=True, args=J, data=lambda w: {"reason": "r"}),
    _row(
        "v1:journey-replay-bulk",
        "POST",
        {F},
        api=True,
        data=lambda w: {"reason": "r", "journeys": [w.journey.pk]},
    ),
    _row("v1:exception-list", "GET", READ, api=True),
    _row("v1:exception-detail", "GET", READ, api=True, args=lambda w: [w.case.pk]),
    _row("v1:journal-entry-list", "GET", READ, api=True),
    _row("v1:journal-entry-detail", "GET", READ, api=True, args=lambda w: [999999]),
    *[
        _row(f"v1:{name}-list", "GET", READ, api=True)
        for name in (
            "legal-entity",
            "gl-account",
            "posting-rule",
            "product-mapping",
            "tax-mapping",
            "customer-link",
            "fx-rate",
            "sla-policy",
            "connector",
            "mapping-change",
            "revenue-schedule",
        )
    ],
    _row("v1:legal-entity-detail", "GET", READ, api=True, args=lambda w: [w.entity.pk]),
    _row(
        "v1:legal-entity-detail",
        "PATCH",
        {ADM},
        api=True,
        args=lambda w: [w.entity.pk],
        data=lambda w: {"name": "Renamed"},
    ),
    _row("v1:gl-account-list", "POST", {ADM}, api=True, data=lambda w: {"legal_entity": "us-inc"}),
    _row("v1:gl-account-detail", "GET", READ, api=True, args=lambda w: [999999]),
    _row("v1:posting-rule-detail", "GET", READ, api=True, args=lambda w: [999999]),
    _row(
        "v1:posting-rule-list", "POST", {ADM}, api=True, data=lambda w: {"legal_entity": "us-inc"}
    ),
    _row("v1:product-mapping-detail", "GET", READ, api=True, args=lambda w: [w.product.pk]),
    _row(
        "v1:product-mapping-detail",
        "DELETE",
        {ADM},
        api=True,
        args=lambda w: [w.product.pk],
        query="?reason=retired",
    ),
    _row("v1:tax-mapping-detail", "GET", READ, api=True, args=lambda w: [999999]),
    _row("v1:tax-mapping-list", "POST", {ADM}, api=True, data=lambda w: {}),
    _row("v1:customer-link-detail", "GET", READ, api=True, args=lambda w: [999999]),
    _row("v1:customer-link-list", "POST", {ADM}, api=True, data=lambda w: {}),
    _row("v1:fx-rate-detail", "GET", READ, api=True, args=lambda w: [w.rate.pk]),
    _row("v1:fx-rate-detail", "DELETE", {ADM}, api=True, args=lambda w: [w.rate.pk]),
    _row("v1:sla-policy-detail", "GET", READ, api=True, args=lambda w: [999999]),
    _row("v1:sla-policy-list", "POST", {ADM}, api=True, data=lambda w: {}),
    _row("v1:connector-detail", "GET", READ, api=True, args=lambda w: ["netsuite"]),
    _row(
        "v1:connector-pause",
        "POST",
        {ADM},
        api=True,
        args=lambda w: ["netsuite"],
        data=lambda w: {"reason": "maintenance"},
    ),
    _row(
        "v1:connector-resume",
        "POST",
        {ADM},
        api=True,
        args=lambda w: ["netsuite"],
        data=lambda w: {"reason": "done"},
    ),
    _row("v1:mapping-change-detail", "GET", READ, api=True, args=lambda w: [w.change.pk]),
    _row("v1:mapping-change-approve", "POST", {ADM}, api=True, args=lambda w: [w.change.pk]),
    _row(
        "v1:mapping-change-reject",
        "POST",
        {ADM},
        api=True,
        args=lambda w: [w.change.pk],
        data=lambda w: {"note": "no"},
    ),
    # Only the proposer (iris, not a persona here) may withdraw.
    _row("v1:mapping-change-withdraw", "POST", set(), api=True, args=lambda w: [w.change.pk]),
    _row("v1:revenue-schedule-detail", "GET", READ, api=True, args=lambda w: [999999]),
    _row(
        "v1:revenue-schedule-deliver",
        "POST",
        {F},
        api=True,
        args=lambda w: [999999],
        data=lambda w: {"delivered_on": "2026-01-01"},
    ),
    _row("v1:report-trial-balance", "GET", READ, api=True),
    _row("v1:report-deferred-revenue", "GET", READ, api=True),
    _row("v1:report-lines", "GET", READ, api=True),
    _row(
        "v1:recognition-run",
        "POST",
        {F},
        api=True,
        data=lambda w: {"entity": "us-inc", "period": "2020-01"},
    ),
    _row(
        "v1:period-close",
        "POST",
        {F},
        api=True,
        data=lambda w: {"entity": "us-inc", "period": "2020-01"},
    ),
]


def _url_names(patterns, ns: str | None = None):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _url_names(p.url_patterns, p.namespace or ns)
        elif isinstance(p, URLPattern) and p.name:
            yield f"{ns}:{p.name}" if ns else p.name


def test_every_url_is_in_the_matrix():
    names = {n for n in _url_names(get_resolver().url_patterns) if not n.startswith("admin:")}
    covered = {row.name for row in ROWS} | set(OUTSIDE)
    assert names - covered == set(), "add a row for each new URL"
    assert covered - names == set()


def _client(persona: str, api: bool):
    if persona == "anonymous":
        return APIClient() if api else None, None
    user = UserFactory(username=f"p_{persona}", roles=[] if persona == "no_role" else [persona])
    if api:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        return client, user
    return user, user


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_role_may_or_may_not(row: Row, world: World) -> None:
    """Each persona in turn, each in a savepoint rolled back after it, so one's allowed
    write does not change what the next one meets."""
    url = reverse(row.name, args=row.args(world)) + row.query.format(rate=world.rate.pk)
    for persona in PERSONAS:
        with transaction.atomic():
            _check(row, persona, url, world)
            transaction.set_rollback(True)


def _check(row: Row, persona: str, url: str, world: World) -> None:
    if row.api:
        api_client, user = _client(persona, api=True)
        response = getattr(api_client, row.method.lower())(url, row.data(world), format="json")
    else:
        user, _ = _client(persona, api=False)
        client = Client()
        if user is not None:
            client.force_login(user)
        response = getattr(client, row.method.lower())(url, row.data(world))
    status = response.status_code
    if persona == "anonymous":
        if row.api:
            assert status == 401, (url, persona, status)
        else:
            assert status in (302, 401), (url, persona, status)
            if status == 302:
                assert response["Location"].startswith(reverse("login"))
        return
    allowed = persona in row.allowed or row.authenticated_is_enough
    if allowed:
        assert status not in (401, 403), (url, persona, status, response.content[:300])
        assert status < 500, (url, persona, status)
    else:
        assert status == 403, (url, persona, status, response.content[:300])
        denied = AuditEntry.objects.filter(action="access.denied", actor=user)
        assert denied.count() == 1, "every refusal is audited"
