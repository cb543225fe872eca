"""Signing in is locked after repeated wrong passwords; every refused request is logged and
written to the audit trail."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

from sync.models import AuditEntry

pytestmark = pytest.mark.django_db

GOOD = "pw-for-tests-123"


def _sign_in(client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_five_wrong_passwords_lock_the_username_even_with_the_right_one(
    client, finance_ops, settings
):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        response = _sign_in(client, "fiona", "wrong")
        assert response.status_code == 200  # the form again, with its error
        assert b"Please enter a correct username and password" in response.content
    locked = _sign_in(client, "fiona", "wrong")
    assert locked.status_code == 429
    assert b"Signing in is locked" in locked.content
    # Now even the right password is refused, and no session is opened.
    again = _sign_in(client, "fiona", GOOD)
    assert again.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_success_before_the_limit_resets_the_count(client, finance_ops):
    for _ in range(4):
        _sign_in(client, "fiona", "wrong")
    assert _sign_in(client, "fiona", GOOD).status_code == 302
    client.logout()
    for _ in range(4):
        assert _sign_in(client, "fiona", "wrong").status_code == 200
    assert _sign_in(client, "fiona", GOOD).status_code == 302


def test_lockout_of_one_username_leaves_others_signing_in(client, finance_ops, manager):
    for _ in range(5):
        _sign_in(client, "fiona", "wrong")
    assert _sign_in(client, "fiona", GOOD).status_code == 429
    assert _sign_in(client, "mona", GOOD).status_code == 302


def test_a_refused_screen_action_is_logged_and_audited(client, manager, caplog):
    client.force_login(manager)
    url = reverse("connector-action", args=["netsuite", "pause"])
    with caplog.at_level(logging.WARNING, logger="controltower.access"):
        response = client.post(url, {"reason": "test"})
    assert response.status_code == 403
    entry = AuditEntry.objects.get(action="access.denied")
    assert entry.actor == manager
    assert entry.object_id == f"POST {url}"
    assert "Only integration admins" in entry.reason
    assert any(
        "access denied: POST" in r.getMessage() and "mona" in r.getMessage() for r in caplog.records
    )


def test_a_refused_api_call_is_audited_with_the_api_reason(manager):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(manager)
    response = client.post("/api/v1/journeys/1/cancel/", {"reason": "r"}, format="json")
    assert response.status_code == 403
    entry = AuditEntry.objects.get(action="access.denied")
    assert entry.actor_label == "mona"
    assert entry.reason == "Only finance ops may cancel journeys."


def test_a_post_without_the_csrf_token_is_refused_and_audited(finance_ops):
    """htmx sends the token in a header from <body hx-headers>; a request without it (a forged
    form on another site) changes nothing."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(finance_ops)
    page = client.get(reverse("exception-list")).content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in page
    response = client.post(reverse("exception-list"), {"action": "tag", "tag": "x"})
    assert response.status_code == 403
    entry = AuditEntry.objects.get(action="access.denied")
    assert entry.actor == finance_ops and "CSRF" in entry.reason
