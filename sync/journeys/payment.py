"""payment_to_ledger and refund_to_ledger: money settled by Stripe becomes one entry each.

payment_to_ledger (``charge.succeeded``, business key the charge id)
    validate: read the charge and its expanded balance transaction, store the ``Payment`` row,
    find the invoice it pays and wait until that invoice's entry is posted -> build_entry:
    Dr cash (or processor clearing) for what Stripe pays out, Dr processor fees for what it
    keeps / Cr AR for the part the invoice's open receivable absorbs, Cr customer credit for
    any overpayment; in a foreign currency AR is relieved at its carrying amount and the
    difference to the settlement value is FX gain/loss -> post -> confirm.

refund_to_ledger (``refund.created``, business key the refund id)
    validate: read the refund, wait until the payment of the charge it refunds is posted
    (that names the invoice) -> build_entry: Dr customer credit (or AR) / Cr cash -> post ->
    confirm.

Choices a controller should review (all documented where they are made):

* **Which invoice.** A charge on an API version before 2025-03-31.basil names its invoice
  (``charge.invoice`` or the expanded payment intent's), as may our ``metadata.invoice_id``
  convention. Since basil no charge names an invoice: the link is the ``invoice_payment``
  object, delivered as ``invoice_payment.paid``. No journey handles that event type, so the
  inbox keeps it (state ``ignored``) and this journey reads the links from there, matching the
  charge or its payment intent. A charge with no link waits (``DependencyPending``) and then
  becomes a ``payment_not_linked`` exception.
* **Fee currency.** Stripe reports the fee in the settlement currency; the entry is in the
  charge (= invoice) currency, so a fee in another currency is converted to the charge
  currency at Stripe's own ``exchange_rate`` (half-to-even).
* **Rates.** The carrying rate of AR is the invoice entry's rate (relief is a proportional
  share of the invoice's open functional AR, so partial payments add up exactly). Cash, fees
  and customer credit are valued at Stripe's ``exchange_rate`` when Stripe settled in the
  entity's functional currency, else at the ``FxRate`` of the settlement date (missing ->
  ``missing_fx_rate``). When Stripe settled in the functional currency the cash and fee lines
  carry Stripe's own functional figures (net and fee of the balance transaction), so the
  clearing account reconciles to Stripe to the cent; the cent a separate rounding may differ
  by goes to the rounding account.
* **Date.** The entry is dated the settlement date (the balance transaction's
  ``available_on``), or the first open period when that month is closed; the FX rate looked up
  is that of the settlement date, so an entry's date and rate agree.
* **Refund source.** A refund draws first on the customer credit balance the invoice carries
  (from a post-payment credit note or an overpayment, valued at the rate that balance was
  booked at), and only the rest re-opens AR (at the invoice rate), because the invoice still
  stands until a credit note or write-off clears it. As Stripe delivers a credit note and the
  refund it pays in no set order, a refund waits for a credit note that names it, and a refund
  no credit balance covers waits once (about 30 s) for a credit note to arrive before it
  re-opens AR.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from connectors.base import BillingInvoicePayment, BillingPayment, PermanentError, WebhookEnvelope
from connectors.currency import exponent, minor_to_decimal
from connectors.stripe import payments as stripe_payments
from sync.accounting.entries import DraftLine, MissingRoundingAccount, with_rounding_line
from sync.accounting.payments import payment_lines, refund_lines
from sync.errors import DataDefect, DependencyPending
from sync.journeys import JourneyType, StepContext, StepDef
from sync.journeys.common import POSTING_STEPS, journeys_set_entity
from sync.journeys.invoice_to_ledger import _fx_rate, entity_accounts, external_id_for
from sync.models import (
    EntityAccounts,
    ExceptionCase,
    Invoice,
    JournalEntry,
    JournalLine,
    Journey,
    LegalEntity,
    Payment,
    PostingRule,
)
from sync.services.bulk import rows_update
from sync.services.inbox import inbox_events_naming
from sync.services.ledger import (
    EntrySpec,
    journal_entries_create,
    journal_entry_check,
)
from sync.services.periods import first_open_period

Cat = ExceptionCase.Category

#: How long a refund no credit balance covers waits, once, for a credit note that may pay it.
REFUND_CREDIT_NOTE_GRACE_SECONDS = 30.0


# --- small helpers ------------------------------------------------------------------------------


def _money(minor: int, currency: str) -> str:
    return f"{minor_to_decimal(minor, currency):,} {currency}"


def _external_id(source_id: str) -> str:
    return f"RCT-STRIPE-{source_id}"


def _event_object(ctx: StepContext) -> dict[str, Any]:
    return ctx.journey.source_event.payload["data"]["object"]


def _parse(ctx: StepContext, parser, what: str) -> BillingPayment:
    try:
        return parser(_event_object(ctx))
    except PermanentError as exc:
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"The {what} could not be read: {exc.message}",
            context={"event_id": ctx.journey.source_event.source_event_id},
        ) from exc


def _settled_at(p: BillingPayment) -> dt.datetime:
    return p.settled_at or p.created or dt.datetime.now(dt.UTC)


def _require_settlement(p: BillingPayment) -> None:
    if not p.settlement_currency:
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"Stripe sent {p.kind} {p.source_id} without its balance transaction "
            f"({p.balance_transaction_ref or 'none'}), so the fee and the settled amount are "
            "unknown. Re-send the event with the balance transaction expanded, or post it by "
            "hand.",
            context={p.kind: p.source_id, "balance_transaction": p.balance_transaction_ref},
        )


def _stripe_rate(p: BillingPayment) -> Decimal | None:
    return Decimal(p.exchange_rate) if p.exchange_rate else None


def fee_in_charge_currency(p: BillingPayment) -> int:
    """The processor fee in the charge currency. Stripe reports it in the settlement currency;
    when that differs it is converted at Stripe's own ``exchange_rate`` (which turns charge
    currency into settlement currency), rounded half-to-even."""
    if not p.fee_minor or p.settlement_currency in ("", p.currency):
        return p.fee_minor
    rate = _stripe_rate(p)
    if not rate:
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"Stripe kept a fee of {_money(p.fee_minor, p.settlement_currency)} on {p.kind} "
            f"{p.source_id} in {p.currency} but sent no exchange rate to convert it. Post it by "
            "hand.",
            context={p.kind: p.source_id},
        )
    with localcontext() as c:
        c.prec = 60
        shift = exponent(p.currency) - exponent(p.settlement_currency)
        value = Decimal(p.fee_minor) * (Decimal(10) ** shift) / rate
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _settlement_rate(
    p: BillingPayment, functional: str, day: dt.date
) -> tuple[Decimal | None, str]:
    """(rate charge currency -> functional currency for cash, where it came from)."""
    if p.currency == functional:
        return None, "same currency"
    if p.settlement_currency == functional and _stripe_rate(p):
        return _stripe_rate(p), "stripe exchange_rate"
    rate = _fx_rate(p.currency, functional, day)
    if rate is None:
        raise DataDefect(
            Cat.MISSING_FX_RATE,
            f"No {p.currency}/{functional} rate for {day}: {p.kind} {p.source_id} settled in "
            f"{p.settlement_currency} cannot be valued in {functional}. Add the rate, then "
            "replay.",
            context={"pair": f"{p.currency}/{functional}", "date": day.isoformat()},
        )
    return rate, "fx rate table"


_STORED_FIELDS = [
    "kind",
    "invoice_ref",
    "customer_ref",
    "currency",
    "amount_minor",
    "fee_minor",
    "settled_at",
    "attempted_at",
]


def _store_many(items: list[tuple[BillingPayment, str, int]]) -> dict[str, Payment]:
    """Insert or update the Payment rows of many ``(payment, invoice ref, fee)`` in one
    statement (``INSERT ... ON CONFLICT (source_system, source_id) DO UPDATE``); by source id.
    The only implementation."""
    rows = {
        p.source_id: Payment(
            source_system="stripe",
            source_id=p.source_id,
            kind=p.kind,
            invoice_ref=invoice_ref,
            customer_ref=p.customer_ref,
            currency=p.currency,
            amount_minor=p.amount_minor,
            fee_minor=fee_minor,
            settled_at=_settled_at(p),
            attempted_at=p.created,
        )
        for p, invoice_ref, fee_minor in items
    }
    if rows:
        Payment.objects.bulk_create(
            list(rows.values()),
            update_conflicts=True,
            unique_fields=["source_system", "source_id"],
            update_fields=_STORED_FIELDS,
        )
    return rows


def _posted_entry(external_id: str) -> JournalEntry | None:
    entry = JournalEntry.objects.filter(external_id=external_id).first()
    return entry if entry and entry.state == JournalEntry.State.POSTED else None


def _invoice_entry(invoice_ref: str) -> JournalEntry | None:
    journey = Journey.objects.filter(
        journey_type="invoice_to_ledger", business_key=invoice_ref
    ).first()
    return _posted_entry(external_id_for(journey)) if journey else None


def _set_entity(ctx: StepContext, entity: LegalEntity) -> None:
    Journey.objects.filter(pk=ctx.journey.pk).update(legal_entity=entity)
    ctx.journey.legal_entity = entity


def _entity_accounts(entity: LegalEntity, what: str) -> EntityAccounts:
    accounts = entity_accounts(entity)
    if accounts is None:
        raise DataDefect(
            Cat.MISSING_POSTING_RULE,
            f"{what} cannot be posted: {entity.code} has no entity accounts. Set its cash (or "
            "processor clearing), processor fee, FX gain/loss and customer credit accounts, "
            "then replay.",
            context={"entity": entity.code},
        )
    return accounts


def _invoice_rule(
    invoice_entry: JournalEntry, known: dict[int, PostingRule] | None = None
) -> PostingRule:
    """The posting rule whose AR account the invoice was debited to. ``known``: the rules
    already read by pk (with the entry's lines prefetched), for many entries at once."""
    ids = invoice_entry.rule_versions.get("posting_rules") or []
    if known is None:
        rules = list(PostingRule.objects.filter(pk__in=ids).order_by("pk"))
        used = set(invoice_entry.lines.values_list("account_id", flat=True))
    else:
        rules = sorted((known[pk] for pk in ids if pk in known), key=lambda r: r.pk)
        used = {ln.account_id for ln in invoice_entry.lines.all()}
    rule = next((r for r in rules if r.ar_account_id in used), None)
    if rule is None:
        raise DataDefect(
            Cat.MISSING_POSTING_RULE,
            f"Invoice entry {invoice_entry.external_id} names no posting rule with its AR "
            "account, so the receivable to relieve is unknown. Post it by hand.",
            context={"invoice_entry": invoice_entry.external_id},
        )
    return rule


def open_balance(
    entity: LegalEntity, document_ref: str, account_id: int, *, exclude_journey: Any = None
) -> tuple[int, int]:
    """(transaction, functional) debit-minus-credit of ``account_id`` over the entity's entries
    for ``document_ref`` that have not failed: the invoice's AR sub-ledger balance."""
    lines = JournalLine.objects.filter(
        entry__legal_entity=entity, entry__document_ref=document_ref, account_id=account_id
    ).exclude(entry__state=JournalEntry.State.FAILED)
    if exclude_journey is not None:
        lines = lines.exclude(entry__journey=exclude_journey)
    agg = lines.aggregate(
        d=Sum("debit_minor"),
        c=Sum("credit_minor"),
        fd=Sum("functional_debit_minor"),
        fc=Sum("functional_credit_minor"),
    )
    return (agg["d"] or 0) - (agg["c"] or 0), (agg["fd"] or 0) - (agg["fc"] or 0)


@contextmanager
def _as_data_defects(what: str, entity: LegalEntity) -> Iterator[None]:
    """The pure payment rules refuse with ValueError; a person must fix the data."""
    try:
        yield
    except MissingRoundingAccount as exc:
        raise DataDefect(
            Cat.MISSING_POSTING_RULE,
            f"{what}: {exc}; set an FX rounding account on {entity.code}'s posting rule, "
            "then replay.",
            context={"entity": entity.code},
        ) from exc
    except ValueError as exc:
        raise DataDefect(Cat.AMOUNT_MISMATCH, f"{what}: {exc}.") from exc


def _true_up(
    lines: list[DraftLine],
    targets: dict[tuple[int, str], int],
    *,
    rounding_account_id: int | None,
    functional_currency: str,
) -> list[DraftLine]:
    """Give the lines of each (account, side) the functional total Stripe reported, the
    difference on the last such line, then re-close with one rounding line."""
    out = list(lines)
    for (account_id, side), target in targets.items():
        field = f"functional_{side}_minor"
        idx = [
            i
            for i, ln in enumerate(out)
            if ln.account_id == account_id and getattr(ln, f"{side}_minor") > 0
        ]
        if not idx:
            continue
        diff = target - sum(getattr(out[i], field) for i in idx)
        if diff:
            last = out[idx[-1]]
            out[idx[-1]] = dataclasses.replace(last, **{field: getattr(last, field) + diff})
    body = [
        ln
        for ln in out
        if not (
            ln.account_id == rounding_account_id
            and not ln.debit_minor
            and not ln.credit_minor
            and ln.memo == "FX rounding"
        )
    ]
    return with_rounding_line(
        body, rounding_account_id=rounding_account_id, functional_currency=functional_currency
    )


def _customer_ref(invoice_entry: JournalEntry, ar_account_id: int, fallback: str) -> str:
    """The customer on the invoice's first AR line that names one (lines in line order)."""
    lines = sorted(invoice_entry.lines.all(), key=lambda ln: (ln.line_no, ln.pk))
    ref = next(
        (ln.customer_ref for ln in lines if ln.account_id == ar_account_id and ln.customer_ref),
        "",
    )
    return ref or fallback


# --- linking a payment to its invoice -----------------------------------------------------------


def invoice_payment_links(p: BillingPayment) -> list[BillingInvoicePayment]:
    """The ``invoice_payment.paid`` events in the inbox that name ``p``'s charge or payment
    intent (GA shape under ``payment``, preview shape at the top level)."""
    return invoice_payment_links_for([p])


# Where an invoice_payment.paid event names the payment: GA shape under ``payment``, preview
# shape at the top level. On PostgreSQL each path has a partial expression index over just
# those events (migration 0015), so one query answers a whole batch with four index scans.
_INTENT_PATHS = (
    ("data", "object", "payment", "payment_intent"),
    ("data", "object", "payment_intent"),
)
_CHARGE_PATHS = (("data", "object", "payment", "charge"), ("data", "object", "charge"))


def invoice_payment_links_for(payments: list[BillingPayment]) -> list[BillingInvoicePayment]:
    """The links naming any of ``payments``' charges or payment intents, in one query
    (``link_invoice`` picks each payment's own from them)."""
    intents = [p.payment_intent_ref for p in payments if p.payment_intent_ref]
    charges = [p.charge_ref for p in payments if p.charge_ref]
    events = inbox_events_naming(
        "invoice_payment.paid",
        {**dict.fromkeys(_INTENT_PATHS, intents), **dict.fromkeys(_CHARGE_PATHS, charges)},
    )
    links = []
    for event in events:
        try:
            links.append(stripe_payments.parse_invoice_payment(event.payload["data"]["object"]))
        except PermanentError:
            continue
    return links


def _link(p: BillingPayment, links: list[BillingInvoicePayment] | None = None) -> BillingPayment:
    """``p`` with its invoice from the links (read for it alone unless given)."""
    try:
        return stripe_payments.link_invoice(p, invoice_payment_links(p) if links is None else links)
    except PermanentError as exc:
        raise DataDefect(
            Cat.PAYMENT_NOT_LINKED,
            f"Payment {p.source_id} ({_money(p.amount_minor, p.currency)}) cannot be applied "
            f"automatically: {exc.message}. Apply it by hand.",
            context={"charge": p.source_id, **(exc.details or {})},
        ) from exc


# --- payment_to_ledger --------------------------------------------------------------------------


def validate_payment(ctx: StepContext) -> dict[str, Any]:
    """Read the charge, store the Payment, find its invoice and wait for the invoice's entry."""
    outcome = validate_payments([ctx])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def validate_payments(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``validate_payment`` for many journeys: the payment links of all their charges read in
    one query, the invoices' posted entries in two, the journeys' entity set in one update
    per entity, the Payment rows stored in one statement. The only implementation: one
    journey's step is this with one context."""
    outcomes: list[dict[str, Any] | Exception] = [{} for _ in ctxs]
    parsed: dict[int, BillingPayment] = {}
    for i, ctx in enumerate(ctxs):
        try:
            p = _parse(ctx, stripe_payments.parse_charge, "charge")
            if p.status == "uncaptured":
                outcomes[i] = {
                    "skipped": f"charge {p.source_id} is an authorisation only; no money moved"
                }
                continue
            if p.status != "succeeded" or p.amount_minor <= 0:
                raise DataDefect(
                    Cat.INVALID_PAYLOAD,
                    f"Charge {p.source_id} is '{p.status}' for "
                    f"{_money(p.amount_minor, p.currency)}; only a succeeded, captured charge "
                    "is posted.",
                    context={"charge": p.source_id, "status": p.status},
                )
            parsed[i] = p
        except Exception as exc:
            outcomes[i] = exc
    links = invoice_payment_links_for(list(parsed.values())) if parsed else []
    to_store: dict[int, tuple[BillingPayment, str, int]] = {}
    for i, p in list(parsed.items()):
        try:
            p = _link(p, links)
            fee = fee_in_charge_currency(p) if p.settlement_currency else 0
        except Exception as exc:
            outcomes[i] = exc
            continue
        to_store[i] = (p, p.invoice_ref, fee)
    rows = _store_many(list(to_store.values()))
    stored: dict[int, tuple[BillingPayment, Payment]] = {}
    for i, (p, _, _) in to_store.items():
        payment = rows[p.source_id]
        try:
            _require_settlement(p)
            if not p.invoice_ref:
                raise DependencyPending(
                    Cat.PAYMENT_NOT_LINKED,
                    f"Payment {p.source_id} of {_money(p.amount_minor, p.currency)} from "
                    f"customer {p.customer_ref or 'unknown'} names no invoice, and no "
                    "invoice_payment.paid event links its payment intent "
                    f"{p.payment_intent_ref or '-'} to one. Find the invoice it pays in Stripe "
                    "(or post it by hand), then replay.",
                    context={
                        "charge": p.source_id,
                        "payment_intent": p.payment_intent_ref,
                        "customer": p.customer_ref,
                    },
                )
            stored[i] = (p, payment)
        except Exception as exc:
            outcomes[i] = exc
    entries = _invoice_entries({p.invoice_ref for p, _ in stored.values()})
    assigned: list[tuple[StepContext, LegalEntity]] = []
    for i, (p, payment) in stored.items():
        try:
            invoice_entry = entries.get(p.invoice_ref)
            if invoice_entry is None:
                raise DependencyPending(
                    Cat.PAYMENT_NOT_LINKED,
                    f"Payment {p.source_id} of {_money(p.amount_minor, p.currency)} pays "
                    f"invoice {p.invoice_ref}, which is not in the ledger yet. Post the invoice "
                    "first; the payment follows (or replay it).",
                    context={"charge": p.source_id, "invoice": p.invoice_ref},
                )
            if invoice_entry.currency != p.currency:
                raise DataDefect(
                    Cat.AMOUNT_MISMATCH,
                    f"Payment {p.source_id} is in {p.currency} but invoice {p.invoice_ref} is "
                    f"in {invoice_entry.currency}. Apply it by hand.",
                    context={"charge": p.source_id, "invoice": p.invoice_ref},
                )
        except Exception as exc:
            outcomes[i] = exc
            continue
        assigned.append((ctxs[i], invoice_entry.legal_entity))
        outcomes[i] = {
            "payment_id": payment.pk,
            "invoice_ref": p.invoice_ref,
            "invoice_entry_id": invoice_entry.pk,
            "legal_entity_id": invoice_entry.legal_entity_id,
            "settled_on": _settled_at(p).date().isoformat(),
            "settlement_currency": p.settlement_currency,
            "settlement_amount_minor": p.settlement_amount_minor,
            "settlement_fee_minor": p.fee_minor,
            "exchange_rate": p.exchange_rate,
        }
    journeys_set_entity(assigned)
    return outcomes


def _invoice_entries(invoice_refs: set[str]) -> dict[str, JournalEntry]:
    """``_invoice_entry`` for many invoices: the posted entry of each that has one."""
    if not invoice_refs:
        return {}
    journeys = Journey.objects.filter(
        journey_type="invoice_to_ledger", business_key__in=invoice_refs
    ).only("pk", "source_system", "business_key")
    external = {external_id_for(j): j.business_key for j in journeys}
    return {
        external[entry.external_id]: entry
        for entry in JournalEntry.objects.select_related("legal_entity").filter(
            external_id__in=list(external), state=JournalEntry.State.POSTED
        )
    }


def build_payment_entry(ctx: StepContext) -> dict[str, Any]:
    """Relieve the invoice's open AR, book cash, fee and any overpayment, once."""
    outcome = build_payment_entries([ctx])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def build_payment_entries(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``build_payment_entry`` for many journeys: the entries already made, the payments, the
    invoices' entries with their lines and the posting rules they name read in one query
    each; then, in one transaction, the invoices locked (one statement), their open AR read
    (one grouped query) and every entry inserted together. Two payments of one invoice in a
    batch (the claim keeps one journey per aggregate, so only after a crash or a replay)
    go in successive rounds, so each relieves the AR the one before left. The only
    implementation: one journey's step is this with one context."""
    return _entries_built(
        ctxs,
        row_key="payment_id",
        create=_payment_entries_create,
    )


def _entries_built(
    ctxs: list[StepContext],
    *,
    row_key: str,
    create: Callable[[list[StepContext], list[tuple[int, _CashPosting]], list[Any]], None],
) -> list[dict[str, Any] | Exception]:
    """What building payment and refund entries share: the entries already made (a re-run
    gets its own back), the Payment rows (``ctx.data[row_key]``), the invoices' entries with
    their lines and the posting rules they name read in one query each; each journey's
    ``_CashPosting`` read before any lock; then ``create`` in rounds in which each invoice appears
    once, so a second payment or refund of one invoice sees what the first wrote."""
    outcomes: list[dict[str, Any] | Exception] = [{} for _ in ctxs]
    todo = [i for i, ctx in enumerate(ctxs) if not ctx.data.get("skipped")]
    existing: dict[int, JournalEntry] = {}
    for entry in JournalEntry.objects.filter(journey__in=[ctxs[i].journey for i in todo]).order_by(
        "-created_at", "-pk"
    ):
        existing.setdefault(entry.journey_id, entry)  # the newest, as .first() took it
    rows = Payment.objects.order_by().in_bulk([ctxs[i].data[row_key] for i in todo])
    invoice_entries = (
        JournalEntry.objects.select_related("legal_entity")
        .prefetch_related("lines")
        .order_by()
        .in_bulk([ctxs[i].data["invoice_entry_id"] for i in todo])
    )
    rule_ids = {
        pk for e in invoice_entries.values() for pk in e.rule_versions.get("posting_rules") or []
    }
    rules = PostingRule.objects.order_by().in_bulk(rule_ids)
    pending: list[tuple[int, _CashPosting]] = []
    for i in todo:
        ctx = ctxs[i]
        found = existing.get(ctx.journey.pk)
        if found is not None:
            outcomes[i] = {"entry_id": found.pk, "external_id": found.external_id}
            continue
        try:
            pending.append(
                (
                    i,
                    _cash_posting(
                        ctx,
                        rows[ctx.data[row_key]],
                        invoice_entries[ctx.data["invoice_entry_id"]],
                        rules,
                    ),
                )
            )
        except Exception as exc:
            outcomes[i] = exc
    while pending:
        this_round: list[tuple[int, _CashPosting]] = []
        later: list[tuple[int, _CashPosting]] = []
        refs: set[str] = set()
        for item in pending:
            ref = item[1].row.invoice_ref
            (later if ref in refs else this_round).append(item)
            refs.add(ref)
        create(ctxs, this_round, outcomes)
        pending = later
    return outcomes


@dataclasses.dataclass(frozen=True)
class _CashPosting:
    """What a payment's or a refund's entry is built from, read before the invoice's lock."""

    row: Payment  # the payment or the refund
    invoice_entry: JournalEntry
    entity: LegalEntity
    accounts: EntityAccounts
    rule: PostingRule
    day: dt.date
    rate: Decimal | None
    rate_source: str
    customer_ref: str


def _cash_posting(
    ctx: StepContext,
    row: Payment,
    invoice_entry: JournalEntry,
    rules: dict[int, PostingRule],
) -> _CashPosting:
    entity = invoice_entry.legal_entity
    refund = row.kind == Payment.Kind.REFUND
    accounts = _entity_accounts(entity, f"{'Refund' if refund else 'Payment'} {row.source_id}")
    rule = _invoice_rule(invoice_entry, rules)
    day = dt.date.fromisoformat(ctx.data["settled_on"])
    p = (
        _parse(ctx, stripe_payments.parse_refund, "refund")
        if refund
        else _parse(ctx, stripe_payments.parse_charge, "charge")
    )
    rate, rate_source = _settlement_rate(p, entity.functional_currency, day)
    return _CashPosting(
        row=row,
        invoice_entry=invoice_entry,
        entity=entity,
        accounts=accounts,
        rule=rule,
        day=day,
        rate=rate,
        rate_source=rate_source,
        customer_ref=_customer_ref(invoice_entry, rule.ar_account_id, row.customer_ref),
    )


def open_balances(keys: set[tuple[int, str, int]]) -> dict[tuple[int, str, int], tuple[int, int]]:
    """``open_balance`` for many ``(entity id, document ref, account id)`` in one query."""
    if not keys:
        return {}
    out = dict.fromkeys(keys, (0, 0))
    rows = (
        JournalLine.objects.filter(
            entry__legal_entity_id__in={k[0] for k in keys},
            entry__document_ref__in={k[1] for k in keys},
            account_id__in={k[2] for k in keys},
        )
        .exclude(entry__state=JournalEntry.State.FAILED)
        .values("entry__legal_entity_id", "entry__document_ref", "account_id")
        .annotate(
            d=Sum("debit_minor"),
            c=Sum("credit_minor"),
            fd=Sum("functional_debit_minor"),
            fc=Sum("functional_credit_minor"),
        )
    )
    for row in rows:
        key = (row["entry__legal_entity_id"], row["entry__document_ref"], row["account_id"])
        if key in out:
            out[key] = ((row["d"] or 0) - (row["c"] or 0), (row["fd"] or 0) - (row["fc"] or 0))
    return out


def _payment_entries_create(
    ctxs: list[StepContext],
    items: list[tuple[int, _CashPosting]],
    outcomes: list[dict[str, Any] | Exception],
) -> None:
    """One round (each invoice at most once): lock the invoices, read their open AR, build
    and insert the entries."""
    made: list[tuple[int, EntrySpec, int]] = []
    with transaction.atomic():
        # One payment at a time per invoice, so two cannot relieve the same open AR.
        list(
            Invoice.objects.select_for_update()
            .filter(source_system="stripe", source_id__in={x.row.invoice_ref for _, x in items})
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        balances = open_balances(
            {(x.entity.pk, x.row.invoice_ref, x.rule.ar_account_id) for _, x in items}
        )
        first_open: dict[int, dt.date] = {}
        for i, x in items:
            try:
                ar = balances[(x.entity.pk, x.row.invoice_ref, x.rule.ar_account_id)]
                if x.entity.pk not in first_open:
                    first_open[x.entity.pk] = first_open_period(x.entity)
                spec = _payment_entry_spec(
                    ctxs[i], x, max(ar[0], 0), ar[1], first_open[x.entity.pk]
                )
                journal_entry_check(spec)
            except Exception as exc:
                outcomes[i] = exc
                continue
            made.append((i, spec, max(ar[0], 0)))
        entries = journal_entries_create([spec for _, spec, _ in made])
    postings = dict(items)
    for (i, _, open_ar), entry in zip(made, entries, strict=True):
        x = postings[i]
        applied = min(x.row.amount_minor, open_ar)
        outcomes[i] = {
            "entry_id": entry.pk,
            "external_id": entry.external_id,
            "open_ar_before_minor": open_ar,
            "applied_minor": applied,
            "overpaid_minor": x.row.amount_minor - applied,
            "settlement_rate": str(x.rate) if x.rate is not None else None,
        }


def _payment_entry_spec(
    ctx: StepContext, x: _CashPosting, open_ar: int, open_ar_fn: int, first_open: dt.date
) -> EntrySpec:
    payment, entity, accounts, rule = x.row, x.entity, x.accounts, x.rule
    functional = entity.functional_currency
    what = f"Payment {payment.source_id}"
    with _as_data_defects(what, entity):
        lines = payment_lines(
            amount_minor=payment.amount_minor,
            fee_minor=payment.fee_minor,
            open_ar_minor=open_ar,
            currency=payment.currency,
            functional_currency=functional,
            invoice_rate=x.invoice_entry.fx_rate,
            settlement_rate=x.rate,
            cash_account_id=accounts.cash_account_id,
            fee_account_id=accounts.processor_fee_account_id,
            ar_account_id=rule.ar_account_id,
            customer_credit_account_id=accounts.customer_credit_account_id,
            fx_account_id=accounts.fx_gain_loss_account_id,
            rounding_account_id=rule.fx_rounding_account_id,
            customer_ref=x.customer_ref,
            memo=f"Payment {payment.source_id} on {payment.invoice_ref}",
            open_ar_functional_minor=open_ar_fn if open_ar else None,
        )
        net_cash = payment.amount_minor - payment.fee_minor
        if (
            payment.currency != functional
            and ctx.data["settlement_currency"] == functional
            and net_cash > 0
        ):
            # Stripe's own functional figures, so the clearing account reconciles.
            s_fee = ctx.data["settlement_fee_minor"]
            targets = {(accounts.cash_account_id, "debit"): ctx.data["settlement_amount_minor"]}
            targets[(accounts.cash_account_id, "debit")] -= s_fee
            if payment.fee_minor:
                key = (accounts.processor_fee_account_id, "debit")
                targets[key] = targets.get(key, 0) + s_fee
            lines = _true_up(
                lines,
                targets,
                rounding_account_id=rule.fx_rounding_account_id,
                functional_currency=functional,
            )
    return _cash_entry_spec(ctx, x, JournalEntry.Kind.PAYMENT, "Payment", lines, first_open)


def _cash_entry_spec(
    ctx: StepContext,
    x: _CashPosting,
    kind: str,
    what: str,
    lines: list[DraftLine],
    first_open: dt.date,
) -> EntrySpec:
    """The entry of a payment or a refund (``x.row``) with its ``lines``."""
    row = x.row
    return EntrySpec(
        entity=x.entity,
        kind=kind,
        journey=ctx.journey,
        posting_date=max(x.day, first_open),
        currency=row.currency,
        fx_rate=x.rate,
        memo=f"{what} {row.source_id} on invoice {row.invoice_ref}",
        external_id=_external_id(row.source_id),
        document_ref=row.invoice_ref,
        lines=lines,
        rule_versions={
            "posting_rules": [x.rule.pk],
            "entity_accounts": x.accounts.pk,
            "settlement_rate_source": x.rate_source,
        },
    )


# --- refund_to_ledger ---------------------------------------------------------------------------


def _credit_notes_naming(refunds: dict[str, set[str]]) -> dict[tuple[str, str], list[str]]:
    """For each ``invoice ref -> refund ids``: the ids of the credit notes in the inbox for
    that invoice whose refunds include each refund, by ``(invoice ref, refund id)``, in one
    lookup."""
    found: dict[tuple[str, str], list[str]] = {}
    events = inbox_events_naming(
        "credit_note.created", {("data", "object", "invoice"): list(refunds)}
    )
    for event in events:
        try:
            note = stripe_payments.parse_credit_note(event.payload["data"]["object"])
        except PermanentError:
            continue
        for refund_id in refunds.get(note.invoice_ref, ()):
            if refund_id in note.refund_refs:
                found.setdefault((note.invoice_ref, refund_id), []).append(note.source_id)
    return found


def _posted_external_ids(external_ids: set[str]) -> dict[str, JournalEntry]:
    """``_posted_entry`` for many: the posted entries among ``external_ids``, by external id."""
    if not external_ids:
        return {}
    return {
        e.external_id: e
        for e in JournalEntry.objects.filter(
            external_id__in=list(external_ids), state=JournalEntry.State.POSTED
        ).order_by()
    }


def validate_refund(ctx: StepContext) -> dict[str, Any]:
    """Read the refund; wait for the payment it refunds and any credit note that pays it."""
    outcome = validate_refunds([ctx])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _refund_checked(r: BillingPayment) -> None:
    """What a stored refund must be before it is posted (its own defects)."""
    _require_settlement(r)
    if r.fee_minor:
        raise DataDefect(
            Cat.AMOUNT_MISMATCH,
            f"Stripe gave back {_money(r.fee_minor, r.settlement_currency)} of its fee with "
            f"refund {r.source_id}; fee returns are not posted automatically. Post it by hand.",
            context={"refund": r.source_id},
        )


def validate_refunds(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``validate_refund`` for many journeys: the refunded payments, their posted entries,
    the invoices' entries, the credit notes that pay the refunds (and their entries) and the
    customer credit the invoices carry read in one query each; the Payment rows stored in one
    statement, the journeys' entity set in one update per entity. The only implementation:
    one journey's step is this with one context."""
    outcomes: list[dict[str, Any] | Exception] = [{} for _ in ctxs]
    parsed: dict[int, BillingPayment] = {}
    for i, ctx in enumerate(ctxs):
        try:
            r = _parse(ctx, stripe_payments.parse_refund, "refund")
        except Exception as exc:
            outcomes[i] = exc
            continue
        if r.status in ("failed", "canceled"):
            outcomes[i] = {"skipped": f"refund {r.source_id} is '{r.status}'; no money moved"}
        else:
            parsed[i] = r
    charges = {
        p.source_id: p
        for p in Payment.objects.filter(
            source_system="stripe",
            source_id__in=[r.charge_ref for r in parsed.values() if r.charge_ref],
            kind=Payment.Kind.PAYMENT,
        ).order_by()
    }
    to_store: dict[int, tuple[BillingPayment, str, int]] = {}
    for i, r in parsed.items():
        charge = charges.get(r.charge_ref)
        invoice_ref = r.invoice_ref or (charge.invoice_ref if charge else "")
        try:
            fee = fee_in_charge_currency(r) if r.settlement_currency else 0
        except Exception as exc:
            outcomes[i] = exc
            continue
        to_store[i] = (r, invoice_ref, fee)
    rows = _store_many(list(to_store.values()))
    stored: dict[int, tuple[BillingPayment, Payment]] = {}
    for i, (r, _, _) in to_store.items():
        try:
            _refund_checked(r)
        except Exception as exc:
            outcomes[i] = exc
            continue
        stored[i] = (r, rows[r.source_id])
    payment_entries = _posted_external_ids(
        {_external_id(r.charge_ref) for r, _ in stored.values() if r.charge_ref}
    )
    linked: dict[int, tuple[BillingPayment, Payment, JournalEntry]] = {}
    relinked: list[tuple[int, list[str]]] = []
    for i, (r, row) in stored.items():
        payment_entry = payment_entries.get(_external_id(r.charge_ref)) if r.charge_ref else None
        if payment_entry is None:
            outcomes[i] = DependencyPending(
                Cat.PAYMENT_NOT_LINKED,
                f"Refund {r.source_id} of {_money(r.amount_minor, r.currency)} refunds charge "
                f"{r.charge_ref or 'unknown'}, whose payment is not in the ledger yet. Post the "
                "payment first; the refund follows (or replay it).",
                context={"refund": r.source_id, "charge": r.charge_ref},
            )
            continue
        if row.invoice_ref != payment_entry.document_ref:
            relinked.append((row.pk, [payment_entry.document_ref]))
        linked[i] = (r, row, payment_entry)
    rows_update(Payment, ("invoice_ref",), relinked)  # the invoice the payment entry names
    invoice_entries = _invoice_entries({pe.document_ref for _, _, pe in linked.values()})
    placed: dict[int, tuple[BillingPayment, Payment, JournalEntry, JournalEntry]] = {}
    assigned: list[tuple[StepContext, LegalEntity]] = []
    for i, (r, row, payment_entry) in linked.items():
        invoice_ref = payment_entry.document_ref
        invoice_entry = invoice_entries.get(invoice_ref)
        if invoice_entry is None or invoice_entry.currency != r.currency:
            outcomes[i] = DataDefect(
                Cat.AMOUNT_MISMATCH,
                f"Refund {r.source_id} is in {r.currency} but invoice {invoice_ref} is not in "
                f"the ledger in {r.currency}. Post it by hand.",
                context={"refund": r.source_id, "invoice": invoice_ref},
            )
            continue
        assigned.append((ctxs[i], invoice_entry.legal_entity))
        placed[i] = (r, row, payment_entry, invoice_entry)
    journeys_set_entity(assigned)
    wanted: dict[str, set[str]] = {}
    for r, _, payment_entry, _ in placed.values():
        wanted.setdefault(payment_entry.document_ref, set()).add(r.source_id)
    notes = _credit_notes_naming(wanted) if wanted else {}
    notes_posted = _posted_external_ids(
        {_external_id(cn) for found in notes.values() for cn in found}
    )
    accounts: dict[int, EntityAccounts | Exception] = {}
    for i, (r, _, _, invoice_entry) in placed.items():
        entity = invoice_entry.legal_entity
        try:
            accounts[i] = _entity_accounts(entity, f"Refund {r.source_id}")
        except Exception as exc:
            accounts[i] = exc
    credit = open_balances(
        {
            (e.legal_entity_id, pe.document_ref, accounts[i].customer_credit_account_id)
            for i, (_, _, pe, e) in placed.items()
            if not isinstance(accounts[i], Exception)
        }
    )
    now = timezone.now()
    for i, (r, row, payment_entry, invoice_entry) in placed.items():
        invoice_ref = payment_entry.document_ref
        pending_notes = [
            cn
            for cn in notes.get((invoice_ref, r.source_id), [])
            if _external_id(cn) not in notes_posted
        ]
        if pending_notes:
            outcomes[i] = DependencyPending(
                Cat.PAYMENT_NOT_LINKED,
                f"Refund {r.source_id} pays out credit note {', '.join(pending_notes)}, which "
                "is not in the ledger yet. Post the credit note first; the refund follows.",
                context={"refund": r.source_id, "credit_notes": pending_notes},
            )
            continue
        found = accounts[i]
        if isinstance(found, Exception):
            outcomes[i] = found
            continue
        key = (invoice_entry.legal_entity_id, invoice_ref, found.customer_credit_account_id)
        credit_open = credit[key][0]
        waited = now - (ctxs[i].step.started_at or now)
        if (
            -credit_open < r.amount_minor
            and waited.total_seconds() < REFUND_CREDIT_NOTE_GRACE_SECONDS
        ):
            outcomes[i] = DependencyPending(
                Cat.PAYMENT_NOT_LINKED,
                f"Refund {r.source_id} of {_money(r.amount_minor, r.currency)} is more than "
                f"the customer credit invoice {invoice_ref} carries; waiting "
                f"{REFUND_CREDIT_NOTE_GRACE_SECONDS:.0f} s for a credit note that may pay it "
                "before re-opening the receivable.",
                context={"refund": r.source_id, "invoice": invoice_ref},
                retry_after=REFUND_CREDIT_NOTE_GRACE_SECONDS,
            )
            continue
        outcomes[i] = {
            "refund_id": row.pk,
            "invoice_ref": invoice_ref,
            "invoice_entry_id": invoice_entry.pk,
            "payment_entry_id": payment_entry.pk,
            "legal_entity_id": invoice_entry.legal_entity_id,
            "settled_on": _settled_at(r).date().isoformat(),
            "settlement_currency": r.settlement_currency,
            "settlement_amount_minor": r.settlement_amount_minor,
        }
    return outcomes


def _carrying_rate(tx_minor: int, fn_minor: int, currency: str, functional: str) -> Decimal:
    """The rate a balance of ``tx_minor`` carried at ``fn_minor`` was booked at (major units)."""
    with localcontext() as c:
        c.prec = 40
        return (Decimal(fn_minor) / Decimal(tx_minor)) * (
            Decimal(10) ** (exponent(currency) - exponent(functional))
        )


def build_refund_entry(ctx: StepContext) -> dict[str, Any]:
    """Dr the customer credit the invoice carries (the rest Dr AR) / Cr cash, once."""
    outcome = build_refund_entries([ctx])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def build_refund_entries(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``build_refund_entry`` for many journeys: the entries already made, the refunds, the
    invoices' entries with their lines and the posting rules they name read in one query
    each; then, in one transaction per round, the invoices locked (one statement), the
    customer credit they carry read (one grouped query) and every entry inserted together.
    Two refunds of one invoice go in successive rounds, so the second sees the credit the
    first used. The only implementation: one journey's step is this with one context."""
    return _entries_built(
        ctxs,
        row_key="refund_id",
        create=_refund_entries_create,
    )


def _refund_entries_create(
    ctxs: list[StepContext],
    items: list[tuple[int, _CashPosting]],
    outcomes: list[dict[str, Any] | Exception],
) -> None:
    """One round (each invoice at most once): lock the invoices, read the customer credit
    they carry, build and insert the entries."""
    made: list[tuple[int, EntrySpec, int, int]] = []
    with transaction.atomic():
        # One refund (or payment) at a time per invoice, so two cannot use the same credit.
        list(
            Invoice.objects.select_for_update()
            .filter(source_system="stripe", source_id__in={x.row.invoice_ref for _, x in items})
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        balances = open_balances(
            {
                (x.entity.pk, x.row.invoice_ref, x.accounts.customer_credit_account_id)
                for _, x in items
            }
        )
        first_open: dict[int, dt.date] = {}
        for i, x in items:
            try:
                credit_tx, credit_fn = balances[
                    (x.entity.pk, x.row.invoice_ref, x.accounts.customer_credit_account_id)
                ]
                if x.entity.pk not in first_open:
                    first_open[x.entity.pk] = first_open_period(x.entity)
                spec, from_credit = _refund_entry_spec(
                    ctxs[i], x, -credit_tx, -credit_fn, first_open[x.entity.pk]
                )
                journal_entry_check(spec)
            except Exception as exc:
                outcomes[i] = exc
                continue
            made.append((i, spec, from_credit, x.row.amount_minor - from_credit))
        entries = journal_entries_create([spec for _, spec, _, _ in made])
    for (i, _, from_credit, from_ar), entry in zip(made, entries, strict=True):
        outcomes[i] = {
            "entry_id": entry.pk,
            "external_id": entry.external_id,
            "from_customer_credit_minor": from_credit,
            "from_ar_minor": from_ar,
        }


def _refund_entry_spec(
    ctx: StepContext, x: _CashPosting, credit_tx: int, credit_fn: int, first_open: dt.date
) -> tuple[EntrySpec, int]:
    """The refund's entry (Dr the customer credit the invoice carries, ``credit_tx`` /
    ``credit_fn`` as a liability, the rest Dr AR / Cr cash) and the part taken from credit."""
    refund, entity, accounts, rule = x.row, x.entity, x.accounts, x.rule
    functional = entity.functional_currency
    common = {
        "currency": refund.currency,
        "functional_currency": functional,
        "refund_rate": x.rate,
        "cash_account_id": accounts.cash_account_id,
        "ar_account_id": rule.ar_account_id,
        "customer_credit_account_id": accounts.customer_credit_account_id,
        "fx_account_id": accounts.fx_gain_loss_account_id,
        "rounding_account_id": rule.fx_rounding_account_id,
        "customer_ref": x.customer_ref,
        "memo": f"Refund {refund.source_id} on {refund.invoice_ref}",
    }
    from_credit = min(refund.amount_minor, max(credit_tx, 0))
    from_ar = refund.amount_minor - from_credit
    with _as_data_defects(f"Refund {refund.source_id}", entity):
        lines: list[DraftLine] = []
        if from_credit:
            balance_rate = (
                _carrying_rate(credit_tx, credit_fn, refund.currency, functional)
                if refund.currency != functional
                else None
            )
            lines += refund_lines(
                amount_minor=from_credit,
                from_balance="customer_credit",
                balance_rate=balance_rate,
                **common,
            )
        if from_ar:
            lines += refund_lines(
                amount_minor=from_ar,
                from_balance="ar",
                balance_rate=x.invoice_entry.fx_rate,
                **common,
            )
        if refund.currency != functional and ctx.data["settlement_currency"] == functional:
            lines = _true_up(
                lines,
                {(accounts.cash_account_id, "credit"): ctx.data["settlement_amount_minor"]},
                rounding_account_id=rule.fx_rounding_account_id,
                functional_currency=functional,
            )
    spec = _cash_entry_spec(ctx, x, JournalEntry.Kind.REFUND, "Refund", lines, first_open)
    return spec, from_credit


# --- journey types ------------------------------------------------------------------------------


def _payment_aggregate_key(env: WebhookEnvelope) -> str:
    obj = env.payload["data"]["object"]
    invoice = obj.get("invoice")
    return f"stripe:{invoice if isinstance(invoice, str) and invoice else env.object_id}"


def _refund_aggregate_key(env: WebhookEnvelope) -> str:
    charge = env.payload["data"]["object"].get("charge")
    return f"stripe:{charge if isinstance(charge, str) and charge else env.object_id}"


PAYMENT_JOURNEY = JourneyType(
    name="payment_to_ledger",
    source_system="stripe",
    event_types=frozenset({"charge.succeeded"}),
    steps=(
        StepDef(
            "validate",
            validate_payment,
            "Read the charge; find and wait for its invoice",
            batch=validate_payments,
        ),
        StepDef(
            "build_entry",
            build_payment_entry,
            "Relieve AR; book cash, fee, FX",
            batch=build_payment_entries,
        ),
        *POSTING_STEPS,
    ),
    business_key=lambda env: env.object_id,
    aggregate_key=_payment_aggregate_key,
    default_sla_minutes=60,
)

# ``refund.created`` carries the refund itself (its id is the business key, its balance
# transaction the settlement). ``charge.refunded`` carries the charge, whose ``refunds`` list
# Stripe no longer includes by default (API 2022-11-15 and later), so it cannot name the refund.
REFUND_JOURNEY = JourneyType(
    name="refund_to_ledger",
    source_system="stripe",
    event_types=frozenset({"refund.created"}),
    steps=(
        StepDef(
            "validate",
            validate_refund,
            "Read the refund; wait for its payment",
            batch=validate_refunds,
        ),
        StepDef(
            "build_entry",
            build_refund_entry,
            "Dr customer credit or AR / Cr cash",
            batch=build_refund_entries,
        ),
        *POSTING_STEPS,
    ),
    business_key=lambda env: env.object_id,
    aggregate_key=_refund_aggregate_key,
    default_sla_minutes=60,
)

JOURNEYS = (PAYMENT_JOURNEY, REFUND_JOURNEY)
