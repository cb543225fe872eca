"""Replay options through the real webhook, engine and NetSuite emulator: from a chosen step,
a selection at once, cancel, and the dry run that writes nothing."""

from __future__ import annotations

import pytest

from sync.errors import DomainError, PermissionDenied
from sync.models import (
    AuditEntry,
    ExceptionCase,
    Invoice,
    JournalEntry,
    Journey,
    ProductMapping,
    RevenueSchedule,
    RevenueType,
    Step,
)
from sync.services.dry_run import journey_dry_run
from sync.services.journeys import journey_cancel, journey_replay, journeys_replay_bulk
from tests.conftest import drain, emulator_faults, emulator_records
from tests.factories import link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import invoice_event, post_signed

pytestmark = pytest.mark.django_db
Cat = ExceptionCase.Category
PUT_PATH = "/services/rest/record/v1/journalEntry/eid:RCT-STRIPE-{}"


@pytest.fixture
def ledger(db):
    ledger = make_ledger()
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger


def _stuck(client, invoice_id: str, price: str = "price_new") -> Journey:
    post_signed(client, invoice_event(invoice_id=invoice_id, price=price))
    drain()
    journey = Journey.objects.get(business_key=invoice_id)
    assert journey.state == Journey.State.EXCEPTION
    return journey


def _lines(entry: JournalEntry) -> list[tuple[str, int, int]]:
    return [(ln.account.number, ln.debit_minor, ln.credit_minor) for ln in entry.lines.all()]


def _record_lines(record: dict) -> list[tuple[str, int, int]]:
    return [
        (i["account"], int((i["debit"] or 0) * 100), int((i["credit"] or 0) * 100))
        for i in record["lines"]
    ]


def _snapshot(journey: Journey) -> tuple:
    journey.refresh_from_db()
    return (
        journey.state,
        journey.context,
        list(journey.steps.values_list("name", "state", "attempts", "response_snapshot")),
        list(JournalEntry.objects.filter(journey=journey).values_list("pk", "state")),
    )


RATABLE_LINES = [("1200", 1_296_000, 0), ("2400", 0, 1_200_000), ("2200", 0, 96_000)]


# --- replay from a chosen step ------------------------------------------------------------------


def test_replay_from_a_chosen_step_after_the_fix_remaps_and_posts_once(
    client, ledger, netsuite, finance_ops
):
    journey = _stuck(client, "in_choose")
    map_product("price_new")

    outcome = journey_replay(
        journey_id=journey.pk, actor=finance_ops, reason="mapped", from_step="link_customer"
    )

    assert (outcome.outcome, outcome.from_step) == ("requeued", "link_customer")
    steps = dict(journey.steps.values_list("name", "state"))
    assert steps["validate"] == Step.State.SUCCEEDED
    assert {steps[n] for n in ("link_customer", "map_accounts", "build_entry")} == {"pending"}
    audit = AuditEntry.objects.get(action="journey.replay", object_id=str(journey.pk))
    assert (audit.actor, audit.reason, audit.after["from_step"]) == (
        finance_ops,
        "mapped",
        "link_customer",
    )
    before = {s["name"]: s for s in audit.before["steps"]}
    assert before["link_customer"]["state"] == "succeeded"
    assert before["link_customer"]["response_snapshot"]["legal_entity"] == "us-inc"
    assert before["map_accounts"]["state"] == "failed"

    drain()
    journey.refresh_from_db()
    assert journey.state == Journey.State.COMPLETED
    [record] = emulator_records(netsuite)
    assert record["write_count"] == 1
    assert _record_lines(record) == RATABLE_LINES


def test_an_unknown_step_or_one_after_the_failed_step_is_refused(
    client, ledger, netsuite, finance_ops
):
    journey = _stuck(client, "in_badstep")
    before = _snapshot(journey)
    with pytest.raises(DomainError, match="no step “nope”"):
        journey_replay(journey_id=journey.pk, actor=finance_ops, from_step="nope")
    with pytest.raises(DomainError, match="earlier step “map_accounts” has not succeeded"):
        journey_replay(journey_id=journey.pk, actor=finance_ops, from_step="post_entry")
    assert _snapshot(journey) == before
    assert not AuditEntry.objects.filter(action="journey.replay").exists()


@pytest.mark.parametrize("step", ["validate", "build_entry", "post_entry", "confirm_in_erp"])
def test_replay_from_a_step_after_the_entry_posted_is_refused_and_changes_nothing(
    client, ledger, netsuite, finance_ops, step
):
    map_product("price_platform")
    post_signed(client, invoice_event(invoice_id="in_posted"))
    drain()
    journey = Journey.objects.get(business_key="in_posted")
    before = _snapshot(journey)

    with pytest.raises(DomainError) as refused:
        journey_replay(journey_id=journey.pk, actor=finance_ops, reason="x", from_step=step)

    assert "already posted as RCT-STRIPE-in_posted" in str(refused.value)
    assert "post a correction instead" in str(refused.value)
    assert _snapshot(journey) == before
    assert not AuditEntry.objects.filter(action="journey.replay").exists()
    drain()
    [record] = emulator_records(netsuite)
    assert record["write_count"] == 1


def test_a_draft_entry_is_discarded_and_rebuilt_with_the_fixed_mapping(
    client, ledger, netsuite, finance_ops
):
    # Mapped wrongly as usage (credited straight to revenue), and the ERP refuses the post.
    wrong = map_product("price_platform", RevenueType.POINT_IN_TIME, code="WRONG")
    emulator_faults(netsuite, {"status": 400, "times": 1})
    post_signed(client, invoice_event(invoice_id="in_draft"))
    drain()
    journey = Journey.objects.get(business_key="in_draft")
    assert journey.state == Journey.State.EXCEPTION
    assert ExceptionCase.objects.get(journey=journey).category == Cat.ERP_REJECTED
    old = JournalEntry.objects.get(journey=journey)
    assert old.state != JournalEntry.State.POSTED
    assert _lines(old) == [("1200", 1_296_000, 0), ("4000", 0, 1_200_000), ("2200", 0, 96_000)]
    assert RevenueSchedule.objects.get(journey=journey).product_code == "WRONG"
    assert emulator_records(netsuite) == []

    ProductMapping.objects.filter(pk=wrong.pk).update(
        revenue_type=RevenueType.RATABLE, product_code="PLAT"
    )
    # the dry run shows the rebuilt entry and leaves the draft as it was
    dry = journey_dry_run(journey_id=journey.pk, actor=finance_ops, from_step="map_accounts")
    assert [(ln.account_number, ln.debit_minor, ln.credit_minor) for ln in dry.entry.lines] == (
        RATABLE_LINES
    )
    assert any("would be discarded" in n for n in dry.notes)
    assert JournalEntry.objects.get(journey=journey).pk == old.pk

    outcome = journey_replay(
        journey_id=journey.pk, actor=finance_ops, reason="fixed mapping", from_step="map_accounts"
    )
    assert outcome.discarded == ("RCT-STRIPE-in_draft",)
    assert not JournalEntry.objects.filter(pk=old.pk).exists()
    assert not RevenueSchedule.objects.filter(journey=journey).exists()
    discard = AuditEntry.objects.get(action="journal_entry.discard")
    assert (discard.actor, discard.reason) == (finance_ops, "fixed mapping")

    drain()
    journey.refresh_from_db()
    assert journey.state == Journey.State.COMPLETED
    entry = JournalEntry.objects.get(journey=journey)
    assert entry.state == JournalEntry.State.POSTED
    assert _lines(entry) == RATABLE_LINES
    assert [s.product_code for s in RevenueSchedule.objects.filter(journey=journey)] == ["PLAT"]
    [record] = emulator_records(netsuite)
    assert record["write_count"] == 1
    assert _record_lines(record) == RATABLE_LINES


def test_a_completed_journey_that_posted_nothing_may_be_replayed_from_a_step(
    client, ledger, netsuite, finance_ops
):
    journey = _stuck(client, "in_nopost")
    # a journey that completed without an entry (e.g. skipped), replayed from map_accounts
    Journey.objects.filter(pk=journey.pk).update(state=Journey.State.COMPLETED)
    map_product("price_new")
    outcome = journey_replay(journey_id=journey.pk, actor=finance_ops, from_step="map_accounts")
    assert outcome.outcome == "requeued"
    drain()
    assert len(emulator_records(netsuite)) == 1


# --- bulk ---------------------------------------------------------------------------------------


def test_bulk_replay_of_three_exceptions_after_one_fix(client, ledger, netsuite, finance_ops):
    journeys = [_stuck(client, f"in_bulk{i}") for i in range(3)]
    map_product("price_new")

    summary = journeys_replay_bulk(
        journeys=ExceptionCase.objects.filter(state=ExceptionCase.State.OPEN),
        actor=finance_ops,
        reason="price_new mapped",
    )

    assert sorted(summary.requeued) == sorted(j.pk for j in journeys)
    assert summary.already_completed == [] and summary.refused == []
    audits = AuditEntry.objects.filter(action="journey.replay")
    assert sorted(a.object_id for a in audits) == sorted(str(j.pk) for j in journeys)
    assert {(a.actor_id, a.reason) for a in audits} == {(finance_ops.pk, "price_new mapped")}
    bulk = AuditEntry.objects.get(action="journey.replay_bulk")
    assert (bulk.actor, bulk.reason) == (finance_ops, "price_new mapped")
    assert sorted(bulk.after["requeued"]) == sorted(j.pk for j in journeys)

    drain()
    assert set(Journey.objects.values_list("state", flat=True)) == {Journey.State.COMPLETED}
    records = emulator_records(netsuite)
    assert len(records) == 3 and {r["write_count"] for r in records} == {1}


def test_bulk_replay_reports_each_outcome_and_needs_a_reason(client, ledger, netsuite, finance_ops):
    map_product("price_platform")
    post_signed(client, invoice_event(invoice_id="in_done"))
    drain()
    done = Journey.objects.get(business_key="in_done")
    stuck = _stuck(client, "in_still")  # not fixed: requeued, fails again
    cancelled = _stuck(client, "in_gone")
    journey_cancel(journey_id=cancelled.pk, actor=finance_ops, reason="duplicate invoice")

    with pytest.raises(DomainError, match="reason is required"):
        journeys_replay_bulk(journeys=[done.pk], actor=finance_ops, reason="  ")

    summary = journeys_replay_bulk(
        journeys=[done.pk, stuck.pk, cancelled.pk, stuck.pk, 999999],
        actor=finance_ops,
        reason="sweep",
    )
    assert summary.requeued == [stuck.pk]
    assert summary.already_completed == [done.pk]
    refused = {r["journey"]: r["reason"] for r in summary.refused}
    assert "cancelled" in refused[cancelled.pk] and refused[999999] == "No such journey."


@pytest.mark.parametrize("persona", ["auditor", "manager", "integration_admin"])
def test_other_roles_may_not_bulk_replay_or_cancel(client, ledger, netsuite, persona, request):
    journey = _stuck(client, "in_role")
    user = request.getfixturevalue(persona)
    with pytest.raises(PermissionDenied):
        journeys_replay_bulk(journeys=[journey.pk], actor=user, reason="r")
    with pytest.raises(PermissionDenied):
        journey_cancel(journey_id=journey.pk, actor=user, reason="r")
    with pytest.raises(PermissionDenied):
        journey_replay(journey_id=journey.pk, actor=user, from_step="validate")
    assert not AuditEntry.objects.filter(actor=user).exists()
    # ... but they may look at a dry run
    assert (
        journey_dry_run(journey_id=journey.pk, actor=user).defect.category == Cat.UNMAPPED_PRODUCT
    )


# --- cancel -------------------------------------------------------------------------------------


def test_cancel_is_audited_and_resolves_the_exception(client, ledger, netsuite, finance_ops):
    journey = _stuck(client, "in_cancel")
    with pytest.raises(DomainError, match="reason is required"):
        journey_cancel(journey_id=journey.pk, actor=finance_ops, reason="")

    journey_cancel(journey_id=journey.pk, actor=finance_ops, reason="test invoice, not billable")

    journey.refresh_from_db()
    assert journey.state == Journey.State.CANCELLED
    case = ExceptionCase.objects.get(journey=journey)
    assert case.state == ExceptionCase.State.RESOLVED
    assert "cancelled by fiona (test invoice, not billable)" in case.resolution_note
    audit = AuditEntry.objects.get(action="journey.cancel")
    assert (audit.actor, audit.reason, audit.after["state"]) == (
        finance_ops,
        "test invoice, not billable",
        "cancelled",
    )
    assert AuditEntry.objects.get(action="exception.resolve", object_id=str(case.pk)).actor == (
        finance_ops
    )
    with pytest.raises(DomainError, match="only a journey in exception"):
        journey_cancel(journey_id=journey.pk, actor=finance_ops, reason="again")
    drain()
    assert emulator_records(netsuite) == []


def test_cancel_is_refused_when_the_entry_is_posted(client, ledger, netsuite, finance_ops):
    map_product("price_platform")
    post_signed(client, invoice_event(invoice_id="in_cposted"))
    drain()
    journey = Journey.objects.get(business_key="in_cposted")
    Journey.objects.filter(pk=journey.pk).update(state=Journey.State.EXCEPTION)
    with pytest.raises(DomainError, match="already posted as RCT-STRIPE-in_cposted"):
        journey_cancel(journey_id=journey.pk, actor=finance_ops, reason="no")
    journey.refresh_from_db()
    assert journey.state == Journey.State.EXCEPTION
    assert not AuditEntry.objects.filter(action="journey.cancel").exists()


# --- dry run ------------------------------------------------------------------------------------


def _counts() -> tuple[int, ...]:
    return (
        JournalEntry.objects.count(),
        Invoice.objects.count(),
        AuditEntry.objects.count(),
        RevenueSchedule.objects.count(),
    )


def test_dry_run_after_the_fix_shows_the_entry_and_the_put_and_writes_nothing(
    client, ledger, netsuite, auditor
):
    journey = _stuck(client, "in_dry")
    map_product("price_new")
    counts, before = _counts(), _snapshot(journey)

    dry = journey_dry_run(journey_id=journey.pk, actor=auditor)

    assert dry.defect is None and dry.refused == ""
    assert (dry.from_step, dry.steps_run, dry.stopped_before) == (
        "map_accounts",
        ["map_accounts", "build_entry"],
        "post_entry",
    )
    assert dry.entry.external_id == "RCT-STRIPE-in_dry" and dry.entry.state == "new"
    assert [(ln.account_number, ln.debit_minor, ln.credit_minor) for ln in dry.entry.lines] == (
        RATABLE_LINES
    )
    assert dry.entry.lines[1].account_name == "Deferred revenue"
    assert dry.entry.lines[0].functional_debit_minor == 1_296_000
    put = next(c for c in dry.calls if c.method == "PUT")
    assert put.path == PUT_PATH.format("in_dry")
    assert put.body["externalId"] == "RCT-STRIPE-in_dry"
    assert [i["account"]["id"] for i in put.body["line"]["items"]] == ["1200", "2400", "2200"]
    assert put.body["line"]["items"][0]["debit"] == "12960.00"
    # nothing persisted, nothing sent, nothing audited
    assert _counts() == counts
    assert _snapshot(journey) == before
    assert emulator_records(netsuite) == []
    import httpx

    assert httpx.get(f"{netsuite}/_emulator/requests", timeout=5).json()["requests"] == []


def test_dry_run_before_the_fix_reports_the_defect_sentence(client, ledger, netsuite, finance_ops):
    journey = _stuck(client, "in_dry_defect")
    case = ExceptionCase.objects.get(journey=journey)
    counts = _counts()

    dry = journey_dry_run(journey_id=journey.pk, actor=finance_ops)

    assert dry.defect.step == "map_accounts"
    assert dry.defect.category == Cat.UNMAPPED_PRODUCT
    assert dry.defect.summary == case.summary
    assert "no product mapping for price_new" in dry.defect.summary
    assert dry.entry is None and dry.calls == []
    assert _counts() == counts


def test_dry_run_of_a_posted_journey_from_a_step_is_refused(client, ledger, netsuite, manager):
    map_product("price_platform")
    post_signed(client, invoice_event(invoice_id="in_dry_done"))
    drain()
    journey = Journey.objects.get(business_key="in_dry_done")
    assert "completed" in journey_dry_run(journey_id=journey.pk, actor=manager).notes[0]
    dry = journey_dry_run(journey_id=journey.pk, actor=manager, from_step="build_entry")
    assert "already posted as RCT-STRIPE-in_dry_done" in dry.refused
