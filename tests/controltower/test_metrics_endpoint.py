"""GET /metrics/: who may read it, and what it answers."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from sync.models import InboundEvent, WebhookRejection
from tests.factories import UserFactory
from tests.sync.test_metrics import parse, value

TOKEN = "scrape-token-for-tests"
URL = "/metrics/"


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


@pytest.fixture
def data(db):
    now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
    for n in range(3):
        InboundEvent.objects.create(
            source_system="stripe",
            source_event_id=f"evt_{n}",
            event_type="invoice.finalized",
            occurred_at=now,
            aggregate_key=f"in_{n}",
            payload={},
        )
    WebhookRejection.objects.create(
        source_system="stripe", reason="bad_signature", day=now.date(), count=2, last_at=now
    )


def test_url_is_named():
    assert reverse("metrics") == URL


@pytest.mark.django_db
def test_no_credentials_is_401(client, token):
    response = client.get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", "Bearer  "])
def test_wrong_token_is_401(client, token, header):
    assert client.get(URL, HTTP_AUTHORIZATION=header).status_code == 401


def test_the_token_answers_200_in_the_text_format(
    client, token, data, django_assert_max_num_queries
):
    with django_assert_max_num_queries(6):
        response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]
    m = parse(response.content.decode())
    assert value(m, "rct_inbound_events_received_total", source="stripe") == 3
    assert value(m, "rct_webhook_rejections_total", source="stripe", reason="bad_signature") == 2
    assert value(m, "rct_queue_depth") == 0


@pytest.mark.django_db
def test_no_token_is_accepted_when_none_is_configured(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer anything").status_code == 401


@pytest.mark.django_db
def test_signed_in_user_with_a_role_may_read(
    client, settings, auditor, django_assert_max_num_queries
):
    settings.METRICS_TOKEN = ""
    client.force_login(auditor)
    # session + user + groups, then the six metric queries
    with django_assert_max_num_queries(9):
        response = client.get(URL)
    assert response.status_code == 200
    assert "rct_queue_depth 0" in response.content.decode()


@pytest.mark.django_db
def test_signed_in_user_without_a_role_is_403(client, token):
    client.force_login(UserFactory(username="norole"))
    assert client.get(URL).status_code == 403


@pytest.mark.django_db
def test_only_get(client, token):
    assert client.post(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405
