"""invoice_to_ledger, through the real webhook, engine and NetSuite emulator (engine inline)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from connectors.stripe import emulator as se
from sync.engine import step_claim
from sync.models import (
    AuditEntry,
    ExceptionCase,
    InboundEvent,
    JournalEntry,
    Journey,
    RevenueType,
    Step,
)
from sync.services.journeys import journey_replay
from tests.conftest import drain, emulator_faults, emulator_records
from tests.factories import link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import customer_event, invoice_event, post_signed

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(db):
    ledger = make_ledger()
    map_product("price_platform")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger


def _lines(entry: JournalEntry) -> list[tuple[str, int, int]]:
    return [(ln.account.number, ln.debit_minor, ln.credit_minor) for ln in entry.lines.all()]


def test_finalized_invoice_posts_one_balanced_entry_to_netsuite(client, ledger, netsuite):
    resp = post_signed(client, invoice_event(invoice_id="in_001", number="INV-001"))
    assert resp.status_code == 200 and resp.json()["duplicate"] is False

    drain()

    journey = Journey.objects.get(business_key="in_001")
    assert journey.state == Journey.State.COMPLETED
    assert journey.legal_entity == ledger.entity
    assert [s.state for s in journey.steps.all()] == [Step.State.SUCCEEDED] * 6
    entry = JournalEntry.objects.get(journey=journey)
    assert entry.state == JournalEntry.State.POSTED
    # 12,000.00 subscription + 8% tax: Dr AR 12,960.00 / Cr deferred 12,000.00 / Cr tax 960.00
    assert _lines(entry) == [("1200", 1_296_000, 0), ("2400", 0, 1_200_000), ("2200", 0, 96_000)]
    assert [
        (ln.functional_debit_minor, ln.functional_credit_minor) for ln in entry.lines.all()
    ] == [
        (1_296_000, 0),
        (0, 1_200_000),
        (0, 96_000),
    ]
    [record] = emulator_records(netsuite)
    assert record["externalId"] == entry.external_id == "RCT-STRIPE-in_001"
    assert str(record["id"]) == entry.erp_document_id
    assert [(i["account"], i["debit"] or 0, i["credit"] or 0) for i in record["lines"]] == [
        ("1200", Decimal("12960.00"), Decimal(0)),
        ("2400", Decimal(0), Decimal("12000.00")),
        ("2200", Decimal(0), Decimal("960.00")),
    ]
    assert entry.rule_versions["posting_rules"] == [ledger.ratable_rule.pk]


def test_usage_line_is_credited_to_revenue_not_deferred(client, ledger, netsuite):
    map_product("price_overage", RevenueType.POINT_IN_TIME, code="OVERAGE")
    extra = se.LineSpec(
        amount_minor=250_00,
        price_id="price_overage",
        product_id="prod_overage",
        description="API overage",
    )
    post_signed(
        client,
        invoice_event(invoice_id="in_002", tax_rate=None, amount=1000_00, extra_lines=[extra]),
    )
    drain()
    entry = JournalEntry.objects.get(journey__business_key="in_002")
    assert _lines(entry) == [("1200", 125_000, 0), ("2400", 0, 100_000), ("4000", 0, 25_000)]


def test_same_event_five_times_gives_one_journey_and_one_erp_entry(client, ledger, netsuite):
    event = invoice_event(invoice_id="in_dup")
    answers = [post_signed(client, event).json()["duplicate"] for _ in range(5)]
    drain()
    assert answers == [False, True, True, True, True]
    assert InboundEvent.objects.filter(source_event_id=event["id"]).count() == 1
    assert Journey.objects.filter(business_key="in_dup").count() == 1
    [record] = emulator_records(netsuite)
    assert record["write_count"] == 1


def test_a_second_event_for_the_same_invoice_does_not_post_again(client, ledger, netsuite):
    event = invoice_event(invoice_id="in_twice")
    post_signed(client, event)
    again = dict(event, id="evt_other_delivery_id_000000")
    post_signed(client, again)
    drain()
    assert InboundEvent.objects.filter(payload__data__object__id="in_twice").count() == 2
    assert Journey.objects.filter(business_key="in_twice").count() == 1
    assert len(emulator_records(netsuite)) == 1


def test_replaying_a_completed_journey_three_times_posts_nothing_more(
    client, ledger, netsuite, finance_ops
):
    post_signed(client, invoice_event(invoice_id="in_rep"))
    drain()
    journey = Journey.objects.get(business_key="in_rep")
    outcomes = [journey_replay(journey_id=journey.pk, actor=finance_ops).outcome for _ in range(3)]
    drain()
    assert outcomes == ["already_completed"] * 3
    [record] = emulator_records(netsuite)
    assert record["write_count"] == 1
    audits = AuditEntry.objects.filter(action="journey.replay", object_id=str(journey.pk))
    assert [a.actor_label for a in audits] == ["fiona"] * 3


def test_rerunning_the_post_step_never_writes_twice(client, ledger, netsuite):
    """Even if a worker re-ran the posting step after success, the ERP sees one write."""
    post_signed(client, invoice_event(invoice_id="in_rerun"))
    drain()
    post = Step.objects.get(journey__business_key="in_rerun", name="post_entry")
    Step.objects.filter(pk=post.pk).update(state=Step.State.PENDING)
    Journey.objects.filter(pk=post.journey_id).update(state=Journey.State.RUNNING)
    drain()
    [record] = emulator_records(netsuite)
    assert record["write_count"] == 1
    assert Step.objects.get(pk=post.pk).response_snapshot["already_posted"] is True


def test_missing_product_mapping_stops_then_replay_completes_once(
    client, ledger, netsuite, finance_ops
):
    post_signed(client, invoice_event(invoice_id="in_nomap", price="price_new_addon"))
    drain()
    journey = Journey.objects.get(business_key="in_nomap")
    assert journey.state == Journey.State.EXCEPTION
    case = ExceptionCase.objects.get(journey=journey)
    assert case.category == ExceptionCase.Category.UNMAPPED_PRODUCT
    assert "price_new_addon" in case.summary and case.state == ExceptionCase.State.OPEN
    assert case.step.name == "map_accounts"
    assert emulator_records(netsuite) == []

    map_product("price_new_addon", code="ADDON")
    for _ in range(3):  # pressing replay again while it runs is refused, never doubled
        try:
            journey_replay(journey_id=journey.pk, actor=finance_ops, reason="mapping added")
        except Exception as exc:
            assert "only a journey in exception" in str(exc)
    drain()

    journey.refresh_from_db()
    case.refresh_from_db()
    assert journey.state == Journey.State.COMPLETED
    assert case.state == ExceptionCase.State.RESOLVED
    [record] = emulator_records(netsuite)
    assert record["write_count"] == 1
    replay = AuditEntry.objects.get(action="journey.replay", object_id=str(journey.pk))
    assert replay.actor == finance_ops and replay.reason == "mapping added"
    assert replay.after["from_step"] == "map_accounts"


def test_unmapped_tax_rate_names_the_rate(client, ledger, netsuite):
    post_signed(client, invoice_event(invoice_id="in_tax", tax_rate="txr_ca_13", tax_percent="13"))
    drain()
    case = ExceptionCase.objects.get(journey__business_key="in_tax")
    assert case.category == ExceptionCase.Category.INVALID_TAX_JURISDICTION
    assert "no tax mapping in us-inc for txr_ca_13" in case.summary
    assert case.context["missing"] == {"invalid_tax_jurisdiction": ["txr_ca_13"]}


def test_customer_naming_an_unknown_entity_is_a_missing_entity_mapping(client, ledger, netsuite):
    post_signed(client, customer_event("cus_nowhere", entity="jp-kk"))
    post_signed(client, invoice_event("cus_nowhere", invoice_id="in_jp"))
    drain()
    case = ExceptionCase.objects.get(journey__business_key="in_jp")
    assert case.category == ExceptionCase.Category.MISSING_ENTITY_MAPPING
    assert "jp-kk" in case.summary
    assert case.context["entity_code"] == "jp-kk"


def test_customer_with_entity_metadata_is_linked_automatically(client, ledger, netsuite):
    post_signed(client, customer_event("cus_new", entity="us-inc"))
    post_signed(client, invoice_event("cus_new", invoice_id="in_new"))
    drain()
    assert Journey.objects.get(business_key="in_new").state == Journey.State.COMPLETED
    link_audit = AuditEntry.objects.get(action="customer_link.create")
    assert link_audit.after == {"legal_entity": "us-inc", "source": "customer metadata"}


def test_unknown_customer_waits_then_becomes_customer_not_linked(
    client, ledger, netsuite, settings
):
    settings.RCT = {**settings.RCT, "DEPENDENCY_WAIT_SECONDS": 300}
    post_signed(client, invoice_event("cus_stranger", invoice_id="in_str"))
    drain()
    step = Step.objects.get(journey__business_key="in_str", name="link_customer")
    # Its customer event may still be on its way: the journey waits, spending no attempts.
    assert (step.state, step.attempts) == (Step.State.PENDING, 0)
    assert Journey.objects.get(business_key="in_str").state == Journey.State.WAITING
    assert not ExceptionCase.objects.exists()
    Step.objects.filter(pk=step.pk).update(
        next_attempt_at=timezone.now(), started_at=timezone.now() - dt.timedelta(seconds=301)
    )
    drain()
    case = ExceptionCase.objects.get(journey__business_key="in_str")
    assert case.category == ExceptionCase.Category.CUSTOMER_NOT_LINKED
    assert "cus_stranger" in case.summary and "(waited 5 min" in case.summary


def test_customer_event_arriving_after_its_invoice_is_waited_for(client, ledger, netsuite):
    post_signed(client, invoice_event("cus_late", invoice_id="in_late"))
    drain()
    step = Step.objects.get(journey__business_key="in_late", name="link_customer")
    assert step.state == Step.State.PENDING
    post_signed(client, customer_event("cus_late", entity="us-inc"))
    _release_retry(step)
    drain()
    assert Journey.objects.get(business_key="in_late").state == Journey.State.COMPLETED
    assert len(emulator_records(netsuite)) == 1


def _release_retry(step: Step) -> None:
    Step.objects.filter(pk=step.pk).update(next_attempt_at=timezone.now())


def test_erp_503_twice_then_ok_completes_after_retries_with_one_entry(client, ledger, netsuite):
    emulator_faults(netsuite, {"status": 503, "times": 2})
    post_signed(client, invoice_event(invoice_id="in_503"))
    drain()
    post = Step.objects.get(journey__business_key="in_503", name="post_entry")
    assert post.state == Step.State.RETRYING and post.attempts == 1
    assert Journey.objects.get(business_key="in_503").state == Journey.State.RETRYING
    _release_retry(post)
    drain()
    post.refresh_from_db()
    assert post.state == Step.State.RETRYING and post.attempts == 2
    _release_retry(post)
    drain()
    post.refresh_from_db()
    assert post.state == Step.State.SUCCEEDED and post.attempts == 3
    assert Journey.objects.get(business_key="in_503").state == Journey.State.COMPLETED
    [record] = emulator_records(netsuite)
    assert record["write_count"] == 1


def test_429_retry_after_is_honoured(client, ledger, netsuite):
    emulator_faults(netsuite, {"status": 429, "retry_after": 7, "times": 1})
    post_signed(client, invoice_event(invoice_id="in_429"))
    before = timezone.now()
    drain()
    post = Step.objects.get(journey__business_key="in_429", name="post_entry")
    assert post.state == Step.State.RETRYING
    assert post.next_attempt_at >= before + dt.timedelta(seconds=7)


def test_erp_down_past_the_attempt_limit_becomes_an_exception(client, ledger, netsuite, settings):
    settings.RCT = {**settings.RCT, "MAX_STEP_ATTEMPTS": 3}
    emulator_faults(netsuite, {"status": 503, "times": 10})
    post_signed(client, invoice_event(invoice_id="in_down"))
    drain()
    post = Step.objects.get(journey__business_key="in_down", name="post_entry")
    for _ in range(2):
        _release_retry(post)
        drain()
    post.refresh_from_db()
    assert post.state == Step.State.FAILED and post.attempts == 3
    case = ExceptionCase.objects.get(journey__business_key="in_down")
    assert case.category == ExceptionCase.Category.CONNECTOR_UNAVAILABLE
    assert "after 3 attempts" in case.summary
    assert emulator_records(netsuite) == []


def test_timeout_after_the_erp_stored_the_entry_reads_back_instead_of_writing(
    client, ledger, netsuite
):
    emulator_faults(netsuite, {"timeout": 4, "apply": True, "times": 1})
    post_signed(client, invoice_event(invoice_id="in_to"))
    drain()
    post = Step.objects.get(journey__business_key="in_to", name="post_entry")
    assert post.state == Step.State.RETRYING and "timeout" in post.error_message.lower()
    _release_retry(post)
    drain()
    entry = JournalEntry.objects.get(journey__business_key="in_to")
    assert entry.state == JournalEntry.State.POSTED
    [record] = emulator_records(netsuite)
    assert record["write_count"] == 1 and str(record["id"]) == entry.erp_document_id


def test_a_claimed_step_cannot_be_claimed_twice(client, ledger, netsuite):
    post_signed(client, invoice_event(invoice_id="in_claim"))
    from sync.services.dispatch import inbound_event_dispatch

    inbound_event_dispatch(event_id=InboundEvent.objects.get().pk)
    first = Step.objects.get(journey__business_key="in_claim", position=1)
    second = Step.objects.get(journey__business_key="in_claim", position=2)
    assert step_claim(second.pk) is None  # predecessors not done
    assert step_claim(first.pk) is not None
    assert step_claim(first.pk) is None
