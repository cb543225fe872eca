"""payment_failed: a declined collection attempt is recorded against its invoice, never posted.

payment_failed (``charge.failed``, business key the charge id)
    record_failure: read the failed charge, find the invoice it tried to pay, keep it as a
    ``Payment`` row in state ``failed`` (failure code and message, amount attempted, no
    settlement) and complete with a context that says what failed and how many attempts on
    that invoice have failed so far.

Choices a controller should review:

* **No ledger posting.** A declined charge moves no money: no entry is built and the journey
  has no ERP step, so it can never post. Stripe sends no balance transaction for it.
* **Visible per invoice.** Finance wants every failed collection attempt per invoice (dunning,
  collections calls, a later write-off). The ``Payment`` table holds them next to the
  successful payments (``state`` failed, ``settled_at`` empty); the journey context and its
  summary sentence carry the same facts, so the journey queue shows them too.
* **Which invoice.** Linked like a payment (old-shape ``charge.invoice``, our
  ``metadata.invoice_id``, ``invoice_payment.paid`` events naming its payment intent), plus
  ``invoice.payment_failed`` events in the inbox whose (old-shape) invoice names the charge or
  its payment intent. A failure with no link waits about 30 s (from its first run) for one
  to arrive, then is recorded without an invoice: a failure is never an exception case.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from connectors.base import BillingInvoicePayment, BillingPayment, PermanentError
from connectors.stripe import payments as stripe_payments
from sync.errors import DataDefect, DependencyPending
from sync.journeys import JourneyType, StepContext, StepDef
from sync.journeys.payment import (
    _event_object,
    _invoice_entry,
    _money,
    _payment_aggregate_key,
    _set_entity,
    invoice_payment_links,
)
from sync.models import CustomerLink, ExceptionCase, Payment
from sync.services.inbox import inbox_events_naming

Cat = ExceptionCase.Category

#: How long a failure no invoice link covers waits, once, for the link to arrive.
FAILURE_LINK_GRACE_SECONDS = 30.0


def _failed_invoice_links(p: BillingPayment) -> list[BillingInvoicePayment]:
    """Links from ``invoice_payment.paid`` events (a later attempt on the same payment intent
    that succeeded) and from ``invoice.payment_failed`` events whose invoice names the charge or
    its payment intent (old API shape; the current one names neither on the invoice)."""
    links = invoice_payment_links(p)
    events = inbox_events_naming(
        "invoice.payment_failed",
        {
            ("data", "object", "charge"): [p.charge_ref] if p.charge_ref else [],
            ("data", "object", "payment_intent"): (
                [p.payment_intent_ref] if p.payment_intent_ref else []
            ),
        },
    )
    for event in events:
        try:
            links.extend(stripe_payments.invoice_payment_links(event.payload["data"]["object"]))
        except PermanentError:
            continue
    return links


def record_failure(ctx: StepContext) -> dict[str, Any]:
    """Keep the failed attempt against its invoice; never build or post an entry."""
    try:
        failure = stripe_payments.parse_charge_failure(_event_object(ctx))
    except PermanentError as exc:
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"The failed charge could not be read: {exc.message}",
            context={"event_id": ctx.journey.source_event.source_event_id},
        ) from exc
    p = failure.payment
    link_problem = ""
    try:
        p = stripe_payments.link_invoice(p, _failed_invoice_links(p))
    except PermanentError as exc:
        link_problem = exc.message
    # Measured from the step's first run (not by attempts, which a wait may give back).
    waited = (timezone.now() - (ctx.step.started_at or ctx.journey.created_at)).total_seconds()
    if not p.invoice_ref and not link_problem and waited < FAILURE_LINK_GRACE_SECONDS:
        raise DependencyPending(
            Cat.PAYMENT_NOT_LINKED,
            f"Failed charge {p.source_id} names no invoice yet; waiting "
            f"{FAILURE_LINK_GRACE_SECONDS:.0f} s for the event that links its payment intent to "
            "one before recording it without an invoice.",
            context={"charge": p.source_id, "payment_intent": p.payment_intent_ref},
            retry_after=max(FAILURE_LINK_GRACE_SECONDS - waited, 1.0),
        )
    existing = Payment.objects.filter(source_system="stripe", source_id=p.source_id).first()
    if existing is not None and existing.state != Payment.State.FAILED:
        raise DataDefect(
            Cat.AMOUNT_MISMATCH,
            f"Stripe reports charge {p.source_id} as failed, but it is recorded as a "
            f"{existing.state} {existing.kind} of "
            f"{_money(existing.amount_minor, existing.currency)}. Check the charge in Stripe; "
            "if it failed, reverse the posted payment by hand.",
            context={"charge": p.source_id},
        )
    row, _ = Payment.objects.update_or_create(
        source_system="stripe",
        source_id=p.source_id,
        defaults={
            "kind": Payment.Kind.PAYMENT,
            "state": Payment.State.FAILED,
            "invoice_ref": p.invoice_ref,
            "customer_ref": p.customer_ref,
            "currency": p.currency,
            "amount_minor": p.amount_minor,
            "fee_minor": 0,
            "settled_at": None,
            "attempted_at": p.created,
            "failure_code": failure.failure_code[:64],
            "failure_message": failure.failure_message[:500],
        },
    )
    invoice_entry = _invoice_entry(p.invoice_ref) if p.invoice_ref else None
    if invoice_entry is not None:
        _set_entity(ctx, invoice_entry.legal_entity)
    elif p.customer_ref:
        link = CustomerLink.objects.filter(
            billing_system="stripe", billing_customer_id=p.customer_ref
        ).first()
        if link is not None:
            _set_entity(ctx, link.legal_entity)
    attempts = (
        list(
            Payment.objects.filter(
                source_system="stripe", invoice_ref=p.invoice_ref, state=Payment.State.FAILED
            )
            .order_by("attempted_at", "pk")
            .values_list("source_id", flat=True)
        )
        if p.invoice_ref
        else [p.source_id]
    )
    reason = failure.failure_code or "no code"
    if failure.failure_message:
        reason += f" ({failure.failure_message})"
    where = f"on invoice {p.invoice_ref}" if p.invoice_ref else "on no known invoice"
    summary = (
        f"Charge {p.source_id} of {_money(p.amount_minor, p.currency)} {where} failed: {reason}. "
        f"Failed attempts on this invoice: {len(attempts)}. No money moved; nothing was posted."
    )
    return {
        "failed_payment_id": row.pk,
        "charge": p.source_id,
        "invoice_ref": p.invoice_ref,
        "customer_ref": p.customer_ref,
        "amount_minor": p.amount_minor,
        "currency": p.currency,
        "failure_code": failure.failure_code,
        "failure_message": failure.failure_message,
        "decline_code": failure.decline_code,
        "attempted_at": p.created.isoformat() if p.created else None,
        "failed_attempts_on_invoice": attempts,
        "link_problem": link_problem,
        "posted": False,
        "summary": summary,
    }


JOURNEY = JourneyType(
    name="payment_failed",
    source_system="stripe",
    event_types=frozenset({"charge.failed"}),
    steps=(
        StepDef(
            "record_failure", record_failure, "Record the failed attempt on its invoice (no post)"
        ),
    ),
    business_key=lambda env: env.object_id,
    aggregate_key=_payment_aggregate_key,
    default_sla_minutes=60,
)
