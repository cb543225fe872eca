"""SLA: the sweep marks at-risk and breached journeys and raises exactly one alert per breach,
sent out once by e-mail and webhook when configured; people acknowledge it on screen."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from sync.engine import sweep
from sync.errors import PermissionDenied
from sync.models import AuditEntry, Journey, Notification
from sync.services.notifications import notification_acknowledge, notifications_deliver
from tests.conftest import drain
from tests.factories import make_ledger, map_product
from tests.stripe_events import invoice_event, post_signed

pytestmark = pytest.mark.django_db


@pytest.fixture
def stuck_journey(client, netsuite):
    make_ledger()
    map_product("price_platform")  # but no customer link and no customer: it waits
    post_signed(client, invoice_event("cus_unknown", invoice_id="in_sla"))
    drain()
    journey = Journey.objects.get(business_key="in_sla")
    assert journey.state == Journey.State.WAITING
    return journey


def _age(journey: Journey, minutes: int) -> None:
    now = timezone.now()
    Journey.objects.filter(pk=journey.pk).update(
        sla_warning_at=now - dt.timedelta(minutes=minutes),
        sla_due_at=now - dt.timedelta(minutes=minutes) + dt.timedelta(minutes=10),
    )


def test_at_risk_then_one_alert_per_breach_however_often_swept(stuck_journey):
    _age(stuck_journey, 5)  # warning passed, due in 5 minutes
    assert sweep()["at_risk"] == 1
    stuck_journey.refresh_from_db()
    assert stuck_journey.sla_state == Journey.SlaState.AT_RISK
    assert not Notification.objects.exists()

    _age(stuck_journey, 20)  # due 10 minutes ago
    assert [sweep()["breached"] for _ in range(3)] == [1, 0, 0]
    [note] = Notification.objects.all()
    assert note.kind == "sla_breach" and note.journey == stuck_journey
    assert "in_sla" in note.title and note.delivered_at is None
    stuck_journey.refresh_from_db()
    assert stuck_journey.sla_state == Journey.SlaState.BREACHED


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_breach_is_sent_once_by_email_and_webhook(stuck_journey, settings):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received = []
    settings.SLA_ALERT_EMAILS = ["controller@example.com"]
    settings.SLA_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    try:
        _age(stuck_journey, 20)
        sweep()
        assert notifications_deliver() == 1
        assert notifications_deliver() == 0
    finally:
        server.shutdown()
    assert [m.to for m in mail.outbox] == [["controller@example.com"]]
    assert "SLA breached" in mail.outbox[0].subject
    assert [(r["kind"], r["business_key"]) for r in _Hook.received] == [("sla_breach", "in_sla")]
    assert Notification.objects.get().delivered_at is not None


def test_finance_ops_acknowledges_and_the_auditor_cannot(
    client, stuck_journey, finance_ops, auditor
):
    _age(stuck_journey, 20)
    sweep()
    note = Notification.objects.get()
    client.force_login(auditor)
    page = client.get("/alerts/").content.decode()
    assert "in_sla" in page and "Acknowledge</button>" not in page
    assert client.post(f"/alerts/{note.pk}/acknowledge/").status_code == 403
    with pytest.raises(PermissionDenied):
        notification_acknowledge(notification_id=note.pk, actor=auditor)

    client.force_login(finance_ops)
    assert "Acknowledge</button>" in client.get("/alerts/").content.decode()
    client.post(f"/alerts/{note.pk}/acknowledge/")
    note.refresh_from_db()
    assert note.acknowledged_by == finance_ops
    assert AuditEntry.objects.get(action="notification.acknowledge").actor == finance_ops
    assert "No open alerts." in client.get("/alerts/").content.decode()
