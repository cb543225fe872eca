"""The pull loop's batch runner: claimed journeys advance stage by stage, successes recorded
together (on PostgreSQL in a few statements per group), everything else step by step."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from connectors.stripe.webhooks import event_parse
from sync.engine import journey_advance, journeys_advance_claimed, steps_claim_batch
from sync.models import ExceptionCase, InboundEvent, Journey, Step
from sync.services.dispatch import inbound_events_dispatch_received
from sync.services.inbox import inbound_events_receive_bulk
from tests.conftest import emulator_records
from tests.factories import map_product
from tests.stripe_events import invoice_event

pytestmark = pytest.mark.django_db


def _invoices(prefix: str, n: int, **kwargs) -> list[str]:
    events = [
        invoice_event(invoice_id=f"in_{prefix}{i}", number=f"{prefix}-{i}", **kwargs)
        for i in range(n)
    ]
    inbound_events_receive_bulk(source_system="stripe", envelopes=[event_parse(e) for e in events])
    inbound_events_dispatch_received(limit=500)
    return [f"in_{prefix}{i}" for i in range(n)]


def _expected_snapshots(key: str) -> None:
    """Every step succeeded once, and the journey's context holds every step's result."""
    journey = Journey.objects.get(business_key=key)
    assert journey.state == Journey.State.COMPLETED
    steps = list(journey.steps.order_by("position"))
    assert {(s.state, s.attempts, s.claim_token) for s in steps} == {
        (Step.State.SUCCEEDED, 1, None)
    }
    for step in steps:
        assert step.response_snapshot is not None and step.finished_at is not None
        for k, v in step.response_snapshot.items():
            assert journey.context[k] == v, (step.name, k)
    assert journey.context["external_id"] == f"RCT-STRIPE-{key}"
    assert journey.context["invoice_number"]


def test_a_batch_posts_each_journey_once_with_fewer_queries_than_one_by_one(ledger, netsuite):
    one_by_one = _invoices("one", 5)
    with CaptureQueriesContext(connection) as single:
        for key in one_by_one:
            step = Step.objects.get(journey__business_key=key, position=1)
            assert journey_advance(step.pk) == "completed"
    batched = _invoices("bat", 5)
    claims = steps_claim_batch(50)
    assert len(claims) == 5
    with CaptureQueriesContext(connection) as grouped:
        journeys_advance_claimed(claims)
    for key in one_by_one + batched:
        _expected_snapshots(key)
    records = emulator_records(netsuite)
    assert sorted(r["externalId"] for r in records) == sorted(
        f"RCT-STRIPE-{k}" for k in one_by_one + batched
    )
    if connection.vendor == "postgresql":
        # Bookkeeping in bulk: clearly fewer statements per journey than one by one.
        assert len(grouped.captured_queries) < 0.8 * len(single.captured_queries), (
            len(grouped.captured_queries),
            len(single.captured_queries),
        )


def test_a_step_whose_claim_was_taken_over_is_not_recorded_and_the_rest_go_on(ledger, netsuite):
    keys = _invoices("lost", 3)
    claims = steps_claim_batch(50)
    lost_id = Step.objects.get(journey__business_key=keys[1], position=1).pk
    other = uuid.uuid4()  # as if the claim expired and another worker took it
    Step.objects.filter(pk=lost_id).update(claim_token=other)
    journeys_advance_claimed(claims)
    for key in (keys[0], keys[2]):
        _expected_snapshots(key)
    lost = Step.objects.get(pk=lost_id)
    assert (lost.state, lost.claim_token, lost.finished_at) == (Step.State.RUNNING, other, None)
    nxt = Step.objects.get(journey__business_key=keys[1], position=2)
    assert (nxt.state, nxt.attempts) == (Step.State.PENDING, 0)
    assert len(emulator_records(netsuite)) == 2


def test_aged_claims_are_renewed_before_their_group_runs_and_a_taken_one_is_left(
    ledger, netsuite, settings, caplog
):
    """A group that waited behind a long stage: claims past half their time to live are
    renewed before it runs; one another worker took meanwhile is not run here."""
    import datetime as dt

    from django.utils import timezone

    keys = _invoices("aged", 3)
    claims = steps_claim_batch(50)
    ttl = settings.RCT["CLAIM_TTL_SECONDS"]
    aged_at = timezone.now() - dt.timedelta(seconds=ttl * 0.75)
    Step.objects.filter(pk__in=[step_id for step_id, _ in claims]).update(claimed_at=aged_at)
    taken_id = Step.objects.get(journey__business_key=keys[1], position=1).pk
    other = uuid.uuid4()
    Step.objects.filter(pk=taken_id).update(claim_token=other)
    journeys_advance_claimed(claims)
    for key in (keys[0], keys[2]):
        _expected_snapshots(key)
        first = Step.objects.get(journey__business_key=key, position=1)
        assert first.claimed_at > aged_at  # renewed before it ran
    taken = Step.objects.get(pk=taken_id)
    assert (taken.state, taken.claim_token, taken.claimed_at, taken.finished_at) == (
        Step.State.RUNNING,
        other,
        aged_at,
        None,
    )
    assert f"step {taken_id} lost its claim before it ran" in caplog.text
    assert sorted(r["externalId"] for r in emulator_records(netsuite)) == sorted(
        f"RCT-STRIPE-{k}" for k in (keys[0], keys[2])
    )


def test_a_long_run_of_bulk_calls_keeps_its_groups_claims_alive(ledger, settings, monkeypatch):
    """Between bulk calls a batch form renews its group's aged claims (a group of thousands
    of ERP records can take longer than a claim lives); outside a group nothing happens."""
    import datetime as dt

    from django.utils import timezone

    from sync import engine
    from sync.journeys.common import send_in_bulk

    _invoices("hb", 2)
    claims = steps_claim_batch(50)
    aged_at = timezone.now() - dt.timedelta(seconds=settings.RCT["CLAIM_TTL_SECONDS"] * 0.75)
    ids = [step_id for step_id, _ in claims]
    Step.objects.filter(pk__in=ids).update(claimed_at=aged_at)
    items = [(Step.objects.get(pk=step_id), token) for step_id, token in claims]
    engine.claims_renew_aged()  # outside a group
    assert set(Step.objects.filter(pk__in=ids).values_list("claimed_at", flat=True)) == {aged_at}
    running = engine._group_claims.set(items)
    try:
        engine.claims_renew_aged()
    finally:
        engine._group_claims.reset(running)
    assert all(
        at > aged_at for at in Step.objects.filter(pk__in=ids).values_list("claimed_at", flat=True)
    )
    # send_in_bulk asks before each call.
    calls = []
    monkeypatch.setattr(engine, "claims_renew_aged", lambda: calls.append("renew"))
    ctxs = [type("Ctx", (), {"journey": step.journey})() for step, _ in items]
    out = send_in_bulk(ctxs, [(0, "a"), (1, "b"), (0, "c")], lambda chunk: list(chunk), size=1)
    assert out == ["a", "b", "c"] and calls == ["renew"] * 3


def test_one_journey_failing_in_a_group_stops_alone(ledger, netsuite):
    good = _invoices("ok", 2)
    bad = _invoices("bad", 1, price="price_nobody_mapped")
    journeys_advance_claimed(steps_claim_batch(50))
    for key in good:
        _expected_snapshots(key)
    journey = Journey.objects.get(business_key=bad[0])
    assert journey.state == Journey.State.EXCEPTION
    case = ExceptionCase.objects.get(journey=journey)
    assert case.category == ExceptionCase.Category.UNMAPPED_PRODUCT
    assert "price_nobody_mapped" in case.summary
    failed = journey.steps.get(state=Step.State.FAILED)
    assert failed.name == "map_accounts"
    assert journey.steps.filter(position__gt=failed.position, state=Step.State.PENDING).count()
    assert len(emulator_records(netsuite)) == 2
    assert not InboundEvent.objects.filter(state="received").exists()


def test_completing_in_bulk_resolves_cases_audits_marks_late_ones_and_wakes_waiters(
    ledger, netsuite, finance_ops, django_capture_on_commit_callbacks
):
    from connectors.stripe import emulator as se
    from sync.models import AuditEntry
    from sync.services.journeys import journey_replay

    # A void delivered before its invoice waits on the invoice's aggregate.
    event = invoice_event(invoice_id="in_w0", number="W-0")
    void = se.make_event("invoice.voided", dict(event["data"]["object"], status="void"))
    void["created"] = event["created"] + 60
    inbound_events_receive_bulk(source_system="stripe", envelopes=[event_parse(void)])
    inbound_events_dispatch_received()
    void_step = Step.objects.get(journey__business_key="in_w0:void", position=1)
    assert journey_advance(void_step.pk) == "waiting"
    # One invoice stops on a missing mapping, then is fixed and replayed.
    broken = _invoices("fix", 1, price="price_later")
    journeys_advance_claimed(steps_claim_batch(50))
    stopped = Journey.objects.get(business_key=broken[0])
    case = ExceptionCase.objects.get(journey=stopped)
    map_product("price_later")
    journey_replay(journey_id=stopped.pk, actor=finance_ops, reason="mapped price_later")
    # One more is already past its SLA when it completes.
    late = _invoices("late", 1)
    Journey.objects.filter(business_key=late[0]).update(sla_due_at=event_time_past())
    inbound_events_receive_bulk(source_system="stripe", envelopes=[event_parse(event)])
    inbound_events_dispatch_received()
    # (The test events' business time is months back; this one is due in an hour.)
    Journey.objects.filter(business_key="in_w0").update(
        sla_due_at=timezone.now() + dt.timedelta(hours=1)
    )

    claims = steps_claim_batch(50)
    assert len(claims) == 3  # the replayed, the late one and in_w0 (its void waits behind)
    with django_capture_on_commit_callbacks(execute=True):
        journeys_advance_claimed(claims)

    for key in ("in_w0", late[0]):
        _expected_snapshots(key)
    stopped.refresh_from_db()
    assert stopped.state == Journey.State.COMPLETED
    case.refresh_from_db()
    assert case.state == ExceptionCase.State.RESOLVED and case.resolved_at is not None
    assert case.resolution_note.endswith("Resolved automatically: the journey completed.")
    resolve = AuditEntry.objects.get(action="exception.resolve", object_id=str(case.pk))
    assert resolve.object_type == "sync.exceptioncase" and "price_later" in resolve.object_repr
    completes = AuditEntry.objects.filter(action="journey.complete")
    assert sorted(completes.values_list("object_id", flat=True)) == sorted(
        str(Journey.objects.get(business_key=k).pk) for k in ("in_w0", late[0], broken[0])
    )
    slas = dict(Journey.objects.values_list("business_key", "sla_state"))
    assert slas[late[0]] == Journey.SlaState.BREACHED
    assert slas["in_w0"] != Journey.SlaState.BREACHED
    void_step.refresh_from_db()
    assert void_step.next_attempt_at <= timezone.now()  # woken by its invoice's completion


def event_time_past():
    return timezone.now() - dt.timedelta(minutes=1)


def _to_posting_stage(keys: list[str]) -> None:
    """Run each journey one step at a time up to (not including) post_entry."""
    from sync.engine import step_run

    for key in keys:
        for step in Step.objects.filter(journey__business_key=key, position__lt=5):
            assert step_run(step.pk) == "succeeded", step.name


def test_posting_in_a_batch_reads_back_an_unknown_outcome_then_sends_the_rest_in_bulk(
    ledger, netsuite
):
    from sync.journeys.common import ledger_entry_for
    from sync.models import JournalEntry
    from sync.services.connectors import erp_connector
    from tests.conftest import emulator_requests

    keys = _invoices("pb", 3)
    _to_posting_stage(keys)
    # in_pb0: an earlier attempt reached the ERP but its answer was lost.
    lost = JournalEntry.objects.get(external_id="RCT-STRIPE-in_pb0")
    erp_connector().post_journal_entry(ledger_entry_for(lost))
    JournalEntry.objects.filter(pk=lost.pk).update(state=JournalEntry.State.POSTING)
    seen = len(emulator_requests(netsuite))

    claims = steps_claim_batch(50)
    assert {Step.objects.get(pk=pk).name for pk, _ in claims} == {"post_entry"}
    journeys_advance_claimed(claims)

    records = {r["externalId"]: r for r in emulator_records(netsuite)}
    assert set(records) == {f"RCT-STRIPE-{k}" for k in keys}
    assert all(r["write_count"] == 1 for r in records.values())  # in_pb0 read back, not re-sent
    for key in keys:
        assert Journey.objects.get(business_key=key).state == Journey.State.COMPLETED, key
        entry = JournalEntry.objects.get(external_id=f"RCT-STRIPE-{key}")
        assert entry.state == JournalEntry.State.POSTED
        assert entry.erp_document_id == str(records[entry.external_id]["id"])
    # Posting and confirming three journeys: the read-back, one batch write (its job read,
    # its ids read back) and one read-back for the confirmation, whatever the batch's size.
    calls = [(r["method"], r["path"].split("?")[0]) for r in emulator_requests(netsuite)[seen:]]
    assert calls == [
        ("POST", "/services/rest/query/v1/suiteql"),
        ("PUT", "/services/rest/record/v1/journalEntry"),
        ("GET", "/services/rest/async/v1/job/1"),
        ("POST", "/services/rest/query/v1/suiteql"),
        ("POST", "/services/rest/query/v1/suiteql"),
    ]


def test_a_big_group_is_read_back_in_pages_each_naming_only_its_own_journeys(
    ledger, netsuite, monkeypatch
):
    """Confirming a claim's worth of entries: one SuiteQL call per batch_limit entries, each
    X-Correlation-ID naming that page's journeys only. (One header for a claim of 2,000
    journeys was 74 kB; the server answered 431 and every entry went to the exception queue
    as refused by the ERP.)"""
    from connectors.netsuite import client as netsuite_client
    from tests.conftest import emulator_requests

    monkeypatch.setattr(netsuite_client, "BATCH_LIMIT", 2)
    keys = _invoices("pg", 5)
    _to_posting_stage(keys)
    seen = len(emulator_requests(netsuite))
    journeys_advance_claimed(steps_claim_batch(50))
    for key in keys:
        assert Journey.objects.get(business_key=key).state == Journey.State.COMPLETED, key
    reads = [
        r
        for r in emulator_requests(netsuite)[seen:]
        if r["path"].startswith("/services/rest/query/v1/suiteql")
    ]
    correlation = {str(Journey.objects.get(business_key=k).correlation_id): k for k in keys}
    # Posting reads its batch writes' ids back per write (2 + 2 + 1), confirming the same.
    pages = [[correlation[c] for c in r["correlation_id"].split(",")] for r in reads]
    assert [len(p) for p in pages] == [2, 2, 1, 2, 2, 1]
    assert sorted(k for p in pages[3:] for k in p) == sorted(keys)
    assert not ExceptionCase.objects.exists()


def test_a_bulk_call_failing_as_a_whole_is_one_failure_and_nothing_posts_twice(
    ledger, netsuite, settings
):
    from sync.models import ConnectorHealth, JournalEntry
    from tests.conftest import emulator_faults

    keys = _invoices("bf", 3)
    _to_posting_stage(keys)
    # The batch write is applied but its answer never comes (the client times out).
    emulator_faults(
        netsuite, {"method": "PUT", "path_contains": "journalEntry", "timeout": 30, "apply": True}
    )
    settings.NETSUITE_TIMEOUT = 0.5
    journeys_advance_claimed(steps_claim_batch(50))

    steps = {k: Step.objects.get(journey__business_key=k, name="post_entry") for k in keys}
    first, *others = keys
    # The call's first record took the failure: an attempt spent, a retry due.
    assert (steps[first].state, steps[first].attempts) == (Step.State.RETRYING, 1)
    # The others wait without spending an attempt; the circuit counted one failure, not three.
    for key in others:
        assert (steps[key].state, steps[key].attempts) == (Step.State.PENDING, 0), key
        assert "bulk call that failed as a whole" in steps[key].error_message
    health = ConnectorHealth.objects.get(system="netsuite")
    assert health.state == ConnectorHealth.State.CLOSED and health.consecutive_failures == 1
    assert set(
        JournalEntry.objects.filter(external_id__startswith="RCT-STRIPE-in_bf").values_list(
            "state", flat=True
        )
    ) == {JournalEntry.State.POSTING}

    # Later: every entry is read back (the write was applied) and none is sent again.
    Step.objects.filter(pk__in=[s.pk for s in steps.values()]).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )
    journeys_advance_claimed(steps_claim_batch(50))
    records = emulator_records(netsuite)
    assert sorted(r["externalId"] for r in records) == sorted(f"RCT-STRIPE-{k}" for k in keys)
    assert all(r["write_count"] == 1 for r in records)
    for key in keys:
        assert Journey.objects.get(business_key=key).state == Journey.State.COMPLETED, key
        step = Step.objects.get(journey__business_key=key, name="post_entry")
        assert step.response_snapshot.get("read_back") is True, key


def test_reference_lookups_are_read_once_per_batch_and_fresh_in_the_next():
    from sync.services.memo import memoized, reference_memo

    reads: list[str] = []

    def read(value: str) -> str:
        reads.append(value)
        return value

    assert memoized("k", lambda: read("a")) == "a"
    assert memoized("k", lambda: read("b")) == "b"  # outside a batch: always read
    with reference_memo():
        assert memoized("k", lambda: read("c")) == "c"
        assert memoized("k", lambda: read("d")) == "c"  # asked again: the batch's answer
        assert memoized("other", lambda: read("e")) == "e"
    with reference_memo():
        assert memoized("k", lambda: read("f")) == "f"  # the next batch reads afresh
    assert reads == ["a", "b", "c", "e", "f"]


def test_a_mapping_fixed_between_batches_is_used_by_the_next_batch(ledger, netsuite, finance_ops):
    keys = _invoices("mf", 2, price="price_mapped_late")
    journeys_advance_claimed(steps_claim_batch(50))
    assert set(Journey.objects.filter(business_key__in=keys).values_list("state", flat=True)) == {
        Journey.State.EXCEPTION
    }
    map_product("price_mapped_late")
    from sync.services.journeys import journeys_replay_bulk

    journeys_replay_bulk(
        journeys=Journey.objects.filter(business_key__in=keys),
        actor=finance_ops,
        reason="mapped",
    )
    journeys_advance_claimed(steps_claim_batch(50))
    for key in keys:
        assert Journey.objects.get(business_key=key).state == Journey.State.COMPLETED
    assert len(emulator_records(netsuite)) == 2


def test_a_batch_claim_passes_over_an_aggregate_another_worker_is_claiming(ledger):
    """The aggregate's advisory lock held by another session (a worker claiming it): the
    batch claim skips that aggregate and takes the others, in candidate order."""
    import psycopg

    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    keys = _invoices("al", 3)
    settings = connection.settings_dict
    other = psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
        autocommit=True,
    )
    try:
        other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", ["stripe:in_al1"])
        claims = steps_claim_batch(50)
    finally:
        other.close()
    names = [Step.objects.get(pk=pk).journey.business_key for pk, _ in claims]
    assert names == [keys[0], keys[2]]
    assert Journey.objects.get(business_key=keys[1]).state == Journey.State.PENDING
    assert {Journey.objects.get(business_key=k).state for k in names} == {Journey.State.RUNNING}
    # Released by the other worker, in_al1 is taken next; the others are held by this batch.
    again = steps_claim_batch(50)
    assert [Step.objects.get(pk=pk).journey.business_key for pk, _ in again] == [keys[1]]


def test_in_one_batch_each_invoice_uses_the_mapping_version_in_effect_on_its_date(ledger, netsuite):
    import datetime as dt

    from sync.models import JournalLine, ProductMapping

    # price_platform is mapped to PLAT from 2000; from 5 April it is PLAT-2026.
    ProductMapping.objects.create(
        source_system="stripe",
        source_ref="price_platform",
        product_code="PLAT-2026",
        product_name="Platform 2026",
        revenue_type="ratable",
        effective_from=dt.date(2026, 4, 5),
    )
    early = invoice_event(invoice_id="in_ver_early", number="V-1")
    late = invoice_event(invoice_id="in_ver_late", number="V-2")
    apr_10 = int(dt.datetime(2026, 4, 10, tzinfo=dt.UTC).timestamp())
    obj = late["data"]["object"]
    obj["created"] = apr_10
    obj.setdefault("status_transitions", {})["finalized_at"] = apr_10
    inbound_events_receive_bulk(
        source_system="stripe", envelopes=[event_parse(e) for e in (early, late)]
    )
    inbound_events_dispatch_received()
    journeys_advance_claimed(steps_claim_batch(50))
    codes = dict(
        JournalLine.objects.filter(
            entry__external_id__in=["RCT-STRIPE-in_ver_early", "RCT-STRIPE-in_ver_late"]
        )
        .exclude(product_code="")
        .values_list("entry__external_id", "product_code")
    )
    assert codes == {
        "RCT-STRIPE-in_ver_early": "PLAT",
        "RCT-STRIPE-in_ver_late": "PLAT-2026",
    }


def test_payments_validated_in_one_batch_each_get_their_own_outcome(ledger, netsuite):
    from connectors.stripe import emulator as se
    from sync.models import Payment

    posted = _invoices("pay", 2)
    journeys_advance_claimed(steps_claim_batch(50))  # both invoices posted
    objs = {
        key: invoice_event(invoice_id=key, number=key)["data"]["object"]
        for key in [*posted, "in_pay_later"]
    }
    events = []
    for n, key in enumerate(objs):
        charge = se.make_charge(objs[key], charge_id=f"ch_bat{n}", created=objs[key]["created"])
        events += [
            se.make_event("invoice_payment.paid", se.make_invoice_payment(objs[key], charge)),
            se.make_event("charge.succeeded", charge),
        ]
    held = se.make_charge(objs[posted[0]], charge_id="ch_auth", captured=False)
    events.append(se.make_event("charge.succeeded", held))
    inbound_events_receive_bulk(source_system="stripe", envelopes=[event_parse(e) for e in events])
    inbound_events_dispatch_received()
    claims = steps_claim_batch(50)
    assert len(claims) == 4  # three payments on three invoices, the authorisation on its own
    journeys_advance_claimed(claims)

    for n, key in enumerate(posted):  # linked through their invoice_payment.paid events
        journey = Journey.objects.get(journey_type="payment_to_ledger", business_key=f"ch_bat{n}")
        assert journey.state == Journey.State.COMPLETED, key
        assert journey.context["invoice_ref"] == key
        assert journey.legal_entity_id == ledger.entity.pk
    waiting = Journey.objects.get(journey_type="payment_to_ledger", business_key="ch_bat2")
    assert waiting.state == Journey.State.WAITING  # its invoice is not in the ledger yet
    step = waiting.steps.get(name="validate")
    assert step.state == Step.State.PENDING and "in_pay_later" in step.error_message
    assert Payment.objects.get(source_id="ch_bat2").invoice_ref == "in_pay_later"
    auth = Journey.objects.get(journey_type="payment_to_ledger", business_key="ch_auth")
    assert auth.state == Journey.State.COMPLETED
    assert auth.steps.get(name="validate").response_snapshot == {
        "skipped": "charge ch_auth is an authorisation only; no money moved"
    }
    assert len(emulator_records(netsuite)) == 4  # two invoices, two payments


def _ledger_of(key: str) -> dict:
    """The entry and schedules an invoice journey made, comparable across journeys."""
    from sync.models import JournalEntry, RevenueSchedule, RevenueScheduleLine

    entry = JournalEntry.objects.get(external_id=f"RCT-STRIPE-{key}")
    schedules = RevenueSchedule.objects.filter(journey=entry.journey).order_by("pk")
    return {
        "lines": [
            (
                ln.account_id,
                ln.debit_minor,
                ln.credit_minor,
                ln.functional_debit_minor,
                ln.functional_credit_minor,
                ln.product_code,
                ln.tax_code,
            )
            for ln in entry.lines.order_by("line_no")
        ],
        "schedules": [
            (s.total_minor, s.service_start, s.service_end, s.product_code, s.revenue_type)
            for s in schedules
        ],
        "schedule_lines": [
            (ln.period, ln.amount_minor, ln.functional_amount_minor, ln.state)
            for ln in RevenueScheduleLine.objects.filter(schedule__in=schedules).order_by(
                "schedule_id", "period"
            )
        ],
    }


def test_entries_and_schedules_built_in_a_batch_are_those_built_one_by_one(ledger, netsuite):
    import datetime as dt

    from sync.models import AuditEntry, Subscription

    # The subscription ended in March before its April invoices arrived: their schedules stop.
    Subscription.objects.create(
        source_system="stripe",
        source_id="sub_acme",
        customer_ref="cus_acme",
        status="canceled",
        service_ended_on=dt.date(2026, 3, 15),
    )
    single = _invoices("one", 2)
    _to_posting_stage(single)  # validate .. build_entry, one step at a time
    batched = _invoices("two", 2)
    claims = steps_claim_batch(50)
    journeys_advance_claimed(claims)
    for one, two in zip(single, batched, strict=True):
        a, b = _ledger_of(one), _ledger_of(two)
        assert a == b
        assert sum(d for _, d, *_ in a["lines"]) == sum(c for _, _, c, *_ in a["lines"])
        assert a["schedules"] and a["schedule_lines"]
    # The stop applied in both: what was planned after the end month moved to it (March).
    for key in batched:
        periods = {period for period, *_ in _ledger_of(key)["schedule_lines"]}
        assert periods == {dt.date(2026, 3, 1)}, key
        journey = Journey.objects.get(business_key=key)
        stops = AuditEntry.objects.filter(
            action="schedule.stop", correlation_id=str(journey.correlation_id)
        )
        assert stops.exists()
        assert {tuple(sorted(a.after.items())) for a in stops} == {
            (("ended_on", "2026-03-15"), ("moved_to", "2026-03-01"))
        }


def test_two_payments_of_one_invoice_in_one_batch_relieve_its_ar_one_after_the_other(
    ledger, netsuite
):
    from connectors.stripe import emulator as se

    (key,) = _invoices("two_pay", 1)  # 12,000.00 + 8 % tax = 12,960.00
    journeys_advance_claimed(steps_claim_batch(50))
    obj = invoice_event(invoice_id=key, number=key)["data"]["object"]
    events = []
    for charge_id, amount in (("ch_first", 10_000_00), ("ch_second", 5_000_00)):
        charge = se.make_charge(obj, amount=amount, charge_id=charge_id, created=obj["created"])
        link = se.make_invoice_payment(obj, charge)
        events += [
            se.make_event("invoice_payment.paid", link),
            se.make_event("charge.succeeded", charge),
        ]
    inbound_events_receive_bulk(source_system="stripe", envelopes=[event_parse(e) for e in events])
    inbound_events_dispatch_received()
    claims = steps_claim_batch(50)
    assert len(claims) == 2  # two charges, two aggregates: one batch
    journeys_advance_claimed(claims)
    first, second = (
        Journey.objects.get(journey_type="payment_to_ledger", business_key=c)
        for c in ("ch_first", "ch_second")
    )
    assert first.state == second.state == Journey.State.COMPLETED
    assert (first.context["open_ar_before_minor"], first.context["applied_minor"]) == (
        12_960_00,
        10_000_00,
    )
    assert (
        second.context["open_ar_before_minor"],
        second.context["applied_minor"],
        second.context["overpaid_minor"],
    ) == (2_960_00, 2_960_00, 2_040_00)
    assert len(emulator_records(netsuite)) == 3


def test_customers_linked_in_one_batch_each_get_their_own_outcome(ledger, netsuite):
    from sync.models import CustomerLink

    linked = invoice_event("cus_acme", invoice_id="in_lk0", number="LK-0")
    by_metadata = invoice_event(
        "cus_meta", invoice_id="in_lk1", number="LK-1", metadata={"legal_entity": "us-inc"}
    )
    unknown = invoice_event("cus_nobody", invoice_id="in_lk2", number="LK-2")
    inbound_events_receive_bulk(
        source_system="stripe", envelopes=[event_parse(e) for e in (linked, by_metadata, unknown)]
    )
    inbound_events_dispatch_received()
    journeys_advance_claimed(steps_claim_batch(50))
    states = dict(
        Journey.objects.filter(business_key__startswith="in_lk").values_list(
            "business_key", "state"
        )
    )
    assert states == {
        "in_lk0": Journey.State.COMPLETED,
        "in_lk1": Journey.State.COMPLETED,
        "in_lk2": Journey.State.WAITING,  # the customer may still be on its way
    }
    made = CustomerLink.objects.get(billing_customer_id="cus_meta")
    assert made.legal_entity == ledger.entity
    assert Journey.objects.get(business_key="in_lk1").legal_entity == ledger.entity
    waiting = Step.objects.get(journey__business_key="in_lk2", name="link_customer")
    assert waiting.state == Step.State.PENDING and "cus_nobody" in waiting.error_message
    assert not CustomerLink.objects.filter(billing_customer_id="cus_nobody").exists()


def test_invoices_stored_in_one_batch_update_what_we_hold_and_refuse_what_does_not_add_up(
    ledger, netsuite
):
    import datetime as dt

    from sync.models import Invoice, InvoiceLine

    held = Invoice.objects.create(
        source_system="stripe",
        source_id="in_vm0",
        number="OLD",
        customer_ref="cus_acme",
        currency="USD",
        status="draft",
        issued_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        subtotal_minor=1,
        tax_minor=0,
        total_minor=1,
    )
    InvoiceLine.objects.create(
        invoice=held, position=1, source_id="il_old", amount_minor=1, net_minor=1, tax_minor=0
    )
    events = [invoice_event(invoice_id=f"in_vm{n}", number=f"VM-{n}") for n in range(3)]
    events[2]["data"]["object"]["total"] += 1  # the lines no longer add up to the total
    inbound_events_receive_bulk(source_system="stripe", envelopes=[event_parse(e) for e in events])
    inbound_events_dispatch_received()
    journeys_advance_claimed(steps_claim_batch(50))

    held.refresh_from_db()
    assert (held.number, held.status, held.total_minor) == ("VM-0", "open", 12_960_00)
    assert list(held.lines.values_list("source_id", "net_minor")) == [
        (events[0]["data"]["object"]["lines"]["data"][0]["id"], 12_000_00)
    ]
    assert Invoice.objects.get(source_id="in_vm1").lines.count() == 1
    assert not Invoice.objects.filter(source_id="in_vm2").exists()
    case = ExceptionCase.objects.get(journey__business_key="in_vm2")
    assert case.category == ExceptionCase.Category.AMOUNT_MISMATCH
    for key in ("in_vm0", "in_vm1"):
        assert Journey.objects.get(business_key=key).state == Journey.State.COMPLETED


def test_customers_synced_in_one_batch_are_linked_in_bulk_each_with_its_outcome(ledger, netsuite):
    from sync.models import AuditEntry, CustomerLink
    from tests.stripe_events import customer_event

    events = [
        customer_event("cus_b1", entity="us-inc", name="B One"),
        customer_event("cus_b2", entity="us-inc", name="B Two"),
        customer_event("cus_nowhere", entity="xx-none", name="Nowhere Ltd"),
        customer_event("cus_acme", entity="us-inc", name="Acme Corp"),  # linked already
    ]
    no_hint = customer_event("cus_nohint", entity="", name="No Hint")
    no_hint["data"]["object"]["metadata"] = {}
    inbound_events_receive_bulk(
        source_system="stripe", envelopes=[event_parse(e) for e in [*events, no_hint]]
    )
    inbound_events_dispatch_received()
    journeys_advance_claimed(steps_claim_batch(50))

    def state(ref):
        return Journey.objects.get(journey_type="customer_sync", business_key__startswith=ref)

    for ref in ("cus_b1", "cus_b2", "cus_acme"):
        assert state(ref).state == Journey.State.COMPLETED, ref
        assert CustomerLink.objects.get(billing_customer_id=ref).erp_customer_id
    created = AuditEntry.objects.filter(action="customer_link.create")
    assert sorted(a.after["legal_entity"] for a in created) == ["us-inc", "us-inc"]
    assert {CustomerLink.objects.get(pk=a.object_id).billing_customer_id for a in created} == {
        "cus_b1",
        "cus_b2",
    }
    assert ExceptionCase.objects.get(journey=state("cus_nowhere")).category == (
        ExceptionCase.Category.MISSING_ENTITY_MAPPING
    )
    assert ExceptionCase.objects.get(journey=state("cus_nohint")).category == (
        ExceptionCase.Category.CUSTOMER_NOT_LINKED
    )
    assert not CustomerLink.objects.filter(
        billing_customer_id__in=["cus_nowhere", "cus_nohint"]
    ).exists()
    assert len(emulator_records(netsuite, "customer")) == 3


def test_links_made_in_bulk_fall_back_to_one_by_one_when_the_insert_is_refused(ledger, monkeypatch):
    """Another worker linking one of the customers at the same moment makes the bulk insert
    fail on the unique key; then each is linked one by one (get_or_create), once."""
    from django.db import IntegrityError

    from sync.models import AuditEntry, CustomerLink
    from sync.services import customers
    from sync.services.customers import LinkRequest, customer_links_create_from_metadata

    def refused(objs, *args, **kwargs):
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(customers.CustomerLink.objects, "bulk_create", refused)
    got = customer_links_create_from_metadata(
        [LinkRequest("cus_r1", "us-inc", "c1"), LinkRequest("cus_r2", "us-inc", "c2")]
    )
    assert {ref: link.legal_entity.code for ref, link in got.items()} == {
        "cus_r1": "us-inc",
        "cus_r2": "us-inc",
    }
    assert CustomerLink.objects.filter(billing_customer_id__in=["cus_r1", "cus_r2"]).count() == 2
    made = AuditEntry.objects.filter(action="customer_link.create").order_by("pk")
    assert [a.correlation_id for a in made] == ["c1", "c2"]


def test_a_batch_stops_calling_a_failing_erp_and_the_rest_wait_without_spending_attempts(
    ledger, netsuite, settings, monkeypatch
):
    from connectors.netsuite import client as ns
    from sync.models import ConnectorHealth
    from tests.conftest import emulator_faults, emulator_requests

    settings.RCT = {**settings.RCT, "CIRCUIT_FAILURE_THRESHOLD": 2}
    monkeypatch.setattr(ns, "BATCH_LIMIT", 2)  # five entries: three bulk calls
    keys = _invoices("down", 5)
    _to_posting_stage(keys)
    seen = len(emulator_requests(netsuite))
    emulator_faults(netsuite, {"method": "PUT", "status": 503, "times": 10})
    claims = steps_claim_batch(50)
    assert len(claims) == 5
    journeys_advance_claimed(claims)

    steps = {
        s.journey.business_key: s
        for s in Step.objects.filter(journey__business_key__in=keys, name="post_entry")
    }
    tried = [k for k in keys if steps[k].state == Step.State.RETRYING]
    held = [k for k in keys if steps[k].state == Step.State.PENDING]
    # Each failed call's first record took its failure; two failed calls opened the circuit
    # and the third call was never made.
    assert tried == [keys[0], keys[2]] and held == [keys[1], keys[3], keys[4]]
    assert {steps[k].attempts for k in tried} == {1}
    assert {steps[k].attempts for k in held} == {0}  # no attempt spent
    puts = [r for r in emulator_requests(netsuite)[seen:] if r["method"] == "PUT"]
    assert len(puts) == 2
    health = ConnectorHealth.objects.get(system="netsuite")
    assert health.state == ConnectorHealth.State.OPEN and health.consecutive_failures == 2
    # Held back after the circuit opened: they wait for its probe.
    for k in keys[3:]:
        assert steps[k].next_attempt_at == health.next_probe_at
        assert Journey.objects.get(business_key=k).state == Journey.State.WAITING
    assert "bulk call that failed as a whole" in steps[keys[1]].error_message
    assert emulator_records(netsuite) == []


def test_a_half_open_connector_lets_one_step_of_a_batch_probe_and_holds_the_rest(ledger, netsuite):
    from sync.models import ConnectorHealth

    keys = _invoices("probe", 3)
    _to_posting_stage(keys)
    ConnectorHealth.objects.update_or_create(
        system="netsuite",
        defaults={
            "state": ConnectorHealth.State.OPEN,
            "open_seconds": 30,
            "next_probe_at": timezone.now() - dt.timedelta(seconds=1),
        },
    )
    journeys_advance_claimed(steps_claim_batch(50))
    states = {
        s.journey.business_key: (s.state, s.attempts)
        for s in Step.objects.filter(journey__business_key__in=keys, name="post_entry")
    }
    assert states[keys[0]] == (Step.State.SUCCEEDED, 1)  # the probe, which closed it
    assert states[keys[1]] == states[keys[2]] == (Step.State.PENDING, 0)
    assert ConnectorHealth.objects.get(system="netsuite").state == ConnectorHealth.State.CLOSED
    assert len(emulator_records(netsuite)) == 1


def test_the_pull_task_claims_as_many_steps_as_the_setting_says(
    ledger, netsuite, settings, monkeypatch
):
    from sync import engine, tasks

    settings.RCT = {**settings.RCT, "CLAIM_BATCH": 2}
    keys = _invoices("cb", 5)
    sizes: list[int] = []
    real = engine.steps_claim_batch

    def counting(limit: int = 50, **kwargs):
        claims = real(limit, **kwargs)
        sizes.append(len(claims))
        return claims

    monkeypatch.setattr(engine, "steps_claim_batch", counting)
    tasks.advance(budget_seconds=60)
    assert sizes[:3] == [2, 2, 1] and max(sizes) == 2
    for key in keys:
        assert Journey.objects.get(business_key=key).state == Journey.State.COMPLETED


def test_payments_waiting_on_their_invoices_are_put_back_together_then_time_out(
    ledger, netsuite, settings
):
    from connectors.stripe import emulator as se
    from sync.engine import DEPENDENCY_WAIT_ERROR_CLASS

    events = []
    for n in range(3):
        invoice = invoice_event(invoice_id=f"in_wait{n}", number=f"w{n}")["data"]["object"]
        charge = se.make_charge(invoice, charge_id=f"ch_wait{n}", created=invoice["created"])
        events.append(se.make_event("charge.succeeded", charge))
    inbound_events_receive_bulk(source_system="stripe", envelopes=[event_parse(e) for e in events])
    inbound_events_dispatch_received()
    journeys_advance_claimed(steps_claim_batch(50))

    steps = Step.objects.filter(journey__journey_type="payment_to_ledger", name="validate")
    assert steps.count() == 3
    for step in steps:
        assert (step.state, step.attempts, step.claim_token) == (Step.State.PENDING, 0, None)
        assert step.error_class == DEPENDENCY_WAIT_ERROR_CLASS
        assert step.error_message.startswith("Waiting: Payment ch_wait")
        assert "names no invoice" in step.error_message
        assert step.next_attempt_at > timezone.now()
        assert step.journey.state == Journey.State.WAITING
    assert not ExceptionCase.objects.exists()

    # Past the deadline: the next look makes each an exception, as one step would.
    settings.RCT = {**settings.RCT, "DEPENDENCY_WAIT_SECONDS": 0}
    steps.update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    journeys_advance_claimed(steps_claim_batch(50))
    cases = ExceptionCase.objects.filter(journey__journey_type="payment_to_ledger")
    assert cases.count() == 3
    assert {c.category for c in cases} == {ExceptionCase.Category.PAYMENT_NOT_LINKED}
    assert all("waited" in c.summary for c in cases)


def test_the_claim_batch_is_kept_inside_postgresqls_lock_table(settings, caplog):
    from django.db import connection

    from sync import tasks

    settings.RCT = {**settings.RCT, "CLAIM_BATCH": 700}
    assert tasks.claim_batch() == 700
    settings.RCT = {**settings.RCT, "CLAIM_BATCH": 1_000_000}
    tasks._lock_capacity.clear()
    got = tasks.claim_batch()
    if connection.vendor != "postgresql":
        assert got == 1_000_000  # SQLite has no lock table to fill
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_locks_per_transaction')::int"
            " * current_setting('max_connections')::int"
        )
        capacity = cursor.fetchone()[0]
    workers = settings.Q_CLUSTER["workers"]
    assert got == capacity * 3 // 4 // workers < 1_000_000
    assert "RCT_CLAIM_BATCH 1000000 is more than" in caplog.text
