"""Who may call the API: a token (or a session) and a Control Tower role."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.throttling import UserRateThrottle

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

READ_ENDPOINTS = [
    "/api/v1/journeys/",
    "/api/v1/exceptions/",
    "/api/v1/journal-entries/",
    "/api/v1/legal-entities/",
    "/api/v1/gl-accounts/",
    "/api/v1/posting-rules/",
    "/api/v1/product-mappings/",
    "/api/v1/tax-mappings/",
    "/api/v1/customer-links/",
    "/api/v1/fx-rates/",
    "/api/v1/sla-policies/",
]


@pytest.mark.parametrize("url", READ_ENDPOINTS)
def test_no_credentials_get_401_with_a_token_challenge(api, url):
    resp = api().get(url)
    assert resp.status_code == 401
    assert resp["WWW-Authenticate"] == "Token"
    assert "credentials" in resp.json()["detail"]


def test_a_wrong_token_gets_401(api):
    client = api()
    client.credentials(HTTP_AUTHORIZATION="Token 0000000000000000000000000000000000000000")
    resp = client.get("/api/v1/journeys/")
    assert resp.status_code == 401
    assert resp.json()["detail"] == "Invalid token."


def test_replay_without_credentials_gets_401(api):
    assert api().post("/api/v1/journeys/1/replay/", {}, format="json").status_code == 401


@pytest.mark.parametrize("url", READ_ENDPOINTS)
def test_a_user_without_a_role_gets_403(api, url):
    outsider = UserFactory(username="olga")
    resp = api(outsider).get(url)
    assert resp.status_code == 403
    assert resp.json()["detail"] == "Your account has no Control Tower role."


def test_a_user_without_a_role_cannot_write_mappings_either(api):
    outsider = UserFactory(username="olga")
    resp = api(outsider).post("/api/v1/sla-policies/", {}, format="json")
    assert resp.status_code == 403


@pytest.mark.parametrize("persona", ["finance_ops", "integration_admin", "manager", "auditor"])
def test_every_role_may_read(api, persona, request):
    client = api(request.getfixturevalue(persona))
    for url in READ_ENDPOINTS:
        resp = client.get(url)
        assert resp.status_code == 200, url
        assert resp.json()["results"] == []


def test_a_session_login_works_too(client, auditor):
    client.force_login(auditor)
    assert client.get("/api/v1/journeys/").status_code == 200


def test_a_superuser_without_groups_may_read(api):
    root = UserFactory(username="root", is_superuser=True)
    assert api(root).get("/api/v1/journeys/").status_code == 200


@pytest.fixture
def tight_throttle(monkeypatch):
    """Two requests a minute per user, on a clean throttle history."""
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "2/min"})
    cache.clear()
    yield
    cache.clear()


def test_requests_are_throttled_per_user(api, auditor, manager, tight_throttle):
    client = api(auditor)
    codes = [client.get("/api/v1/journeys/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert "throttled" in client.get("/api/v1/journeys/").json()["detail"]
    assert api(manager).get("/api/v1/journeys/").status_code == 200


def test_browsable_api_renders_a_mapping_form_for_an_admin(client, integration_admin, ledger):
    client.force_login(integration_admin)
    resp = client.get("/api/v1/posting-rules/", HTTP_ACCEPT="text/html")
    assert resp.status_code == 200
    assert b"deferred_revenue_account" in resp.content
