"""POST /journeys/{id}/replay/: finance ops only, audited with the user, never posts twice."""

from __future__ import annotations

import pytest

from sync.models import AuditEntry, ExceptionCase, JournalEntry, Journey, Step
from tests.conftest import drain, emulator_records
from tests.controltower.api.helpers import invoice_event, make_journey, post_webhook
from tests.factories import map_product

pytestmark = pytest.mark.django_db


def _replay_url(journey: Journey) -> str:
    return f"/api/v1/journeys/{journey.pk}/replay/"


def _replay_audits(journey: Journey):
    return AuditEntry.objects.filter(action="journey.replay", object_id=str(journey.pk))


@pytest.fixture
def stuck(client, ledger, netsuite) -> Journey:
    """An invoice whose price has no product mapping: in exception at map_accounts."""
    post_webhook(client, invoice_event(invoice_id="in_stuck", price="price_new"))
    drain()
    journey = Journey.objects.get(business_key="in_stuck")
    assert journey.state == Journey.State.EXCEPTION
    return journey


def test_finance_ops_replays_after_the_fix_and_the_entry_posts_once(
    api, stuck, finance_ops, netsuite, django_capture_on_commit_callbacks
):
    map_product("price_new")

    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        resp = api(finance_ops).post(
            _replay_url(stuck), {"reason": "mapped price_new"}, format="json"
        )

    assert resp.status_code == 202
    assert resp.json() == {"journey": stuck.pk, "outcome": "requeued", "from_step": "map_accounts"}
    assert len(enqueued) == 1  # the failed step goes back on the queue after commit
    [audit] = _replay_audits(stuck)
    assert (audit.actor, audit.actor_label) == (finance_ops, "fiona")
    assert audit.reason == "mapped price_new"
    assert audit.correlation_id == str(stuck.correlation_id)
    assert audit.after["from_step"] == "map_accounts"
    assert ExceptionCase.objects.get(journey=stuck).state == ExceptionCase.State.IN_PROGRESS

    drain()
    stuck.refresh_from_db()
    assert stuck.state == Journey.State.COMPLETED
    steps = dict(stuck.steps.values_list("name", "state"))
    assert set(steps.values()) == {Step.State.SUCCEEDED}
    entry = JournalEntry.objects.get(journey=stuck)
    assert entry.state == JournalEntry.State.POSTED
    assert len(emulator_records(netsuite)) == 1


def test_replaying_a_completed_journey_says_so_and_changes_nothing(
    api, stuck, finance_ops, netsuite
):
    map_product("price_new")
    client = api(finance_ops)
    client.post(_replay_url(stuck), {}, format="json")
    drain()

    resp = client.post(_replay_url(stuck), {}, format="json")

    assert resp.status_code == 202
    assert resp.json() == {"journey": stuck.pk, "outcome": "already_completed", "from_step": None}
    drain()
    assert len(emulator_records(netsuite)) == 1
    assert [a.after["outcome"] for a in _replay_audits(stuck).order_by("id")] == [
        "requeued",
        "already_completed",
    ]


@pytest.mark.parametrize("persona", ["auditor", "manager", "integration_admin"])
def test_other_roles_get_403_and_leave_no_audit_entry(api, stuck, persona, request):
    resp = api(request.getfixturevalue(persona)).post(
        _replay_url(stuck), {"reason": "try"}, format="json"
    )
    assert resp.status_code == 403
    assert resp.json()["detail"] == "Only finance ops may replay journeys."
    assert not _replay_audits(stuck).exists()
    stuck.refresh_from_db()
    assert stuck.state == Journey.State.EXCEPTION


def test_a_journey_still_moving_is_a_409_with_a_message(api, finance_ops):
    journey = make_journey(business_key="in_busy", state=Journey.State.RUNNING)
    resp = api(finance_ops).post(_replay_url(journey), {}, format="json")
    assert resp.status_code == 409
    assert "in_busy" in resp.json()["detail"] and "running" in resp.json()["detail"]
    assert not _replay_audits(journey).exists()


def test_replay_of_an_unknown_journey_is_404(api, finance_ops):
    resp = api(finance_ops).post("/api/v1/journeys/424242/replay/", {}, format="json")
    assert resp.status_code == 404
    assert not AuditEntry.objects.exists()


def test_an_overlong_reason_is_a_400(api, finance_ops):
    journey = make_journey(state=Journey.State.EXCEPTION, steps=[("validate", "failed")])
    resp = api(finance_ops).post(_replay_url(journey), {"reason": "x" * 2001}, format="json")
    assert resp.status_code == 400
    assert list(resp.json()) == ["reason"]
    assert not AuditEntry.objects.exists()
