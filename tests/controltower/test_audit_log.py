"""The audit log: every action filterable on screen; auditors export it as CSV (itself audited);
an entity-limited reader sees only their entities' entries, in the list and the export."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from sync.models import AuditEntry
from sync.services.audit import audit_record
from tests.factories import JourneyFactory, LegalEntityFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail(integration_admin):
    us = LegalEntityFactory()
    uk = LegalEntityFactory(code="uk-ltd", functional_currency="GBP")
    us_j = JourneyFactory(legal_entity=us, business_key="in_us")
    uk_j = JourneyFactory(legal_entity=uk, business_key="in_uk")
    audit_record(actor=integration_admin, action="journey.replay", obj=us_j, reason="fixed us")
    audit_record(actor=None, action="journey.complete", obj=uk_j, after={"state": "completed"})
    return us, uk


def _rows(html: str) -> int:
    return html.count('<tr id="audit-')


def test_every_role_reads_and_filters_the_log(
    client, manager, trail, django_assert_max_num_queries
):
    client.force_login(manager)
    client.get(reverse("audit-log"))
    with django_assert_max_num_queries(9):
        html = client.get(reverse("audit-log")).content.decode()
    assert _rows(html) == 2 and "fixed us" in html
    assert "Export CSV" not in html  # auditors export
    assert _rows(client.get(reverse("audit-log"), {"actor": "system"}).content.decode()) == 1
    assert _rows(client.get(reverse("audit-log"), {"action": "journey.re"}).content.decode()) == 1
    assert _rows(client.get(reverse("audit-log"), {"q": "fixed"}).content.decode()) == 1


def test_auditor_exports_the_filtered_log_as_csv_and_the_export_is_audited(client, auditor, trail):
    client.force_login(auditor)
    response = client.get(reverse("audit-export"), {"action": "journey."})
    assert response["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="audit-' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["action"] for r in rows] == ["journey.replay", "journey.complete"]
    assert rows[0]["actor"] == "ivan" and rows[0]["reason"] == "fixed us"
    assert rows[1]["after"] == '{"state": "completed"}'
    export = AuditEntry.objects.get(action="audit.export")
    assert export.actor == auditor and "action=journey." in export.object_repr


@pytest.mark.parametrize("persona", ["finance_ops", "integration_admin", "manager"])
def test_only_auditors_export(client, request, persona, trail):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(reverse("audit-export")).status_code == 403
    assert not AuditEntry.objects.filter(action="audit.export").exists()


def test_entity_limited_reader_sees_only_their_entities_entries(client, trail):
    _, uk = trail
    limited = UserFactory(roles=["auditor"], entities=[uk])
    client.force_login(limited)
    html = client.get(reverse("audit-log")).content.decode()
    assert _rows(html) == 1 and "in_uk" in html and "fixed us" not in html
    body = b"".join(client.get(reverse("audit-export")).streaming_content).decode()
    assert "journey.complete" in body and "fixed us" not in body
