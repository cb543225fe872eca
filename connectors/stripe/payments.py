"""Pure parsers for the money side of an invoice: credit notes, charges, refunds, invoice payments.

Same rules as ``mapping``: plain dicts in (a webhook's ``data.object``), canonical dataclasses out,
both API shapes understood field by field (current = 2025-03-31.basil and later; old = before),
integer minor units only, ``PermanentError`` naming the field when a payload cannot be mapped and
``IncompletePayload`` when Stripe truncated a list (``has_more``).

Credit notes
    * line taxes: ``taxes[]`` (current) or ``tax_amounts[]`` (old); credit-note tax total:
      ``total_taxes[]`` (current) or ``tax_amounts[]`` (old), else the sum of the line taxes;
    * a line's ``amount`` is what is credited for it: inclusive tax in, exclusive tax out (as on
      invoice lines), so ``net = amount - inclusive tax``; ``total = subtotal + exclusive tax``
      (less credited discounts, which the payload's ``total`` already reflects);
    * timing: ``type`` is ``pre_payment`` / ``post_payment`` (and ``mixed`` since basil, with
      ``pre_payment_amount`` + ``post_payment_amount`` == ``total``);
    * refunded: ``sum(refunds[].amount_refunded)`` (current) or the old single ``refund`` (its
      ``amount`` when expanded); credited to the customer's balance: the expanded
      ``customer_balance_transaction`` (``-amount``). When only ids are sent, the missing part is
      the rest of the post-payment amount (Stripe requires refunds + balance credit +
      ``out_of_band_amount`` == the post-payment amount); with *both* the old ``refund`` and the
      balance transaction sent as bare ids the split is unknowable and the payload is refused.

Charges and refunds
    * fee, settlement amount/currency, exchange rate and availability come from the
      ``balance_transaction`` -- expanded inside the object or passed separately. Without it the
      settlement fields stay empty (``""`` / 0) and ``balance_transaction_ref`` says what to fetch.
      ``exchange_rate`` is Stripe's float, kept as decimal text (load JSON with
      ``parse_float=Decimal`` to keep it exact); it converts major units of the charge currency
      into major units of the settlement currency.
    * invoice link. Old API versions put ``invoice`` on the charge (and on the payment intent);
      2025-03-31.basil removed both, and from then on neither a charge, a payment intent nor a
      refund names its invoice. The link lives in ``invoice_payment`` objects (event
      ``invoice_payment.paid``; also ``invoice.payments`` when that list is included), which name
      the invoice and the payment intent (or, for a charge without one, the charge). So
      ``invoice_ref`` is filled from ``charge.invoice``, else from an expanded
      ``payment_intent.invoice`` (old), else from our own metadata convention
      (``metadata.invoice_id`` / ``metadata.invoice`` holding an ``in_...`` id -- Stripe never sets
      these), else left "" -- use ``link_invoice`` with the ``BillingInvoicePayment`` records.
      A refund never names an invoice in any version: it names its charge (and payment intent),
      so it is linked through them the same way.

Failed charges, disputes, uncollectible invoices (same rules; see each parser)
    * ``parse_charge_failure``: a ``charge`` with ``status: failed`` (``charge.failed``): the
      attempt as a ``BillingPayment`` plus ``failure_code`` / ``failure_message`` and the
      issuer's ``outcome.reason``. Identical in both API shapes (only the invoice link differs,
      as for any charge).
    * ``parse_dispute``: a ``dispute``. Its ``balance_transactions`` (zero, one or two, always
      expanded) are the funds withdrawn (negative ``amount``, ``fee`` = the dispute fee) and
      reinstated (positive ``amount``; a negative ``fee`` is a fee given back). An inquiry
      (``warning_*`` status) moves no funds. The old single ``balance_transaction`` id is not
      needed. Both API shapes are alike here.
    * ``parse_invoice_balance``: what is still owed on an ``invoice`` (``amount_remaining``;
      both shapes carry it, else ``amount_due - amount_paid``) and when it was marked
      uncollectible (``status_transitions.marked_uncollectible_at``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from connectors.base import (
    BillingCreditNote,
    BillingCreditNoteLine,
    BillingDispute,
    BillingDisputeFunds,
    BillingInvoiceBalance,
    BillingInvoicePayment,
    BillingPayment,
    BillingPaymentFailure,
    PermanentError,
)
from connectors.stripe.mapping import (
    _check_complete,
    _currency,
    _decimal_text,
    _dig,
    _invalid,
    _list_data,
    _metadata,
    _minor,
    _missing,
    _ref,
    _require_mapping,
    _text,
    _timestamp,
    parse_tax,
)

__all__ = [
    "CREDIT_NOTE_TIMINGS",
    "DISPUTE_STATUSES",
    "METADATA_INVOICE_KEYS",
    "invoice_payment_links",
    "link_invoice",
    "parse_charge",
    "parse_charge_failure",
    "parse_credit_note",
    "parse_credit_note_line",
    "parse_dispute",
    "parse_invoice_balance",
    "parse_invoice_payment",
    "parse_refund",
]

CREDIT_NOTE_TIMINGS = ("pre_payment", "post_payment", "mixed")

#: Metadata keys an integration may set on a charge / payment intent / refund to name the
#: invoice (a convention of ours; Stripe does not set them).
METADATA_INVOICE_KEYS = ("invoice_id", "invoice")


# --- small helpers ------------------------------------------------------------------------------


def _object_id(obj: Mapping[str, Any], kind: str) -> str:
    value = obj.get("id")
    if not isinstance(value, str) or not value:
        raise _missing(kind, "id")
    return value


def _required_timestamp(obj: Mapping[str, Any], field: str, what: str) -> dt.datetime:
    value = _timestamp(obj.get(field), what, field)
    if value is None:
        raise _missing(what, field)
    return value


def _non_negative(value: int, what: str, field: str) -> int:
    if value < 0:
        raise _invalid(what, field, value, "zero or positive")
    return value


def _inconsistent(what: str, message: str, **details: Any) -> PermanentError:
    return PermanentError(f"{what}: {message}", code="inconsistent_amounts", details=details)


# --- credit notes -------------------------------------------------------------------------------


def parse_credit_note_line(
    line: Mapping[str, Any], *, credit_note_id: str = ""
) -> BillingCreditNoteLine:
    """One ``credit_note_line_item``, current (``taxes[]``) or old (``tax_amounts[]``) shape."""
    line = _require_mapping(line, "credit note line item")
    prefix = f"credit note {credit_note_id} " if credit_note_id else "credit note "
    line_id = line.get("id")
    if not isinstance(line_id, str) or not line_id:
        raise _missing(f"{prefix}line", "id")
    what = f"{prefix}line {line_id}"
    amount = _minor(line.get("amount"), what, "amount")

    taxes_raw = line.get("taxes")
    field = "taxes"
    if taxes_raw is None:
        taxes_raw, field = line.get("tax_amounts"), "tax_amounts"
    if taxes_raw is None:
        taxes_raw = []
    if not isinstance(taxes_raw, list):
        raise _invalid(what, field, taxes_raw, "a list")
    taxes = tuple(
        parse_tax(entry, what=f"{what} {field}[{i}]") for i, entry in enumerate(taxes_raw)
    )
    inclusive = sum(t.amount_minor for t in taxes if t.inclusive)
    return BillingCreditNoteLine(
        source_id=line_id,
        invoice_line_ref=_ref(line.get("invoice_line_item")),
        description=_text(line.get("description")),
        net_minor=amount - inclusive,
        tax_minor=sum(t.amount_minor for t in taxes),
        taxes=taxes,
    )


def _credit_note_tax_total(
    obj: Mapping[str, Any], lines: tuple[BillingCreditNoteLine, ...], what: str
) -> int:
    for field in ("total_taxes", "tax_amounts"):
        entries = obj.get(field)
        if isinstance(entries, list):
            return sum(
                _minor(_dig(t, "amount"), what, f"{field}[{i}].amount")
                for i, t in enumerate(entries)
            )
    return sum(line.tax_minor for line in lines)


def _payment_split(obj: Mapping[str, Any], timing: str, total: int, what: str) -> tuple[int, int]:
    """(pre_payment, post_payment) parts of the total."""
    pre_raw = obj.get("pre_payment_amount")
    post_raw = obj.get("post_payment_amount")
    if pre_raw is None and post_raw is None:  # before basil: the type says it all
        if timing == "mixed":
            raise _missing(what, "post_payment_amount")
        return (total, 0) if timing == "pre_payment" else (0, total)
    pre = _minor(pre_raw, what, "pre_payment_amount", required=False)
    post = _minor(post_raw, what, "post_payment_amount", required=False)
    if pre_raw is None:
        pre = total - post
    if post_raw is None:
        post = total - pre
    if pre < 0 or post < 0 or pre + post != total:
        raise _inconsistent(
            what,
            f"pre_payment_amount ({pre}) + post_payment_amount ({post}) must equal total ({total})",
            pre_payment_amount=pre,
            post_payment_amount=post,
            total=total,
        )
    if (timing == "pre_payment" and post) or (timing == "post_payment" and pre):
        raise _inconsistent(
            what,
            f"type {timing!r} contradicts pre_payment_amount ({pre}) / "
            f"post_payment_amount ({post})",
            type=timing,
        )
    return pre, post


def _credit_note_refunds(obj: Mapping[str, Any], what: str) -> tuple[int | None, tuple[str, ...]]:
    """(refunded amount or None when only an old-style refund id was sent, refund ids)."""
    refunds = obj.get("refunds")
    if refunds is not None:  # current shape: refunds[] with amount_refunded each
        if not isinstance(refunds, list):
            raise _invalid(what, "refunds", refunds, "a list")
        total = 0
        refs: list[str] = []
        for i, entry in enumerate(refunds):
            entry = _require_mapping(entry, "credit note refund")
            amount = _minor(entry.get("amount_refunded"), what, f"refunds[{i}].amount_refunded")
            total += _non_negative(amount, what, f"refunds[{i}].amount_refunded")
            ref = _ref(entry.get("refund")) or _ref(
                _dig(entry, "payment_record_refund", "refund_group")
            )
            if ref:
                refs.append(ref)
        return total, tuple(refs)
    refund = obj.get("refund")  # old shape: one expandable refund
    if isinstance(refund, Mapping):
        amount = _minor(refund.get("amount"), what, "refund.amount")
        ref = _ref(refund)
        return _non_negative(amount, what, "refund.amount"), ((ref,) if ref else ())
    if isinstance(refund, str) and refund:
        return None, (refund,)
    return 0, ()


def _credit_note_balance_credit(obj: Mapping[str, Any], what: str) -> tuple[int | None, str]:
    """(amount credited to the customer's balance or None when only the id was sent, id)."""
    cbt = obj.get("customer_balance_transaction")
    if isinstance(cbt, Mapping):
        amount = _minor(cbt.get("amount"), what, "customer_balance_transaction.amount")
        # a credit lowers what the customer owes: Stripe records it as a negative amount
        return _non_negative(-amount, what, "-customer_balance_transaction.amount"), _ref(cbt)
    if isinstance(cbt, str) and cbt:
        return None, cbt
    return 0, ""


def parse_credit_note(obj: Mapping[str, Any]) -> BillingCreditNote:
    """A Stripe ``credit_note`` (current or old shape) as a canonical ``BillingCreditNote``.

    Raises ``IncompletePayload`` when ``lines.has_more`` is true and ``PermanentError`` naming
    the field when a required one (id, invoice, customer, currency, type, subtotal, total,
    created, lines) is missing or mistyped, or when the amounts contradict each other.
    """
    obj = _require_mapping(obj, "credit note")
    cn_id = _object_id(obj, "credit note")
    what = f"credit note {cn_id}"

    invoice_ref = _ref(obj.get("invoice"))
    if not invoice_ref:
        raise _missing(what, "invoice")
    customer_ref = _ref(obj.get("customer"))
    if not customer_ref:
        raise _missing(what, "customer")
    currency = _currency(obj.get("currency"), what)
    timing = obj.get("type")
    if timing is None or timing == "":
        raise _missing(what, "type")
    if timing not in CREDIT_NOTE_TIMINGS:
        raise _invalid(what, "type", timing, "one of " + ", ".join(CREDIT_NOTE_TIMINGS))
    created = _required_timestamp(obj, "created", what)
    issued_at = _timestamp(obj.get("effective_at"), what, "effective_at") or created

    listing, raw_lines = _list_data(obj, "lines", what)
    _check_complete(listing, cn_id, what, "lines", len(raw_lines))
    lines = tuple(parse_credit_note_line(line, credit_note_id=cn_id) for line in raw_lines)

    subtotal = _minor(obj.get("subtotal"), what, "subtotal")
    total = _non_negative(_minor(obj.get("total"), what, "total"), what, "total")
    pre, post = _payment_split(obj, timing, total, what)

    out_of_band = _non_negative(
        _minor(obj.get("out_of_band_amount"), what, "out_of_band_amount", required=False),
        what,
        "out_of_band_amount",
    )
    refunded, refund_refs = _credit_note_refunds(obj, what)
    credited, cbt_ref = _credit_note_balance_credit(obj, what)
    rest = post - out_of_band
    if refunded is None and credited is None:
        raise PermanentError(
            f"{what}: 'refund' and 'customer_balance_transaction' are both bare ids, so the "
            f"post-payment amount ({post}) cannot be split between them; expand either field",
            code="needs_expansion",
            details={"fields": ["refund", "customer_balance_transaction"]},
        )
    if refunded is None:
        refunded = rest - (credited or 0)
    if credited is None:
        credited = rest - refunded
    if refunded < 0 or credited < 0 or refunded + credited + out_of_band > post:
        raise _inconsistent(
            what,
            f"refunded ({refunded}) + credited to balance ({credited}) + out_of_band_amount "
            f"({out_of_band}) exceed the post-payment amount ({post})",
            refunded=refunded,
            credited=credited,
            out_of_band=out_of_band,
            post_payment=post,
        )

    return BillingCreditNote(
        source_id=cn_id,
        number=_text(obj.get("number")),
        invoice_ref=invoice_ref,
        customer_ref=customer_ref,
        currency=currency,
        timing=timing,
        refunded_minor=refunded,
        credited_to_balance_minor=credited,
        subtotal_minor=subtotal,
        tax_minor=_credit_note_tax_total(obj, lines, what),
        total_minor=total,
        issued_at=issued_at,
        lines=lines,
        out_of_band_minor=out_of_band,
        pre_payment_minor=pre,
        post_payment_minor=post,
        status=_text(obj.get("status")),
        refund_refs=refund_refs,
        customer_balance_transaction_ref=cbt_ref,
        reason=_text(obj.get("reason")),
        metadata=_metadata(obj.get("metadata")),
    )


# --- balance transactions -----------------------------------------------------------------------


def _balance_transaction(
    obj: Mapping[str, Any], given: Mapping[str, Any] | None, source_id: str, what: str
) -> Mapping[str, Any] | None:
    embedded = obj.get("balance_transaction")
    txn: Mapping[str, Any] | None = embedded if isinstance(embedded, Mapping) else None
    if given is not None:
        given = _require_mapping(given, "balance transaction")
        expected = _ref(embedded)
        if expected and given.get("id") and given.get("id") != expected:
            raise _invalid(
                what,
                "balance_transaction",
                given.get("id"),
                f"the balance transaction the payload names ({expected!r})",
            )
        txn = given
    if txn is not None:
        source = _ref(txn.get("source"))
        if source and source != source_id:
            raise _invalid(what, "balance_transaction.source", source, f"{source_id!r}")
    return txn


def _settlement(
    txn: Mapping[str, Any] | None, what: str, *, sign: int
) -> tuple[str, int, int, str, dt.datetime | None, str]:
    """(currency, amount, fee, exchange_rate, available_on, id), signed so a refund is positive."""
    if txn is None:
        return "", 0, 0, "", None, ""
    field = "balance_transaction"
    currency = _currency(txn.get("currency"), what, f"{field}.currency")
    amount = _minor(txn.get("amount"), what, f"{field}.amount")
    fee = _minor(txn.get("fee"), what, f"{field}.fee")
    rate = _decimal_text(txn.get("exchange_rate"), what, f"{field}.exchange_rate")
    available_on = _timestamp(txn.get("available_on"), what, f"{field}.available_on")
    if available_on is None:
        available_on = _timestamp(txn.get("created"), what, f"{field}.created")
    return currency, sign * amount, sign * fee, rate, available_on, _text(txn.get("id"))


# --- invoice links ------------------------------------------------------------------------------


def _metadata_invoice(*sources: Any) -> str:
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for key in METADATA_INVOICE_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value.startswith("in_"):
                return value
    return ""


def _charge_invoice_ref(charge: Mapping[str, Any]) -> str:
    """The invoice an (old-shape) charge names, directly or through its expanded payment intent."""
    ref = _ref(charge.get("invoice"))
    if ref:
        return ref
    intent = charge.get("payment_intent")
    if isinstance(intent, Mapping):
        ref = _ref(intent.get("invoice"))
        if ref:
            return ref
        return _metadata_invoice(charge.get("metadata"), intent.get("metadata"))
    return _metadata_invoice(charge.get("metadata"))


# --- charges ------------------------------------------------------------------------------------


def parse_charge(
    obj: Mapping[str, Any], balance_transaction: Mapping[str, Any] | None = None
) -> BillingPayment:
    """A Stripe ``charge`` as a ``BillingPayment`` of kind ``"payment"``.

    ``balance_transaction`` is the charge's balance transaction when the charge carries only its
    id; an expanded one inside the charge is used otherwise. ``amount_minor`` is the captured
    amount (``amount_captured`` when the charge says it is captured and that is set, else
    ``amount``). A charge that succeeded but is not captured (``captured: false``, an
    authorisation only) gets status ``"uncaptured"``: no money has moved yet.
    """
    obj = _require_mapping(obj, "charge")
    charge_id = _object_id(obj, "charge")
    what = f"charge {charge_id}"
    currency = _currency(obj.get("currency"), what)
    amount = _non_negative(_minor(obj.get("amount"), what, "amount"), what, "amount")
    captured = obj.get("captured")
    status = _text(obj.get("status"))
    if captured is True:
        amount_captured = _minor(
            obj.get("amount_captured"), what, "amount_captured", required=False
        )
        if 0 < amount_captured <= amount:  # old payloads send 0 on captured charges
            amount = amount_captured
    elif captured is False and status == "succeeded":
        status = "uncaptured"
    created = _required_timestamp(obj, "created", what)

    txn = _balance_transaction(obj, balance_transaction, charge_id, what)
    s_currency, s_amount, fee, rate, settled_at, txn_id = _settlement(txn, what, sign=1)
    customer = obj.get("customer")
    intent = obj.get("payment_intent")
    return BillingPayment(
        source_id=charge_id,
        kind="payment",
        invoice_ref=_charge_invoice_ref(obj),
        customer_ref=_ref(customer) or _ref(_dig(intent, "customer")),
        currency=currency,
        amount_minor=amount,
        fee_minor=fee,
        settlement_currency=s_currency,
        settlement_amount_minor=s_amount,
        exchange_rate=rate,
        settled_at=settled_at,
        charge_ref=charge_id,
        status=status,
        payment_intent_ref=_ref(intent),
        balance_transaction_ref=txn_id or _ref(obj.get("balance_transaction")),
        created=created,
        metadata=_metadata(obj.get("metadata")),
    )


# --- refunds ------------------------------------------------------------------------------------


def parse_refund(
    obj: Mapping[str, Any], balance_transaction: Mapping[str, Any] | None = None
) -> BillingPayment:
    """A Stripe ``refund`` as a ``BillingPayment`` of kind ``"refund"`` (positive amounts).

    The refund's balance transaction carries negative amounts; they are turned positive here, so
    ``settlement_amount_minor`` is what left the merchant's balance and ``fee_minor`` the fee
    Stripe gave back (usually 0). A refund names its charge and payment intent, never an invoice:
    ``invoice_ref`` is only filled from an expanded old-shape ``charge`` or our metadata
    convention; otherwise link it with ``link_invoice``.
    """
    obj = _require_mapping(obj, "refund")
    refund_id = _object_id(obj, "refund")
    what = f"refund {refund_id}"
    currency = _currency(obj.get("currency"), what)
    amount = _non_negative(_minor(obj.get("amount"), what, "amount"), what, "amount")
    created = _required_timestamp(obj, "created", what)

    txn = _balance_transaction(obj, balance_transaction, refund_id, what)
    s_currency, s_amount, fee, rate, settled_at, txn_id = _settlement(txn, what, sign=-1)

    charge = obj.get("charge")
    charge_obj = charge if isinstance(charge, Mapping) else None
    invoice_ref = _charge_invoice_ref(charge_obj) if charge_obj is not None else ""
    invoice_ref = invoice_ref or _metadata_invoice(obj.get("metadata"))
    intent_ref = _ref(obj.get("payment_intent")) or _ref(_dig(charge_obj, "payment_intent"))
    return BillingPayment(
        source_id=refund_id,
        kind="refund",
        invoice_ref=invoice_ref,
        customer_ref=_ref(obj.get("customer")) or _ref(_dig(charge_obj, "customer")),
        currency=currency,
        amount_minor=amount,
        fee_minor=fee,
        settlement_currency=s_currency,
        settlement_amount_minor=s_amount,
        exchange_rate=rate,
        settled_at=settled_at,
        charge_ref=_ref(charge),
        status=_text(obj.get("status")),
        payment_intent_ref=intent_ref,
        balance_transaction_ref=txn_id or _ref(obj.get("balance_transaction")),
        created=created,
        metadata=_metadata(obj.get("metadata")),
    )


# --- invoice payments ---------------------------------------------------------------------------


def parse_invoice_payment(obj: Mapping[str, Any]) -> BillingInvoicePayment:
    """A Stripe ``invoice_payment`` (2025-03-31.basil and later): which payment paid which invoice.

    The payment is ``payment.payment_intent`` / ``payment.charge`` / ``payment.payment_record``
    (GA shape) or top-level ``payment_intent`` / ``charge`` (a preview shape). Stripe names the
    charge only when it has no payment intent.
    """
    obj = _require_mapping(obj, "invoice payment")
    ip_id = _object_id(obj, "invoice payment")
    what = f"invoice payment {ip_id}"
    invoice_ref = _ref(obj.get("invoice"))
    if not invoice_ref:
        raise _missing(what, "invoice")
    payment = obj.get("payment")
    if not isinstance(payment, Mapping):
        payment = obj
    return BillingInvoicePayment(
        source_id=ip_id,
        invoice_ref=invoice_ref,
        currency=_currency(obj.get("currency"), what),
        amount_requested_minor=_minor(obj.get("amount_requested"), what, "amount_requested"),
        amount_paid_minor=_minor(obj.get("amount_paid"), what, "amount_paid", required=False),
        status=_text(obj.get("status")),
        payment_intent_ref=_ref(payment.get("payment_intent")),
        charge_ref=_ref(payment.get("charge")),
        paid_at=_timestamp(
            _dig(obj, "status_transitions", "paid_at"), what, "status_transitions.paid_at"
        ),
        is_default=obj.get("is_default") is not False,
        payment_record_ref=_ref(payment.get("payment_record")),
        created=_timestamp(obj.get("created"), what, "created"),
    )


def invoice_payment_links(invoice: Mapping[str, Any]) -> tuple[BillingInvoicePayment, ...]:
    """The payments an ``invoice`` payload itself names, in either API shape.

    Current shape: the ``payments`` list, when the webhook or API call included it (it is not
    included by default -- subscribe to ``invoice_payment.paid`` instead). Old shape: one link
    synthesised from the invoice's own ``charge`` / ``payment_intent``. Empty when neither is
    there. A truncated ``payments`` list raises ``IncompletePayload``.
    """
    invoice = _require_mapping(invoice, "invoice")
    inv_id = _object_id(invoice, "invoice")
    what = f"invoice {inv_id}"
    payments = invoice.get("payments")
    if isinstance(payments, (Mapping, list)):
        listing, data = _list_data(invoice, "payments", what)
        _check_complete(listing, inv_id, what, "payments", len(data))
        links = []
        for entry in data:
            entry = _require_mapping(entry, "invoice payment")
            if not entry.get("invoice"):  # nested under its invoice: the id may be implied
                entry = {**entry, "invoice": inv_id}
            links.append(parse_invoice_payment(entry))
        return tuple(links)
    charge_ref = _ref(invoice.get("charge"))
    intent_ref = _ref(invoice.get("payment_intent"))
    if not charge_ref and not intent_ref:
        return ()
    paid = invoice.get("paid") is True or invoice.get("status") == "paid"
    return (
        BillingInvoicePayment(
            source_id="",
            invoice_ref=inv_id,
            currency=_currency(invoice.get("currency"), what),
            amount_requested_minor=_minor(
                invoice.get("amount_due"), what, "amount_due", required=False
            ),
            amount_paid_minor=_minor(
                invoice.get("amount_paid"), what, "amount_paid", required=False
            ),
            status="paid" if paid else _text(invoice.get("status")),
            payment_intent_ref=intent_ref,
            charge_ref=charge_ref,
            paid_at=_timestamp(
                _dig(invoice, "status_transitions", "paid_at"), what, "status_transitions.paid_at"
            ),
            is_default=True,
            created=_timestamp(invoice.get("created"), what, "created"),
        ),
    )


def link_invoice(payment: BillingPayment, links: Iterable[BillingInvoicePayment]) -> BillingPayment:
    """``payment`` with ``invoice_ref`` filled from the invoice payments naming its charge or
    payment intent (unchanged when it already has one or nothing matches).

    Raises ``PermanentError`` (code ``ambiguous_invoice``) when the payment intent pays several
    invoices: one payment then has to be allocated by each link's ``amount_paid_minor``.
    """
    if payment.invoice_ref:
        return payment
    matches = {
        link.invoice_ref
        for link in links
        if link.status != "canceled"
        and (
            (payment.charge_ref and link.charge_ref == payment.charge_ref)
            or (
                payment.payment_intent_ref and link.payment_intent_ref == payment.payment_intent_ref
            )
        )
    }
    if not matches:
        return payment
    if len(matches) > 1:
        raise PermanentError(
            f"{payment.kind} {payment.source_id}: pays {len(matches)} invoices "
            f"({', '.join(sorted(matches))}); allocate it by the invoice payments' amounts",
            code="ambiguous_invoice",
            details={"invoices": sorted(matches)},
        )
    return dataclasses.replace(payment, invoice_ref=matches.pop())


# --- failed charges -----------------------------------------------------------------------------


def parse_charge_failure(obj: Mapping[str, Any]) -> BillingPaymentFailure:
    """A failed Stripe ``charge`` (``charge.failed``) as a ``BillingPaymentFailure``.

    Refuses (``PermanentError``) a charge whose ``status`` is not ``failed``: a failure record
    must never stand for money that moved.
    """
    payment = parse_charge(obj)
    what = f"charge {payment.source_id}"
    if payment.status != "failed":
        raise _invalid(what, "status", payment.status, "'failed'")
    outcome = obj.get("outcome")
    return BillingPaymentFailure(
        payment=payment,
        failure_code=_text(obj.get("failure_code")),
        failure_message=_text(obj.get("failure_message")),
        decline_code=_text(_dig(outcome, "reason")),
        seller_message=_text(_dig(outcome, "seller_message")),
    )


# --- disputes -----------------------------------------------------------------------------------

DISPUTE_STATUSES = (
    "warning_needs_response",
    "warning_under_review",
    "warning_closed",
    "needs_response",
    "under_review",
    "won",
    "lost",
    "prevented",
)


def _dispute_funds(txn: Any, dispute_id: str, what: str, index: int) -> BillingDisputeFunds:
    field = f"balance_transactions[{index}]"
    if not isinstance(txn, Mapping):
        raise _invalid(what, field, txn, "an expanded balance transaction")
    source = _ref(txn.get("source"))
    if source and source != dispute_id:
        raise _invalid(what, f"{field}.source", source, f"{dispute_id!r}")
    amount = _minor(txn.get("amount"), what, f"{field}.amount")
    fee = _minor(txn.get("fee"), what, f"{field}.fee", required=False)
    if amount < 0:
        direction = "withdrawn"
    elif amount > 0:
        direction = "reinstated"
    else:  # a fee-only movement: its sign says which way the money went
        direction = "withdrawn" if fee > 0 else "reinstated"
    available = _timestamp(txn.get("available_on"), what, f"{field}.available_on")
    return BillingDisputeFunds(
        source_id=_text(txn.get("id")),
        direction=direction,
        currency=_currency(txn.get("currency"), what, f"{field}.currency"),
        amount_minor=abs(amount),
        fee_minor=fee,
        exchange_rate=_decimal_text(txn.get("exchange_rate"), what, f"{field}.exchange_rate"),
        available_at=available or _timestamp(txn.get("created"), what, f"{field}.created"),
    )


def parse_dispute(obj: Mapping[str, Any]) -> BillingDispute:
    """A Stripe ``dispute`` as a ``BillingDispute``.

    ``PermanentError`` names the field when id, charge, currency, amount, status or created is
    missing or mistyped, when a balance transaction is not expanded or belongs to another
    object, or when the status is not one Stripe documents.
    """
    obj = _require_mapping(obj, "dispute")
    dispute_id = _object_id(obj, "dispute")
    what = f"dispute {dispute_id}"
    charge_ref = _ref(obj.get("charge"))
    if not charge_ref:
        raise _missing(what, "charge")
    currency = _currency(obj.get("currency"), what)
    amount = _non_negative(_minor(obj.get("amount"), what, "amount"), what, "amount")
    status = _text(obj.get("status"))
    if not status:
        raise _missing(what, "status")
    if status not in DISPUTE_STATUSES:
        raise _invalid(what, "status", status, "one of " + ", ".join(DISPUTE_STATUSES))
    txns = obj.get("balance_transactions")
    if txns is None:
        txns = []
    if not isinstance(txns, list):
        raise _invalid(what, "balance_transactions", txns, "a list")
    funds = tuple(_dispute_funds(t, dispute_id, what, i) for i, t in enumerate(txns))
    charge = obj.get("charge")
    return BillingDispute(
        source_id=dispute_id,
        charge_ref=charge_ref,
        payment_intent_ref=_ref(obj.get("payment_intent")) or _ref(_dig(charge, "payment_intent")),
        currency=currency,
        amount_minor=amount,
        status=status,
        reason=_text(obj.get("reason")),
        created=_required_timestamp(obj, "created", what),
        funds=funds,
        is_inquiry=status.startswith("warning_"),
        metadata=_metadata(obj.get("metadata")),
    )


# --- what is still owed on an invoice -----------------------------------------------------------


def parse_invoice_balance(obj: Mapping[str, Any]) -> BillingInvoiceBalance:
    """What is still owed on a Stripe ``invoice`` (either API shape), e.g. for
    ``invoice.marked_uncollectible``. ``amount_remaining`` when sent, else
    ``amount_due - amount_paid``; a remaining amount below zero or above ``amount_due`` is
    refused."""
    obj = _require_mapping(obj, "invoice")
    inv_id = _object_id(obj, "invoice")
    what = f"invoice {inv_id}"
    customer_ref = _ref(obj.get("customer"))
    if not customer_ref:
        raise _missing(what, "customer")
    due = _minor(obj.get("amount_due"), what, "amount_due")
    paid = _minor(obj.get("amount_paid"), what, "amount_paid", required=False)
    remaining_raw = obj.get("amount_remaining")
    remaining = (
        due - paid if remaining_raw is None else _minor(remaining_raw, what, "amount_remaining")
    )
    if not 0 <= remaining <= max(due, 0):
        raise _inconsistent(
            what,
            f"amount_remaining ({remaining}) must be between 0 and amount_due ({due})",
            amount_remaining=remaining,
            amount_due=due,
        )
    return BillingInvoiceBalance(
        source_id=inv_id,
        customer_ref=customer_ref,
        currency=_currency(obj.get("currency"), what),
        status=_text(obj.get("status")),
        total_minor=_minor(obj.get("total"), what, "total", required=False),
        amount_due_minor=due,
        amount_paid_minor=paid,
        amount_remaining_minor=remaining,
        marked_uncollectible_at=_timestamp(
            _dig(obj, "status_transitions", "marked_uncollectible_at"),
            what,
            "status_transitions.marked_uncollectible_at",
        ),
        created=_timestamp(obj.get("created"), what, "created"),
    )
