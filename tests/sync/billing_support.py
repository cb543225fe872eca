"""Shared set-up for the failed-payment, dispute and uncollectible journey tests."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from connectors.stripe import emulator as se
from sync.models import EntityAccounts, GLAccount, JournalEntry, Step
from tests.conftest import drain, emulator_records
from tests.factories import GLAccountFactory, Ledger
from tests.stripe_events import invoice_event, post_signed

D = dt.date
APR_1, APR_10, APR_12, APR_20 = D(2026, 4, 1), D(2026, 4, 10), D(2026, 4, 12), D(2026, 4, 20)


# A step waiting on a dependency is ``retrying`` (attempts spent) or ``pending`` with a next look
# (the wait given back), depending on the engine's policy; either way it has not failed.
WAITING = {Step.State.RETRYING, Step.State.PENDING}
# Settings that turn a dependency wait into its exception on the next look, under either policy
# (a number of attempts, or a time since the step's first run).
GIVE_UP_AT_ONCE = {"MAX_STEP_ATTEMPTS": 2, "DEPENDENCY_WAIT_SECONDS": 0}


def ts(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def add_dispute_accounts(
    ledger: Ledger, *, dispute: bool = True, bad_debt: bool = True
) -> EntityAccounts:
    """The two optional entity accounts disputes and write-offs post to."""
    accounts = EntityAccounts.objects.get(legal_entity=ledger.entity)
    if dispute:
        ledger.accounts["disputes"] = GLAccountFactory(
            legal_entity=ledger.entity,
            number="1150",
            name="Disputed payments",
            kind=GLAccount.Kind.ASSET,
        )
        accounts.dispute_account = ledger.accounts["disputes"]
    if bad_debt:
        ledger.accounts["bad_debt"] = GLAccountFactory(
            legal_entity=ledger.entity,
            number="6900",
            name="Bad debt and dispute losses",
            kind=GLAccount.Kind.EXPENSE,
        )
        accounts.bad_debt_account = ledger.accounts["bad_debt"]
    accounts.save()
    return accounts


def post_invoice(client, **kw) -> dict:
    """Post an invoice.finalized event (Apr 1), drain, and return the invoice object."""
    event = invoice_event(**kw)
    post_signed(client, event)
    drain()
    return event["data"]["object"]


def pay(client, invoice: dict, **charge_kw) -> dict:
    """A charge on ``invoice`` created Apr 10 (available Apr 12 unless told), linked by its
    ``invoice_payment.paid`` event as Stripe delivers it in the current API shape."""
    charge_kw.setdefault("created", ts(APR_10))
    charge = se.make_charge(invoice, **charge_kw)
    post_signed(
        client, se.make_event("invoice_payment.paid", se.make_invoice_payment(invoice, charge))
    )
    post_signed(client, se.make_event("charge.succeeded", charge))
    return charge


def lines(entry: JournalEntry) -> list[tuple[str, int, int, int, int]]:
    """(account, debit, credit, functional debit, functional credit) per line."""
    return [
        (
            ln.account.number,
            ln.debit_minor,
            ln.credit_minor,
            ln.functional_debit_minor,
            ln.functional_credit_minor,
        )
        for ln in entry.lines.order_by("line_no")
    ]


def erp_lines(netsuite: str, external_id: str) -> tuple[dict, list[tuple]]:
    """The NetSuite emulator's record for ``external_id`` and its (account, debit, credit)."""
    record = next(r for r in emulator_records(netsuite) if r["externalId"] == external_id)
    return record, [(i["account"], i["debit"] or 0, i["credit"] or 0) for i in record["lines"]]


def release(step: Step) -> None:
    """Make a retrying step due now (instead of waiting out its backoff)."""
    Step.objects.filter(pk=step.pk).update(next_attempt_at=timezone.now())


def drain_with_waits(rounds: int = 5) -> None:
    """``drain``, letting time pass for steps waiting on another journey: each round makes the
    waiting steps due and drains again, until nothing is left waiting or ``rounds`` run out."""
    from sync.models import Journey

    drain()
    for _ in range(rounds):
        waiting = Step.objects.filter(
            journey__state__in=Journey.ACTIVE, state__in=WAITING, next_attempt_at__isnull=False
        )
        if not waiting.exists():
            return
        waiting.update(next_attempt_at=timezone.now())
        drain()
