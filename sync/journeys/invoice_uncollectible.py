"""invoice_uncollectible: what is still owed on an invoice given up on is written off, once.

invoice_uncollectible (``invoice.marked_uncollectible``, key ``<invoice id>:uncollectible``)
    validate: read what Stripe says remains (``amount_remaining``); skip, with the reason, when
    nothing does; wait until the invoice's own entry is posted -> build_entry: Dr bad debt /
    Cr AR for the amount remaining, in the invoice currency, the functional amount being that
    part's carrying amount in the invoice's AR (booked at the invoice's rate) -> post ->
    confirm. External id ``RCT-STRIPE-<invoice id>-UNCOLLECTIBLE``.

Choices a controller should review:

* **How much.** Stripe's ``amount_remaining`` (what is due less what was paid), checked
  against the invoice's open AR in our ledger under a lock on the invoice (so a payment being
  applied at the same moment cannot relieve the same AR). Our AR may hold more (a payment
  Stripe took that has not posted yet: it relieves the rest when it does); it may not hold
  less (an amount_mismatch case: the ledger and Stripe disagree on what is owed).
* **Gross.** The whole remaining amount, tax included, goes to bad debt expense. Sales tax or
  VAT bad-debt relief is claimed by hand, where the jurisdiction allows it.
* **Rates.** A write-off takes the receivable off at what it was booked at (a proportional
  share of its open functional amount, so partial payments and the write-off add up to the
  invoice exactly); no FX difference is recognized.
* **Paid later.** A payment that arrives after the write-off finds no open AR and is booked
  to customer credit by ``payment_to_ledger``; reclassifying it as a bad-debt recovery is a
  manual entry for now.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction

from connectors.base import PermanentError
from connectors.stripe import payments as stripe_payments
from sync.accounting.payments import carrying_relief, write_off_lines
from sync.errors import DataDefect, DependencyPending, StepSkipped
from sync.journeys import JourneyType, StepContext, StepDef
from sync.journeys.common import POSTING_STEPS
from sync.journeys.dispute import _bad_debt_account
from sync.journeys.payment import (
    _as_data_defects,
    _customer_ref,
    _entity_accounts,
    _event_object,
    _external_id,
    _invoice_entry,
    _invoice_rule,
    _money,
    _set_entity,
    open_balance,
)
from sync.models import ExceptionCase, Invoice, JournalEntry
from sync.services.ledger import journal_entry_create
from sync.services.periods import first_open_period

Cat = ExceptionCase.Category


def write_off_external_id(invoice_id: str) -> str:
    return f"{_external_id(invoice_id)}-UNCOLLECTIBLE"


def validate(ctx: StepContext) -> dict[str, Any]:
    """Read what remains owed; skip when nothing does; wait for the invoice's entry."""
    try:
        balance = stripe_payments.parse_invoice_balance(_event_object(ctx))
    except PermanentError as exc:
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"The uncollectible invoice could not be read: {exc.message}",
            context={"event_id": ctx.journey.source_event.source_event_id},
        ) from exc
    inv = balance.source_id
    if balance.amount_remaining_minor == 0:
        raise StepSkipped(
            f"Invoice {inv} was marked uncollectible with nothing remaining "
            f"(amount_remaining 0 of {_money(balance.amount_due_minor, balance.currency)} "
            "due); there is nothing to write off."
        )
    invoice_entry = _invoice_entry(inv)
    if invoice_entry is None:
        raise DependencyPending(
            Cat.DOCUMENT_NOT_POSTED,
            f"Invoice {inv} was marked uncollectible "
            f"({_money(balance.amount_remaining_minor, balance.currency)} remaining), but the "
            "invoice is not in the ledger yet. Post the invoice first; the write-off follows "
            "(or replay it).",
            context={"invoice": inv},
        )
    if invoice_entry.currency != balance.currency:
        raise DataDefect(
            Cat.AMOUNT_MISMATCH,
            f"Invoice {inv} is marked uncollectible in {balance.currency} but was posted in "
            f"{invoice_entry.currency}. Write it off by hand.",
            context={"invoice": inv},
        )
    _set_entity(ctx, invoice_entry.legal_entity)
    marked_at = balance.marked_uncollectible_at or ctx.journey.business_at
    return {
        "invoice_ref": inv,
        "invoice_entry_id": invoice_entry.pk,
        "legal_entity_id": invoice_entry.legal_entity_id,
        "currency": balance.currency,
        "amount_due_minor": balance.amount_due_minor,
        "amount_paid_minor": balance.amount_paid_minor,
        "amount_remaining_minor": balance.amount_remaining_minor,
        "marked_on": marked_at.date().isoformat(),
    }


def build_entry(ctx: StepContext) -> dict[str, Any]:
    """Dr bad debt / Cr AR for the amount remaining at its carrying amount, once."""
    inv = ctx.data["invoice_ref"]
    external_id = write_off_external_id(inv)
    existing = JournalEntry.objects.filter(external_id=external_id).first()
    if existing:
        return {"entry_id": existing.pk, "external_id": existing.external_id}
    invoice_entry = JournalEntry.objects.select_related("legal_entity").get(
        pk=ctx.data["invoice_entry_id"]
    )
    entity = invoice_entry.legal_entity
    functional = entity.functional_currency
    currency = invoice_entry.currency
    amount = ctx.data["amount_remaining_minor"]
    what = f"The write-off of invoice {inv}"
    accounts = _entity_accounts(entity, what)
    bad_debt = _bad_debt_account(accounts, entity, what)
    rule = _invoice_rule(invoice_entry)
    day = dt.date.fromisoformat(ctx.data["marked_on"])
    customer_ref = _customer_ref(invoice_entry, rule.ar_account_id, "")
    with transaction.atomic():
        # One document at a time per invoice: a payment and the write-off never relieve the
        # same open AR (payment_to_ledger takes the same lock).
        Invoice.objects.select_for_update().filter(source_system="stripe", source_id=inv).first()
        open_ar, open_ar_fn = open_balance(
            entity, inv, rule.ar_account_id, exclude_journey=ctx.journey
        )
        if open_ar < amount:
            raise DataDefect(
                Cat.AMOUNT_MISMATCH,
                f"Stripe says {_money(amount, currency)} remains on invoice {inv}, but its "
                f"receivable in the ledger is {_money(open_ar, currency)}. Find the payment or "
                "credit note the two disagree on, then write the rest off by hand or replay.",
                context={"invoice": inv, "stripe_remaining": amount, "ledger_open_ar": open_ar},
            )
        with _as_data_defects(what, entity):
            carrying = carrying_relief(
                amount,
                open_minor=open_ar,
                open_functional_minor=open_ar_fn,
                rate=invoice_entry.fx_rate,
                currency=currency,
                functional_currency=functional,
            )
            lines = write_off_lines(
                amount_minor=amount,
                carrying_functional_minor=carrying,
                currency=currency,
                functional_currency=functional,
                expense_account_id=bad_debt,
                balance_account_id=rule.ar_account_id,
                customer_ref=customer_ref,
                memo=f"Uncollectible invoice {inv}",
            )
        entry = journal_entry_create(
            entity=entity,
            kind=JournalEntry.Kind.WRITE_OFF,
            journey=ctx.journey,
            posting_date=max(day, invoice_entry.posting_date, first_open_period(entity)),
            currency=currency,
            fx_rate=invoice_entry.fx_rate,
            memo=f"Write-off of uncollectible invoice {inv}",
            external_id=external_id,
            document_ref=inv,
            lines=lines,
            rule_versions={
                "posting_rules": [rule.pk],
                "entity_accounts": accounts.pk,
                "bad_debt_account": bad_debt,
            },
        )
    return {
        "entry_id": entry.pk,
        "external_id": entry.external_id,
        "open_ar_before_minor": open_ar,
        "written_off_minor": amount,
        "written_off_functional_minor": carrying,
        "left_open_minor": open_ar - amount,
    }


JOURNEY = JourneyType(
    name="invoice_uncollectible",
    source_system="stripe",
    event_types=frozenset({"invoice.marked_uncollectible"}),
    steps=(
        StepDef("validate", validate, "Read what remains owed; wait for the invoice entry"),
        StepDef("build_entry", build_entry, "Dr bad debt / Cr AR for the amount remaining"),
        *POSTING_STEPS,
    ),
    business_key=lambda env: f"{env.object_id}:uncollectible",
    aggregate_key=lambda env: f"stripe:{env.object_id}",
    default_sla_minutes=60,
)
