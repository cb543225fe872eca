"""POST /webhooks/stripe/: verified events are stored once; anything else is refused whole."""

from __future__ import annotations

import json
import time

import pytest

from connectors.stripe import emulator as se
from sync.models import InboundEvent, WebhookRejection
from tests.stripe_events import invoice_event, post_signed

pytestmark = pytest.mark.django_db


def _post(client, body: bytes, signature: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post("/webhooks/stripe/", data=body, content_type="application/json", **headers)


def test_a_verified_event_is_stored_with_its_envelope(client):
    event = invoice_event(invoice_id="in_store")
    resp = post_signed(client, event)
    assert resp.status_code == 200
    assert resp.json() == {"received": True, "id": event["id"], "duplicate": False}
    stored = InboundEvent.objects.get()
    assert (stored.source_system, stored.source_event_id, stored.event_type) == (
        "stripe",
        event["id"],
        "invoice.finalized",
    )
    assert stored.payload["data"]["object"]["id"] == "in_store"
    assert stored.aggregate_key == "stripe:cus_acme"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("bad_signature", "bad_signature"),
        ("missing_signature", "missing_signature"),
        ("stale", "stale_timestamp"),
        ("malformed_json", "malformed_json"),
        ("missing_type", "missing_field"),
    ],
)
def test_bad_input_is_refused_with_400_and_changes_nothing(client, settings, case, reason):
    secret = settings.STRIPE_WEBHOOK_SECRET
    event = invoice_event()
    body = se.serialize(event)
    signature = se.sign_payload(body, secret)
    if case == "bad_signature":
        signature = se.sign_payload(body, "whsec_someone_else")
    elif case == "missing_signature":
        signature = None
    elif case == "stale":
        signature = se.sign_payload(body, secret, timestamp=int(time.time()) - 301)
    elif case == "malformed_json":
        body = b'{"id": "evt_1", "type": '
        signature = se.sign_payload(body, secret)
    elif case == "missing_type":
        del event["type"]
        body = json.dumps(event).encode()
        signature = se.sign_payload(body, secret)

    resp = _post(client, body, signature)

    assert resp.status_code == 400
    assert resp.json()["error"]["reason"] == reason
    assert InboundEvent.objects.count() == 0
    assert WebhookRejection.objects.get(reason=reason).count == 1


def test_rejections_are_counted_per_reason(client):
    for _ in range(3):
        _post(client, b"{}", "t=1,v1=deadbeef")
    assert WebhookRejection.objects.get().count == 3


def test_webhook_only_accepts_post(client):
    assert client.get("/webhooks/stripe/").status_code == 405
    assert InboundEvent.objects.count() == 0
