"""A user limited to some legal entities sees nothing of the others: not in lists, counts,
search, filters, details, actions, reports, alerts, metrics or the API."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sync.errors import PermissionDenied
from sync.models import AuditEntry, ExceptionCase, GLAccount, Journey, Notification
from sync.permissions import entity_scope
from sync.services.journeys import journey_cancel, journey_replay
from sync.services.mappings import mapping_save
from tests.factories import (
    ExceptionCaseFactory,
    GLAccountFactory,
    JourneyFactory,
    LegalEntityFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    """Two entities, each with a completed journey, an open exception and an alert; one alert
    belongs to no entity (a connector down)."""
    us = LegalEntityFactory(code="us-inc")
    uk = LegalEntityFactory(code="uk-ltd", name="Acme UK Ltd", functional_currency="GBP")
    rows = {}
    for entity in (us, uk):
        done = JourneyFactory(legal_entity=entity, business_key=f"in_done_{entity.code}")
        case = ExceptionCaseFactory(
            journey__legal_entity=entity, journey__business_key=f"in_stuck_{entity.code}"
        )
        GLAccountFactory(legal_entity=entity, number=f"4000-{entity.code}", kind="revenue")
        Notification.objects.create(
            kind=Notification.Kind.SLA_BREACH,
            journey=done,
            legal_entity=entity,
            title=f"SLA breached: {done.business_key}",
        )
        rows[entity.code] = (done, case)
    Notification.objects.create(kind=Notification.Kind.CONNECTOR_DOWN, title="NetSuite is down")
    return us, uk, rows


@pytest.fixture
def us_ops(world):
    us, _, _ = world
    return UserFactory(username="usha", roles=["finance_ops", "integration_admin"], entities=[us])


def _api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_scope_is_read_in_one_query_with_the_roles(world, us_ops, django_assert_num_queries):
    us, _, _ = world
    with django_assert_num_queries(1):
        assert entity_scope(us_ops) == frozenset({us.pk})
        assert entity_scope(us_ops) == frozenset({us.pk})  # cached on the user object
    unlimited = UserFactory(roles=["manager"])
    assert entity_scope(unlimited) is None
    nothing = UserFactory(roles=["manager"], entities=[])
    assert entity_scope(nothing) == frozenset()


def test_queue_lists_counts_and_searches_only_own_entities(client, world, us_ops):
    _, _, rows = world
    client.force_login(us_ops)
    html = client.get(reverse("exception-list")).content.decode()
    assert "in_stuck_us-inc" in html
    assert "in_stuck_uk-ltd" not in html
    assert 'id="open-count"' in html and ">1<" in html.split('id="open-count"')[1][:80]
    uk_row = f'id="exception-{rows["uk-ltd"][1].pk}"'
    searched = client.get(reverse("exception-list"), {"q": "in_stuck_uk-ltd"}).content.decode()
    assert uk_row not in searched and "<strong>0</strong>" in searched
    by_corr = client.get(
        reverse("exception-list"), {"q": str(rows["uk-ltd"][1].journey.correlation_id)}
    ).content.decode()
    assert uk_row not in by_corr
    # Naming the other entity is an invalid choice, not a way round the scope.
    other = client.get(reverse("exception-list"), {"entity": "uk-ltd"}).content.decode()
    assert uk_row not in other and "Select a valid choice" in other
    assert '<option value="uk-ltd"' not in html


def test_journeys_list_detail_and_actions_hide_other_entities(client, world, us_ops):
    _, _, rows = world
    client.force_login(us_ops)
    html = client.get(reverse("journey-list")).content.decode()
    assert "in_done_us-inc" in html and "in_done_uk-ltd" not in html
    uk_stuck = rows["uk-ltd"][1].journey
    assert client.get(reverse("journey-detail", args=[uk_stuck.pk])).status_code == 404
    replay = client.post(reverse("journey-replay", args=[uk_stuck.pk]), {"reason": "try"})
    assert replay.status_code == 404
    cancel = client.post(reverse("journey-action", args=[uk_stuck.pk, "cancel"]), {"reason": "x"})
    assert cancel.status_code == 404
    uk_case = rows["uk-ltd"][1]
    assert client.post(reverse("exception-replay", args=[uk_case.pk])).status_code == 404
    bulk = client.post(reverse("exception-list"), {"reason": "r", "case": [uk_case.pk]})
    assert bulk.status_code in (200, 302)
    uk_stuck.refresh_from_db()
    assert uk_stuck.state == Journey.State.EXCEPTION
    assert not AuditEntry.objects.filter(action__startswith="journey.").exists()


def test_services_refuse_other_entities_even_when_called_directly(world, us_ops):
    _, uk, rows = world
    uk_stuck = rows["uk-ltd"][1].journey
    with pytest.raises(PermissionDenied):
        journey_replay(journey_id=uk_stuck.pk, actor=us_ops, reason="r")
    with pytest.raises(PermissionDenied):
        journey_cancel(journey_id=uk_stuck.pk, actor=us_ops, reason="r")
    with pytest.raises(PermissionDenied):
        mapping_save(
            actor=us_ops,
            instance=GLAccount(legal_entity=uk, number="9999", name="x", kind="revenue"),
        )
    assert Journey.objects.get(pk=uk_stuck.pk).state == Journey.State.EXCEPTION
    assert not GLAccount.objects.filter(number="9999").exists()


def test_alerts_show_own_entity_and_entity_less_ones(client, world, us_ops):
    client.force_login(us_ops)
    html = client.get(reverse("alert-list")).content.decode()
    assert "in_done_us-inc" in html and "NetSuite is down" in html
    assert "in_done_uk-ltd" not in html
    uk_alert = Notification.objects.get(legal_entity__code="uk-ltd")
    assert client.post(reverse("alert-acknowledge", args=[uk_alert.pk])).status_code == 404
    uk_alert.refresh_from_db()
    assert uk_alert.acknowledged_at is None


def test_reports_offer_only_own_entities(client, world, us_ops):
    client.force_login(us_ops)
    html = client.get(reverse("report-index")).content.decode()
    assert "us-inc" in html and "uk-ltd" not in html
    other = client.get(reverse("report-index"), {"entity": "uk-ltd", "period": "2026-01"})
    assert "No legal entity has the code “uk-ltd”" in other.content.decode()


def test_metrics_cover_every_entity_so_a_limited_user_is_refused(client, world, us_ops):
    client.force_login(us_ops)
    response = client.get("/metrics/")
    assert response.status_code == 403
    assert b"every legal entity" in response.content
    assert AuditEntry.objects.filter(action="access.denied", actor=us_ops).count() == 1


def test_api_lists_and_details_are_scoped(world, us_ops):
    _, _, rows = world
    api = _api(us_ops)
    journeys = api.get("/api/v1/journeys/").json()
    assert {j["business_key"] for j in journeys["results"]} == {"in_done_us-inc", "in_stuck_us-inc"}
    cases = api.get("/api/v1/exceptions/").json()
    assert [c["id"] for c in cases["results"]] == [rows["us-inc"][1].pk]
    assert api.get(f"/api/v1/journeys/{rows['uk-ltd'][0].pk}/").status_code == 404
    assert api.get(f"/api/v1/exceptions/{rows['uk-ltd'][1].pk}/").status_code == 404
    entities = api.get("/api/v1/legal-entities/").json()
    assert [e["code"] for e in entities["results"]] == ["us-inc"]
    accounts = api.get("/api/v1/gl-accounts/").json()
    assert [a["number"] for a in accounts["results"]] == ["4000-us-inc"]
    filtered = api.get("/api/v1/journeys/", {"entity": "uk-ltd"})
    assert filtered.status_code == 400


def test_api_writes_cannot_reach_other_entities(world, us_ops):
    _, _uk, rows = world
    api = _api(us_ops)
    created = api.post(
        "/api/v1/gl-accounts/",
        {"legal_entity": "uk-ltd", "number": "5000", "name": "Sneaky", "kind": "revenue"},
        format="json",
    )
    assert created.status_code == 400
    assert "uk-ltd" in str(created.json())
    product = api.post(
        "/api/v1/product-mappings/",
        {"source_ref": "price_x", "product_code": "X", "revenue_type": "ratable"},
        format="json",
    )
    assert product.status_code == 403
    assert "every legal entity" in product.json()["detail"]
    replay = api.post(
        "/api/v1/journeys/replay/",
        {"reason": "r", "journeys": [rows["uk-ltd"][1].journey.pk]},
        format="json",
    )
    assert replay.status_code == 409, replay.json()
    assert replay.json()["detail"] == "No journey selected."
    assert Journey.objects.get(pk=rows["uk-ltd"][1].journey.pk).state == Journey.State.EXCEPTION
    assert not GLAccount.objects.filter(number="5000").exists()


def test_a_limit_with_no_entities_shows_nothing(client, world):
    nobody = UserFactory(roles=["manager"], entities=[])
    client.force_login(nobody)
    assert "in_stuck_" not in client.get(reverse("exception-list")).content.decode()
    assert "in_done_" not in client.get(reverse("journey-list")).content.decode()
    assert _api(nobody).get("/api/v1/journeys/").json()["count"] == 0


def test_unlimited_user_sees_every_entity(client, world):
    boss = UserFactory(roles=["manager"])
    client.force_login(boss)
    html = client.get(reverse("exception-list")).content.decode()
    assert "in_stuck_us-inc" in html and "in_stuck_uk-ltd" in html
    assert ExceptionCase.objects.count() == 2
