"""dispute_opened and dispute_closed: a chargeback withdraws money, its outcome settles it.

dispute_opened (``charge.dispute.created``, ``charge.dispute.funds_withdrawn``; business key
``<dispute id>:opened``, or ``<dispute id>:inquiry`` for an inquiry that moved no funds)
    validate: read the dispute and its withdrawal (from this event or a later one in the
    inbox), wait until the disputed charge's payment is posted (that names the invoice and the
    entity) -> build_entry: Dr disputed payments (the amount) + Dr processor fees (the dispute
    fee) / Cr cash (what Stripe took) -> post -> confirm. External id
    ``RCT-STRIPE-<dispute id>-OPENED``.

dispute_closed (``charge.dispute.closed``, business key ``<dispute id>:closed``)
    validate: wait until the opening is posted; for a won dispute, read the reinstatement ->
    build_entry: **won** Dr cash / Cr disputed payments (+ Cr processor fees for a fee Stripe
    gives back, FX gain/loss on the amount in a foreign currency); **lost** Dr bad debt
    (dispute losses) / Cr disputed payments, at the amount it was withdrawn at -> post ->
    confirm. External id ``RCT-STRIPE-<dispute id>-CLOSED``. An inquiry closed as
    ``warning_closed`` moved no funds: the journey ends skipped, with that reason.

Choices a controller should review (documented where they are made):

* **Disputed payments, not AR.** The withdrawn amount is a claim on Stripe while the network
  decides (``EntityAccounts.dispute_account``); the invoice stays paid, so its AR and ageing
  are untouched. A lost dispute writes the claim off to ``EntityAccounts.bad_debt_account``.
* **The dispute fee** is an expense when taken. Whether Stripe returns it on a win depends on
  the region and date (it used to refund it in the US; since mid-2025 it keeps the
  dispute-received fee and refunds only a countered fee), so nothing is assumed: the
  reinstatement's own balance transaction says what came back, and only that is posted.
* **Rates and dates.** As for payments: each entry is dated the balance transaction's
  ``available_on`` (a lost dispute: the day of the close event), or the first open period;
  functional amounts at Stripe's ``exchange_rate`` when it settled in the functional currency
  (taking its own figures), else the ``FxRate`` of that day. The claim is relieved at the
  functional amount it was booked at, so a won dispute in a foreign currency shows the FX
  difference and a lost one none.
* **Order.** Stripe delivers events in no set order. A close whose opening journey does not
  exist (its ``charge.dispute.created`` lost or not yet here) starts that journey from the
  close's own payload, which carries the withdrawal, then waits for it to post.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.db import transaction

from connectors.base import BillingDispute, BillingDisputeFunds, BillingPayment, PermanentError
from connectors.stripe import payments as stripe_payments
from sync.accounting.entries import DraftLine
from sync.accounting.payments import (
    dispute_reinstatement_lines,
    dispute_withdrawal_lines,
    write_off_lines,
)
from sync.errors import DataDefect, DependencyPending, StepSkipped
from sync.journeys import JourneyType, StepContext, StepDef
from sync.journeys.common import POSTING_STEPS
from sync.journeys.payment import (
    _as_data_defects,
    _customer_ref,
    _entity_accounts,
    _event_object,
    _external_id,
    _invoice_entry,
    _invoice_rule,
    _money,
    _posted_entry,
    _set_entity,
    _settlement_rate,
    fee_in_charge_currency,
)
from sync.models import (
    EntityAccounts,
    ExceptionCase,
    JournalEntry,
    Journey,
    LegalEntity,
    PostingRule,
)
from sync.services.inbox import inbox_events_naming
from sync.services.ledger import journal_entry_create
from sync.services.periods import first_open_period

Cat = ExceptionCase.Category


def opened_external_id(dispute_id: str) -> str:
    return f"{_external_id(dispute_id)}-OPENED"


def closed_external_id(dispute_id: str) -> str:
    return f"{_external_id(dispute_id)}-CLOSED"


def _parse(obj: dict[str, Any], event_id: str) -> BillingDispute:
    try:
        return stripe_payments.parse_dispute(obj)
    except PermanentError as exc:
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"The dispute could not be read: {exc.message}",
            context={"event_id": event_id},
        ) from exc


def _dispute(ctx: StepContext) -> BillingDispute:
    return _parse(_event_object(ctx), ctx.journey.source_event.source_event_id)


def _funds_from_inbox(dispute_id: str, direction: str) -> BillingDisputeFunds | None:
    """The dispute's ``direction`` movement as any event in the inbox reports it (a
    ``funds_withdrawn`` / ``funds_reinstated`` / ``updated`` / ``closed`` event may carry what
    this journey's own event did not yet), newest first."""
    events = inbox_events_naming(
        "charge.dispute.", {("data", "object", "id"): [dispute_id]}, newest_first=True
    )
    for event in events:
        try:
            d = stripe_payments.parse_dispute(event.payload["data"]["object"])
        except PermanentError:
            continue
        found = d.withdrawal if direction == "withdrawn" else d.reinstatement
        if found is not None:
            return found
    return None


def _as_payment(d: BillingDispute, funds: BillingDisputeFunds) -> BillingPayment:
    """The dispute's movement in the shape the payment helpers (fee conversion, settlement
    rate) read."""
    return BillingPayment(
        source_id=d.source_id,
        kind="dispute",
        invoice_ref="",
        customer_ref="",
        currency=d.currency,
        amount_minor=d.amount_minor,
        fee_minor=abs(funds.fee_minor),
        settlement_currency=funds.currency,
        settlement_amount_minor=funds.amount_minor,
        exchange_rate=funds.exchange_rate,
        settled_at=funds.available_at,
        charge_ref=d.charge_ref,
        status=d.status,
    )


def _funds_context(funds: BillingDisputeFunds) -> dict[str, Any]:
    return {**dataclasses.asdict(funds), "net_minor": funds.net_minor}


def _funds_from_context(data: dict[str, Any]) -> BillingDisputeFunds:
    fields = {f.name for f in dataclasses.fields(BillingDisputeFunds)}
    values = {k: v for k, v in data.items() if k in fields}
    if values.get("available_at"):
        values["available_at"] = dt.datetime.fromisoformat(values["available_at"])
    return BillingDisputeFunds(**values)


def _dispute_account(accounts: EntityAccounts, entity: LegalEntity, what: str) -> int:
    if accounts.dispute_account_id is None:
        raise DataDefect(
            Cat.MISSING_POSTING_RULE,
            f"{what} cannot be posted: {entity.code}'s entity accounts name no disputed "
            "payments account. Set one (an asset, e.g. 'Disputed payments / chargebacks'), "
            "then replay.",
            context={"entity": entity.code, "field": "dispute_account"},
        )
    return accounts.dispute_account_id


def _bad_debt_account(accounts: EntityAccounts, entity: LegalEntity, what: str) -> int:
    if accounts.bad_debt_account_id is None:
        raise DataDefect(
            Cat.MISSING_POSTING_RULE,
            f"{what} cannot be posted: {entity.code}'s entity accounts name no bad debt "
            "account. Set one (an expense, e.g. 'Bad debt and dispute losses'), then replay.",
            context={"entity": entity.code, "field": "bad_debt_account"},
        )
    return accounts.bad_debt_account_id


def _fee_in_dispute_currency(d: BillingDispute, funds: BillingDisputeFunds) -> int:
    """The movement's fee in the dispute currency, signed as Stripe reports it."""
    magnitude = fee_in_charge_currency(_as_payment(d, funds))
    return magnitude if funds.fee_minor >= 0 else -magnitude


def _settled_functional(
    d: BillingDispute, funds: BillingDisputeFunds, functional: str
) -> tuple[int, int] | None:
    """Stripe's own functional figures (amount, |fee|) when it settled in that currency."""
    if d.currency != functional and funds.currency == functional:
        return funds.amount_minor, abs(funds.fee_minor)
    return None


def _check_same_amount(d: BillingDispute, funds: BillingDisputeFunds, expected: int) -> None:
    if funds.currency == d.currency and funds.amount_minor != expected:
        raise DataDefect(
            Cat.AMOUNT_MISMATCH,
            f"Stripe {funds.direction} {_money(funds.amount_minor, funds.currency)} for dispute "
            f"{d.source_id}, but {_money(expected, d.currency)} is disputed. A partial "
            "chargeback or reinstatement is not posted automatically; post it by hand.",
            context={"dispute": d.source_id, "balance_transaction": funds.source_id},
        )


def _entry_day(funds: BillingDisputeFunds | None, fallback: dt.datetime) -> dt.date:
    return (funds.available_at if funds and funds.available_at else fallback).date()


# --- dispute_opened -----------------------------------------------------------------------------


def validate_opening(ctx: StepContext) -> dict[str, Any]:
    """Read the dispute and its withdrawal; wait for the disputed payment's entry."""
    d = _dispute(ctx)
    if ctx.journey.business_key.endswith(":inquiry"):
        # The withdrawal of a chargeback that follows is posted by the ``:opened`` journey its
        # own event starts, never here, so it cannot post twice.
        raise StepSkipped(
            f"Dispute {d.source_id} on charge {d.charge_ref} is an inquiry ({d.status}); "
            "Stripe withdrew no funds, so nothing is posted. A chargeback that follows it "
            "is posted when Stripe withdraws the funds."
        )
    withdrawal = d.withdrawal or _funds_from_inbox(d.source_id, "withdrawn")
    if withdrawal is None:
        raise DependencyPending(
            Cat.INVALID_PAYLOAD,
            f"Stripe has not reported the funds withdrawn for dispute {d.source_id} "
            f"({_money(d.amount_minor, d.currency)} on charge {d.charge_ref}) yet. It normally "
            "does with the dispute; check the dispute's balance transactions in Stripe.",
            context={"dispute": d.source_id, "charge": d.charge_ref},
        )
    payment_entry = _posted_entry(_external_id(d.charge_ref))
    if payment_entry is None:
        raise DependencyPending(
            Cat.DOCUMENT_NOT_POSTED,
            f"Dispute {d.source_id} of {_money(d.amount_minor, d.currency)} is on charge "
            f"{d.charge_ref}, whose payment is not in the ledger yet. Post the payment first; "
            "the dispute follows (or replay it).",
            context={"dispute": d.source_id, "charge": d.charge_ref},
        )
    if payment_entry.currency != d.currency:
        raise DataDefect(
            Cat.AMOUNT_MISMATCH,
            f"Dispute {d.source_id} is in {d.currency} but the payment of charge "
            f"{d.charge_ref} was posted in {payment_entry.currency}. Post it by hand.",
            context={"dispute": d.source_id, "charge": d.charge_ref},
        )
    _check_same_amount(d, withdrawal, d.amount_minor)
    _set_entity(ctx, payment_entry.legal_entity)
    return {
        "dispute": d.source_id,
        "charge": d.charge_ref,
        "dispute_status": d.status,
        "dispute_reason": d.reason,
        "disputed_minor": d.amount_minor,
        "currency": d.currency,
        "invoice_ref": payment_entry.document_ref,
        "payment_entry_id": payment_entry.pk,
        "legal_entity_id": payment_entry.legal_entity_id,
        "withdrawal": _funds_context(withdrawal),
    }


def _rule_and_customer(
    invoice_ref: str, payment_entry: JournalEntry
) -> tuple[PostingRule, str, JournalEntry | None]:
    """The posting rule (for its rounding account) and the customer to name on the lines:
    the invoice's when it is in the ledger, else the payment's own rule."""
    invoice_entry = _invoice_entry(invoice_ref)
    if invoice_entry is not None:
        rule = _invoice_rule(invoice_entry)
        return rule, _customer_ref(invoice_entry, rule.ar_account_id, ""), invoice_entry
    rule = _invoice_rule(payment_entry)
    return rule, _customer_ref(payment_entry, rule.ar_account_id, ""), None


def build_opening_entry(ctx: StepContext) -> dict[str, Any]:
    """Dr disputed payments + Dr processor fees / Cr cash, once."""
    d = _dispute(ctx)
    existing = JournalEntry.objects.filter(external_id=opened_external_id(d.source_id)).first()
    if existing:
        return {"entry_id": existing.pk, "external_id": existing.external_id}
    withdrawal = _funds_from_context(ctx.data["withdrawal"])
    payment_entry = JournalEntry.objects.select_related("legal_entity").get(
        pk=ctx.data["payment_entry_id"]
    )
    entity = payment_entry.legal_entity
    functional = entity.functional_currency
    what = f"Dispute {d.source_id}"
    accounts = _entity_accounts(entity, what)
    dispute_account = _dispute_account(accounts, entity, what)
    rule, customer_ref, _ = _rule_and_customer(ctx.data["invoice_ref"], payment_entry)
    day = _entry_day(withdrawal, d.created)
    as_payment = _as_payment(d, withdrawal)
    rate, rate_source = _settlement_rate(as_payment, functional, day)
    fee = _fee_in_dispute_currency(d, withdrawal)
    with _as_data_defects(what, entity):
        lines = dispute_withdrawal_lines(
            amount_minor=d.amount_minor,
            fee_minor=fee,
            currency=d.currency,
            functional_currency=functional,
            rate=rate,
            cash_account_id=accounts.cash_account_id,
            dispute_account_id=dispute_account,
            fee_account_id=accounts.processor_fee_account_id,
            customer_ref=customer_ref,
            memo=f"Dispute {d.source_id} on {d.charge_ref} ({d.reason or 'no reason'})",
            settled_functional=_settled_functional(d, withdrawal, functional),
        )
    entry = journal_entry_create(
        entity=entity,
        kind=JournalEntry.Kind.DISPUTE,
        journey=ctx.journey,
        posting_date=max(day, first_open_period(entity)),
        currency=d.currency,
        fx_rate=rate,
        memo=f"Dispute {d.source_id} opened on charge {d.charge_ref} "
        f"(invoice {ctx.data['invoice_ref'] or 'unknown'})",
        external_id=opened_external_id(d.source_id),
        document_ref=ctx.data["invoice_ref"],
        lines=lines,
        rule_versions={
            "posting_rules": [rule.pk],
            "entity_accounts": accounts.pk,
            "dispute_account": dispute_account,
            "settlement_rate_source": rate_source,
        },
    )
    return {
        "entry_id": entry.pk,
        "external_id": entry.external_id,
        "dispute_fee_minor": fee,
        "withdrawn_minor": d.amount_minor + fee,
    }


# --- dispute_closed -----------------------------------------------------------------------------


def _start_opening_from(ctx: StepContext, d: BillingDispute) -> None:
    """Start the opening journey from this close event (it carries the withdrawal), once."""
    from sync.services.dispatch import journey_start

    with transaction.atomic():
        journey_start(
            jt=OPENED_JOURNEY,
            business_key=f"{d.source_id}:opened",
            aggregate_key=f"stripe:{d.charge_ref}",
            business_at=ctx.journey.business_at,
            event=ctx.journey.source_event,
        )


def validate_close(ctx: StepContext) -> dict[str, Any]:
    """Check the outcome; wait for the opening entry (and, when won, the reinstatement)."""
    d = _dispute(ctx)
    if d.is_inquiry:
        raise StepSkipped(
            f"Dispute {d.source_id} on charge {d.charge_ref} was an inquiry and closed as "
            f"{d.status}; no funds moved, so nothing is posted."
        )
    if d.status not in ("won", "lost"):
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"Dispute {d.source_id} closed with status '{d.status}', which is neither won nor "
            "lost; post its outcome by hand.",
            context={"dispute": d.source_id, "status": d.status},
        )
    opened = _posted_entry(opened_external_id(d.source_id))
    if opened is None:
        exists = Journey.objects.filter(
            journey_type=OPENED_JOURNEY.name, business_key=f"{d.source_id}:opened"
        ).exists()
        if not exists and d.withdrawal is not None:
            _start_opening_from(ctx, d)
        raise DependencyPending(
            Cat.DOCUMENT_NOT_POSTED,
            f"Dispute {d.source_id} closed as {d.status}, but the funds Stripe withdrew when it "
            "opened are not in the ledger yet. The opening posts first; the outcome follows "
            "(or replay it).",
            context={"dispute": d.source_id, "charge": d.charge_ref},
        )
    reinstatement = None
    if d.status == "won":
        reinstatement = d.reinstatement or _funds_from_inbox(d.source_id, "reinstated")
        if reinstatement is None:
            raise DependencyPending(
                Cat.INVALID_PAYLOAD,
                f"Dispute {d.source_id} was won, but Stripe has not reported the funds "
                "returned yet. Check the dispute's balance transactions in Stripe.",
                context={"dispute": d.source_id},
            )
    _set_entity(ctx, opened.legal_entity)
    return {
        "dispute": d.source_id,
        "charge": d.charge_ref,
        "outcome": d.status,
        "currency": d.currency,
        "invoice_ref": opened.document_ref,
        "opened_entry_id": opened.pk,
        "legal_entity_id": opened.legal_entity_id,
        "reinstatement": _funds_context(reinstatement) if reinstatement else None,
    }


def build_close_entry(ctx: StepContext) -> dict[str, Any]:
    """Won: Dr cash / Cr disputed payments. Lost: Dr bad debt / Cr disputed payments. Once."""
    d = _dispute(ctx)
    existing = JournalEntry.objects.filter(external_id=closed_external_id(d.source_id)).first()
    if existing:
        return {"entry_id": existing.pk, "external_id": existing.external_id}
    opened = JournalEntry.objects.select_related("legal_entity").get(pk=ctx.data["opened_entry_id"])
    entity = opened.legal_entity
    functional = entity.functional_currency
    what = f"Dispute {d.source_id} ({d.status})"
    accounts = _entity_accounts(entity, what)
    dispute_account = opened.rule_versions.get("dispute_account") or _dispute_account(
        accounts, entity, what
    )
    claim = opened.lines.filter(account_id=dispute_account, debit_minor__gt=0).first()
    if claim is None:
        raise DataDefect(
            Cat.AMOUNT_MISMATCH,
            f"The opening entry {opened.external_id} of dispute {d.source_id} has no disputed "
            "payments line to clear. Post the outcome by hand.",
            context={"dispute": d.source_id, "opened_entry": opened.external_id},
        )
    rule = PostingRule.objects.get(pk=opened.rule_versions["posting_rules"][0])
    memo = f"Dispute {d.source_id} {d.status} on {d.charge_ref}"
    rule_versions: dict[str, Any] = {
        "posting_rules": [rule.pk],
        "entity_accounts": accounts.pk,
        "dispute_account": dispute_account,
    }
    rate = None
    lines: list[DraftLine]
    if d.status == "won":
        reinstatement = _funds_from_context(ctx.data["reinstatement"])
        _check_same_amount(d, reinstatement, claim.debit_minor)
        day = _entry_day(reinstatement, ctx.journey.business_at)
        rate, rate_source = _settlement_rate(_as_payment(d, reinstatement), functional, day)
        rule_versions["settlement_rate_source"] = rate_source
        with _as_data_defects(what, entity):
            lines = dispute_reinstatement_lines(
                amount_minor=claim.debit_minor,
                fee_minor=_fee_in_dispute_currency(d, reinstatement),
                receivable_functional_minor=claim.functional_debit_minor,
                currency=d.currency,
                functional_currency=functional,
                rate=rate,
                cash_account_id=accounts.cash_account_id,
                dispute_account_id=dispute_account,
                fee_account_id=accounts.processor_fee_account_id,
                fx_account_id=accounts.fx_gain_loss_account_id,
                rounding_account_id=rule.fx_rounding_account_id,
                customer_ref=claim.customer_ref,
                memo=memo,
                settled_functional=_settled_functional(d, reinstatement, functional),
            )
        kind = JournalEntry.Kind.DISPUTE
    else:
        bad_debt = _bad_debt_account(accounts, entity, what)
        rule_versions["bad_debt_account"] = bad_debt
        day = ctx.journey.business_at.date()
        rate = opened.fx_rate
        with _as_data_defects(what, entity):
            lines = write_off_lines(
                amount_minor=claim.debit_minor,
                carrying_functional_minor=claim.functional_debit_minor,
                currency=d.currency,
                functional_currency=functional,
                expense_account_id=bad_debt,
                balance_account_id=dispute_account,
                customer_ref=claim.customer_ref,
                memo=memo,
            )
        kind = JournalEntry.Kind.WRITE_OFF
    entry = journal_entry_create(
        entity=entity,
        kind=kind,
        journey=ctx.journey,
        posting_date=max(day, opened.posting_date, first_open_period(entity)),
        currency=d.currency,
        fx_rate=rate,
        memo=f"Dispute {d.source_id} closed as {d.status} (charge {d.charge_ref}, invoice "
        f"{opened.document_ref or 'unknown'})",
        external_id=closed_external_id(d.source_id),
        document_ref=opened.document_ref,
        lines=lines,
        rule_versions=rule_versions,
    )
    return {
        "entry_id": entry.pk,
        "external_id": entry.external_id,
        "cleared_minor": claim.debit_minor,
    }


# --- journey types ------------------------------------------------------------------------------


def _object(env) -> dict[str, Any]:
    return env.payload["data"]["object"]


def _opened_key(env) -> str:
    """``<id>:inquiry`` for an inquiry that moved no funds, so a chargeback escalated from it
    (reported with its withdrawal) still starts the ``<id>:opened`` posting."""
    obj = _object(env)
    inquiry = str(obj.get("status", "")).startswith("warning_")
    moved = bool(obj.get("balance_transactions"))
    return f"{env.object_id}:inquiry" if inquiry and not moved else f"{env.object_id}:opened"


def _aggregate_key(env) -> str:
    charge = _object(env).get("charge")
    if isinstance(charge, dict):
        charge = charge.get("id")
    return f"stripe:{charge if isinstance(charge, str) and charge else env.object_id}"


OPENED_JOURNEY = JourneyType(
    name="dispute_opened",
    source_system="stripe",
    event_types=frozenset({"charge.dispute.created", "charge.dispute.funds_withdrawn"}),
    steps=(
        StepDef("validate", validate_opening, "Read the dispute; wait for its payment"),
        StepDef("build_entry", build_opening_entry, "Dr disputed payments + fee / Cr cash"),
        *POSTING_STEPS,
    ),
    business_key=_opened_key,
    aggregate_key=_aggregate_key,
    default_sla_minutes=60,
)

CLOSED_JOURNEY = JourneyType(
    name="dispute_closed",
    source_system="stripe",
    event_types=frozenset({"charge.dispute.closed"}),
    steps=(
        StepDef("validate", validate_close, "Check the outcome; wait for the opening"),
        StepDef("build_entry", build_close_entry, "Won: back to cash. Lost: write off"),
        *POSTING_STEPS,
    ),
    business_key=lambda env: f"{env.object_id}:closed",
    aggregate_key=_aggregate_key,
    default_sla_minutes=60,
)

JOURNEYS = (OPENED_JOURNEY, CLOSED_JOURNEY)
