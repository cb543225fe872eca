"""The Connectors screen and /api/v1/connectors/: every role reads connector health; only
integration admins pause and resume (audited); others get 403."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from sync.models import AuditEntry, ConnectorHealth
from sync.services.connector_health import connector_health, record_transient_failure
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
CH = ConnectorHealth.State
LIST = "/api/v1/connectors/"


def _web(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _health() -> ConnectorHealth:
    return connector_health("netsuite")


@pytest.mark.parametrize("persona", ["auditor", "finance_ops", "manager", "integration_admin"])
def test_every_role_sees_the_screen_and_only_admins_get_buttons(persona, request):
    user = request.getfixturevalue(persona)
    resp = _web(user).get(reverse("connector-list"))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "NetSuite" in html and "Closed (healthy)" in html
    assert 'href="/connectors/"' in html  # the nav link
    assert ("Reason (audited)" in html) == (persona == "integration_admin")


def test_the_screen_shows_an_open_circuit_with_its_error_and_next_probe(auditor, settings):
    settings.RCT = {**settings.RCT, "CIRCUIT_FAILURE_THRESHOLD": 2}
    record_transient_failure("netsuite", "NetSuite answered 503 Service Unavailable")
    record_transient_failure("netsuite", "NetSuite answered 503 Service Unavailable")
    html = _web(auditor).get(reverse("connector-list")).content.decode()
    assert "Open (failing; waiting to probe)" in html
    assert "NetSuite answered 503 Service Unavailable" in html
    assert f"{_health().next_probe_at:%Y-%m-%d %H:%M:%S}" in html
    assert '<td class="num">2</td>' in html


def test_admin_pauses_and_resumes_from_the_screen(integration_admin):
    web = _web(integration_admin)
    url = reverse("connector-action", args=["netsuite", "pause"])
    resp = web.post(url, {"reason": "ERP upgrade tonight"}, follow=True)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "NetSuite paused." in html and "ivan · ERP upgrade tonight" in html
    assert ">Resume</button>" in html
    assert _health().state == CH.PAUSED
    resp = web.post(reverse("connector-action", args=["netsuite", "resume"]), {"reason": "done"})
    assert resp.status_code == 302 and _health().state == CH.CLOSED
    assert list(
        AuditEntry.objects.filter(action__startswith="connector.")
        .order_by("pk")
        .values_list("action", "actor_label", "reason")
    ) == [
        ("connector.pause", "ivan", "ERP upgrade tonight"),
        ("connector.resume", "ivan", "done"),
    ]


def test_a_pause_without_a_reason_is_refused_with_a_message(integration_admin):
    resp = _web(integration_admin).post(
        reverse("connector-action", args=["netsuite", "pause"]), {"reason": " "}, follow=True
    )
    assert "Give a reason" in resp.content.decode()
    assert _health().state == CH.CLOSED


@pytest.mark.parametrize("persona", ["auditor", "finance_ops"])
def test_others_get_403_on_the_screen_and_the_api(persona, request):
    user = request.getfixturevalue(persona)
    url = reverse("connector-action", args=["netsuite", "pause"])
    assert _web(user).post(url, {"reason": "x"}).status_code == 403
    api = _api(user)
    assert api.post(f"{LIST}netsuite/pause/", {"reason": "x"}, format="json").status_code == 403
    assert api.post(f"{LIST}netsuite/resume/", {"reason": "x"}, format="json").status_code == 403
    assert _health().state == CH.CLOSED
    assert not AuditEntry.objects.filter(action__startswith="connector.").exists()


def test_api_lists_for_any_role_and_admin_pauses_and_resumes(auditor, integration_admin):
    resp = _api(auditor).get(LIST)
    assert resp.status_code == 200
    [row] = resp.json()
    assert (row["system"], row["state"], row["consecutive_failures"]) == ("netsuite", "closed", 0)

    api = _api(integration_admin)
    resp = api.post(f"{LIST}netsuite/pause/", {"reason": "maintenance"}, format="json")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["state"], body["paused_by"], body["paused_reason"]) == (
        "paused",
        "ivan",
        "maintenance",
    )
    again = api.post(f"{LIST}netsuite/pause/", {"reason": "maintenance"}, format="json")
    assert again.status_code == 409
    assert api.post(f"{LIST}netsuite/resume/", {}, format="json").status_code == 400
    resp = api.post(f"{LIST}netsuite/resume/", {"reason": "back"}, format="json")
    assert resp.status_code == 200 and resp.json()["state"] == "closed"
    detail = _api(auditor).get(f"{LIST}netsuite/")
    assert detail.status_code == 200 and detail.json()["paused_by"] is None


def test_api_needs_credentials():
    assert APIClient().get(LIST).status_code in {401, 403}


def test_screen_shows_last_success_error_rate_and_rate_limit(client, monkeypatch):
    from sync.services import connector_health as health

    monkeypatch.setattr(health, "_answered", {})
    monkeypatch.setattr(health, "_flushed_at", {})
    health.connectors_list()
    health.record_success("netsuite", calls=3)  # the first flush is at once
    health.record_success("netsuite", calls=2)  # within FLUSH_SECONDS: counted in memory
    health.record_transient_failure("netsuite", "429 Too Many Requests", status=429, retry_after=30)
    row = ConnectorHealth.objects.get(system="netsuite")
    assert (row.window_ok, row.window_failed) == (3, 1)
    assert row.error_rate == 25.0 and row.rate_limited and row.last_success_at is not None
    assert health._answered["netsuite"] == 2
    client.force_login(UserFactory(roles=["manager"]))
    html = client.get(reverse("connector-list")).content.decode()
    assert "25.0%" in html and "of 4 since" in html and "Slowed down until" in html
