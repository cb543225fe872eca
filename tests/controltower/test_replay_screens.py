"""Replay options on the screens: dry run, replay from a chosen step, cancel, replay selected."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from sync.models import AuditEntry, ExceptionCase, Invoice, JournalEntry, Journey
from tests.conftest import drain, emulator_records
from tests.controltower.test_screens import HX, login, rows, stuck_on_unmapped_product
from tests.factories import link_customer, make_ledger, map_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(db):
    ledger = make_ledger()
    link_customer(ledger, "cus_acme")
    return ledger


@pytest.fixture
def stuck(ledger, netsuite):
    return stuck_on_unmapped_product()


def _action(journey: Journey, action: str) -> str:
    return reverse("journey-action", args=[journey.pk, action])


# --- journey detail -----------------------------------------------------------------------------


def test_detail_shows_the_actions_to_finance_ops_and_only_the_dry_run_to_others(
    client, stuck, finance_ops, auditor
):
    url = reverse("journey-detail", args=[stuck.journey.pk])
    html = login(client, finance_ops).get(url).content.decode()
    assert 'name="from_step"' in html and '<option value="build_entry">' in html
    assert _action(stuck.journey, "cancel") in html
    assert _action(stuck.journey, "dry-run") in html
    html = login(client, auditor).get(url).content.decode()
    assert 'name="from_step"' not in html and _action(stuck.journey, "cancel") not in html
    assert _action(stuck.journey, "dry-run") in html


def test_dry_run_panel_shows_the_entry_and_the_put_and_writes_nothing(
    client, stuck, auditor, netsuite
):
    map_product("price_platform")
    counts = (JournalEntry.objects.count(), Invoice.objects.count(), AuditEntry.objects.count())

    response = login(client, auditor).get(_action(stuck.journey, "dry-run"), headers=HX)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section class="panel dry-run" id="dry-run"')
    lines = re.findall(r'<td class="mono">(\d+)</td>\s*<td>([^<]+)</td>', html)
    assert lines == [("1200", "Accounts receivable"), ("2400", "Deferred revenue")]
    assert "PUT /services/rest/record/v1/journalEntry/eid:RCT-STRIPE-" + stuck.invoice["id"] in html
    assert "&quot;externalId&quot;: &quot;RCT-STRIPE-" in html
    assert (
        JournalEntry.objects.count(),
        Invoice.objects.count(),
        AuditEntry.objects.count(),
    ) == counts
    assert emulator_records(netsuite) == []


def test_dry_run_before_the_fix_shows_the_defect_sentence(client, stuck, manager):
    html = login(client, manager).get(_action(stuck.journey, "dry-run")).content.decode()
    assert 'id="dry-run-defect"' in html  # a full page without htmx
    assert "Unmapped product" in html and "no product mapping for price_platform" in html


def test_replay_from_a_chosen_step(client, stuck, finance_ops, netsuite):
    map_product("price_platform")
    response = login(client, finance_ops).post(
        reverse("journey-replay", args=[stuck.journey.pk]),
        {"reason": "mapped", "from_step": "link_customer"},
        headers=HX,
    )
    assert response.status_code == 200
    assert "Replay queued from step “link_customer”" in response.content.decode()
    audit = AuditEntry.objects.get(action="journey.replay")
    assert (audit.actor, audit.reason, audit.after["from_step"]) == (
        finance_ops,
        "mapped",
        "link_customer",
    )
    drain()
    assert len(emulator_records(netsuite)) == 1


def test_cancel_needs_a_reason_and_resolves_the_exception(client, stuck, finance_ops):
    login(client, finance_ops)
    url = _action(stuck.journey, "cancel")
    html = client.post(url, {"reason": " "}, headers=HX).content.decode()
    assert "the reason is required" in html
    assert Journey.objects.get(pk=stuck.journey.pk).state == Journey.State.EXCEPTION

    response = client.post(url, {"reason": "test invoice"}, headers=HX)

    html = response.content.decode()
    assert "cancelled; its exceptions are resolved" in html
    assert 'id="open-count"' in html and 'hx-swap-oob="true"' in html
    assert Journey.objects.get(pk=stuck.journey.pk).state == Journey.State.CANCELLED
    stuck.case.refresh_from_db()
    assert stuck.case.state == ExceptionCase.State.RESOLVED
    audit = AuditEntry.objects.get(action="journey.cancel")
    assert (audit.actor, audit.reason) == (finance_ops, "test invoice")


@pytest.mark.parametrize("persona", ["auditor", "manager"])
def test_other_roles_get_403_on_cancel_replay_and_replay_selected(client, stuck, persona, request):
    login(client, request.getfixturevalue(persona))
    assert client.post(_action(stuck.journey, "cancel"), {"reason": "r"}).status_code == 403
    replay = reverse("journey-replay", args=[stuck.journey.pk])
    assert client.post(replay, {"from_step": "validate"}).status_code == 403
    bulk = client.post(reverse("exception-list"), {"reason": "r", "case": [stuck.case.pk]})
    assert bulk.status_code == 403
    assert (
        not AuditEntry.objects.filter(actor__isnull=False).exclude(action="access.denied").exists()
    )
    assert AuditEntry.objects.filter(action="access.denied").count() == 3
    assert Journey.objects.get(pk=stuck.journey.pk).state == Journey.State.EXCEPTION


def test_unknown_action_is_404_and_dry_run_is_get_only(client, stuck, finance_ops):
    login(client, finance_ops)
    assert client.get(_action(stuck.journey, "explode")).status_code == 404
    assert client.post(_action(stuck.journey, "dry-run")).status_code == 405
    assert client.get(_action(stuck.journey, "cancel")).status_code == 405


# --- exception queue ----------------------------------------------------------------------------


def test_queue_has_checkboxes_and_replay_selected_for_finance_ops_only(
    client, stuck, finance_ops, auditor
):
    html = login(client, finance_ops).get(reverse("exception-list")).content.decode()
    assert 'form="bulk-replay"' in html and "Replay selected" in html
    html = login(client, auditor).get(reverse("exception-list")).content.decode()
    assert 'form="bulk-replay"' not in html and "Replay selected" not in html


def test_replay_selected_requeues_the_rows_and_refreshes_the_count(
    client, ledger, netsuite, finance_ops
):
    stuck = [stuck_on_unmapped_product(customer="cus_acme") for _ in range(3)]
    map_product("price_platform")
    login(client, finance_ops)
    cases = [s.case.pk for s in stuck]

    html = client.post(reverse("exception-list"), {"case": cases, "reason": ""}, headers=HX)
    assert "the reason is required" in html.content.decode()
    assert not AuditEntry.objects.filter(action="journey.replay").exists()

    response = client.post(
        reverse("exception-list"), {"case": cases, "reason": "price mapped"}, headers=HX
    )

    html = response.content.decode()
    assert "3 replays queued, 0 already completed, 0 refused." in html
    oob_rows = rows(html)
    assert len(oob_rows) == 3 and all('hx-swap-oob="true"' in r for r in oob_rows)
    assert all("Replay queued." in r for r in oob_rows)
    assert html.count("<template>") == 3
    assert re.search(r'id="open-count"[^>]*hx-swap-oob="true"[^>]*>0<', html)
    audits = AuditEntry.objects.filter(action="journey.replay")
    assert {(a.actor_id, a.reason) for a in audits} == {(finance_ops.pk, "price mapped")}
    assert audits.count() == 3
    assert AuditEntry.objects.filter(action="journey.replay_bulk").count() == 1
    drain()
    records = emulator_records(netsuite)
    assert len(records) == 3 and {r["write_count"] for r in records} == {1}


def test_replay_selected_without_htmx_redirects_with_a_message(client, stuck, finance_ops):
    map_product("price_platform")
    login(client, finance_ops)
    response = client.post(
        reverse("exception-list"), {"case": [stuck.case.pk], "reason": "mapped"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("exception-list")
    assert "1 replay queued" in response.content.decode()
