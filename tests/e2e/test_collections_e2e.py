"""The collection journeys on real parts — a failed attempt, a dispute opened and lost, an
invoice written off, a mid-cycle upgrade — delivered over HTTP as Stripe sends them, all at
once, to a real qcluster and clock, each journey waiting for the one it depends on.

Figures are minor units in our ledger and decimal major units in the ERP."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from connectors.stripe import emulator as se
from sync.journeys.payment import open_balance
from sync.models import JournalEntry, Journey, Payment, Subscription
from tests.e2e.conftest import deliver, describe, record_lines, settled_journey, wait_for
from tests.factories import add_cash_accounts, link_customer, make_ledger, map_product, map_tax
from tests.stripe_events import invoice_event
from tests.sync.billing_support import add_dispute_accounts

pytestmark = [pytest.mark.e2e]
D = dt.date


def ts(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def ledger(transactional_db):
    ledger = make_ledger()
    add_cash_accounts(ledger)
    add_dispute_accounts(ledger)
    map_product("price_platform")
    map_product("price_seat")
    map_tax(ledger, "txr_us_8")
    link_customer(ledger, "cus_acme")
    return ledger


def completed(journey_type: str, business_key: str) -> Journey:
    journey = settled_journey(journey_type, business_key)
    assert journey.state == Journey.State.COMPLETED, describe(journey)
    return journey


def lines(entry: JournalEntry) -> list[tuple[str, int, int]]:
    return [(ln.account.number, ln.debit_minor, ln.credit_minor) for ln in entry.lines.all()]


def test_failed_attempt_then_payment_dispute_lost_and_a_write_off_post_in_order(
    live_server, stack, ledger
):
    stack.start_workers()
    paid_ev = invoice_event(invoice_id="in_disp", amount=1_000_00)
    paid = paid_ev["data"]["object"]
    # Since API basil a charge names no invoice: the failed attempt is tied to it through the
    # payment intent it shares with the charge that paid, whose link event names the invoice.
    failed = se.make_failed_charge(
        paid, charge_id="ch_fail", payment_intent_id="pi_e2e", created=ts(D(2026, 4, 9))
    )
    charge = se.make_charge(
        paid, charge_id="ch_ok", payment_intent_id="pi_e2e", created=ts(D(2026, 4, 10))
    )
    dispute = se.make_dispute(charge, dispute_id="dp_e2e", created=ts(D(2026, 4, 20)))
    lost = se.close_dispute(dispute, "lost", closed_at=ts(D(2026, 4, 30)))
    unpaid_ev = invoice_event(invoice_id="in_unpaid", amount=500_00)
    marked = se.uncollectible_invoice(unpaid_ev["data"]["object"], marked_at=ts(D(2026, 4, 25)))
    events = [
        # Out of order on purpose: the dispute's close and the write-off before what they need.
        se.make_event("charge.dispute.closed", lost, created=ts(D(2026, 4, 30))),
        se.make_event("invoice.marked_uncollectible", marked, created=ts(D(2026, 4, 25))),
        paid_ev,
        unpaid_ev,
        se.make_event("charge.failed", failed),
        se.make_event("invoice_payment.paid", se.make_invoice_payment(paid, charge)),
        se.make_event("charge.succeeded", charge),
        se.make_event("charge.dispute.created", dispute),
    ]
    assert [deliver(live_server, e).status_code for e in events] == [200] * len(events)

    failure = completed("payment_failed", "ch_fail")
    assert not JournalEntry.objects.filter(journey=failure).exists()  # no money moved
    attempt = Payment.objects.get(source_id="ch_fail")
    assert (attempt.state, attempt.invoice_ref, attempt.failure_code) == (
        "failed",
        "in_disp",
        "card_declined",
    )

    completed("payment_to_ledger", "ch_ok")
    opened = JournalEntry.objects.get(journey=completed("dispute_opened", "dp_e2e:opened"))
    closed = JournalEntry.objects.get(journey=completed("dispute_closed", "dp_e2e:closed"))
    payment = JournalEntry.objects.get(external_id="RCT-STRIPE-ch_ok")
    assert payment.posted_at < opened.created_at and opened.posted_at < closed.created_at
    # Dr disputed payments 1,080.00 + Dr fees 15.00 / Cr cash 1,095.00; lost: written off.
    assert lines(opened) == [("1150", 1_080_00, 0), ("6100", 15_00, 0), ("1100", 0, 1_095_00)]
    assert lines(closed) == [("6900", 1_080_00, 0), ("1150", 0, 1_080_00)]
    assert open_balance(ledger.entity, "in_disp", ledger.accounts["disputes"].pk) == (0, 0)

    write_off = JournalEntry.objects.get(
        journey=completed("invoice_uncollectible", "in_unpaid:uncollectible")
    )
    assert lines(write_off) == [("6900", 540_00, 0), ("1200", 0, 540_00)]
    assert open_balance(ledger.entity, "in_unpaid", ledger.ar.pk) == (0, 0)

    records = {r["externalId"]: r for r in stack.records()}
    assert set(records) == {
        "RCT-STRIPE-in_disp",
        "RCT-STRIPE-in_unpaid",
        "RCT-STRIPE-ch_ok",
        "RCT-STRIPE-dp_e2e-OPENED",
        "RCT-STRIPE-dp_e2e-CLOSED",
        "RCT-STRIPE-in_unpaid-UNCOLLECTIBLE",
    }
    assert {r["write_count"] for r in records.values()} == {1}
    assert record_lines(records["RCT-STRIPE-dp_e2e-CLOSED"]) == [
        ("6900", Decimal("1080.00"), Decimal("0")),
        ("1150", Decimal("0"), Decimal("1080.00")),
    ]


def _seats(quantity: int, item_id: str | None = None) -> list[se.ItemSpec]:
    return [
        se.ItemSpec(
            price_id="price_seat",
            product_id="prod_seats",
            unit_amount=100_00,
            quantity=quantity,
            item_id=item_id,
        )
    ]


def test_an_upgrade_records_mrr_and_a_stale_update_is_skipped(live_server, stack, ledger):
    stack.start_workers()
    start = ts(D(2026, 4, 1))
    sub = se.make_subscription(
        "cus_acme",
        _seats(5),
        currency="usd",
        current_period_start=start,
        current_period_end=ts(D(2026, 5, 1)),
        subscription_id="sub_e2e",
        created=start,
    )
    item = sub["items"]["data"][0]["id"]
    eight = se.subscription_changed(sub, items=_seats(8, item), at=ts(D(2026, 4, 15)))
    nine = se.subscription_changed(eight, items=_seats(9, item), at=ts(D(2026, 4, 20)))
    events = [
        se.make_event("customer.subscription.created", sub, created=start),
        se.make_subscription_updated_event(eight, nine, created=ts(D(2026, 4, 20))),
    ]
    assert [deliver(live_server, e).status_code for e in events] == [200] * 2
    amendments = Journey.objects.filter(journey_type="amendment")
    wait_for(lambda: amendments.exists(), timeout=60, what="the newer update dispatched")
    current = settled_journey("amendment", amendments.get().business_key)
    assert current.state == Journey.State.COMPLETED, describe(current)
    ctx = current.context
    assert (ctx["mrr_before_minor"], ctx["mrr_after_minor"], ctx["change"]) == (
        800_00,
        900_00,
        "upgrade",
    )
    # The older change is delivered late (Stripe retries a failed delivery for days): it is
    # stale against what we now hold, and ends skipped with the reason.
    late = se.make_subscription_updated_event(sub, eight, created=ts(D(2026, 4, 15)))
    assert deliver(live_server, late).status_code == 200
    wait_for(lambda: amendments.count() == 2, timeout=60, what="the late update dispatched")
    stale = settled_journey("amendment", amendments.exclude(pk=current.pk).get().business_key)
    assert stale.state == Journey.State.SKIPPED, describe(stale)
    assert stale.context["skipped"].startswith("stale: this update is from 2026-04-15")
    row = Subscription.objects.get(source_id="sub_e2e")
    assert row.items == [["price_seat", "prod_seats", 9]]  # the newest state stands
    assert not JournalEntry.objects.exists()  # the proration is invoiced, not posted here
