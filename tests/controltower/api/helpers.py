"""Rows made directly (fast, for lists and filters) and the real invoice flow (webhook)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.utils import timezone

from connectors.stripe import emulator as se
from sync.models import GLAccount, JournalEntry, JournalLine, Journey, LegalEntity, Step

APR_1 = int(dt.datetime(2026, 4, 1, tzinfo=dt.UTC).timestamp())
MAY_1 = int(dt.datetime(2026, 5, 1, tzinfo=dt.UTC).timestamp())
_seq = itertools.count(1)


# --- rows made directly (fast, for lists and filters) -------------------------------------


def make_journey(
    *,
    business_key: str | None = None,
    journey_type: str = "invoice_to_ledger",
    entity: LegalEntity | None = None,
    state: str = Journey.State.COMPLETED,
    sla_state: str = Journey.SlaState.ON_TRACK,
    steps: Iterable[tuple[str, str]] = (("validate", Step.State.SUCCEEDED),),
) -> Journey:
    now = timezone.now()
    key = business_key or f"in_{next(_seq):05d}"
    journey = Journey.objects.create(
        journey_type=journey_type,
        business_key=key,
        aggregate_key=f"stripe:{key}",
        source_system="stripe",
        legal_entity=entity,
        state=state,
        sla_state=sla_state,
        business_at=now,
        sla_warning_at=now + dt.timedelta(minutes=45),
        sla_due_at=now + dt.timedelta(minutes=60),
    )
    Step.objects.bulk_create(
        Step(journey=journey, name=name, position=i, state=step_state)
        for i, (name, step_state) in enumerate(steps, start=1)
    )
    return journey


def make_entry(
    *,
    entity: LegalEntity,
    debit: GLAccount,
    credit: GLAccount,
    amount_minor: int,
    journey: Journey | None = None,
    posting_date: dt.date = dt.date(2026, 4, 1),
    state: str = JournalEntry.State.POSTED,
    external_id: str | None = None,
) -> JournalEntry:
    """A balanced two-line entry. Lines go in while it is a draft: the database refuses lines
    on a posted entry."""
    entry = JournalEntry.objects.create(
        legal_entity=entity,
        journey=journey,
        posting_date=posting_date,
        currency=entity.functional_currency,
        functional_currency=entity.functional_currency,
        external_id=external_id or f"RCT-TEST-{next(_seq):05d}",
    )
    JournalLine.objects.bulk_create(
        [
            JournalLine(
                entry=entry,
                line_no=1,
                account=debit,
                debit_minor=amount_minor,
                functional_debit_minor=amount_minor,
            ),
            JournalLine(
                entry=entry,
                line_no=2,
                account=credit,
                credit_minor=amount_minor,
                functional_credit_minor=amount_minor,
            ),
        ]
    )
    if state != JournalEntry.State.DRAFT:
        JournalEntry.objects.filter(pk=entry.pk).update(state=state)
        entry.refresh_from_db()
    return entry


# --- the real flow: a signed Stripe webhook, then the engine inline ----------------------


def invoice_event(
    *,
    invoice_id: str,
    price: str = "price_platform",
    amount_minor: int = 12_000_00,
    customer: str = "cus_acme",
    currency: str = "usd",
    tax_rate: str | None = "txr_us_8",
) -> dict[str, Any]:
    """``invoice.finalized`` with one subscription line (+8% exclusive tax when ``tax_rate``)."""
    taxes = (se.TaxSpec(rate_id=tax_rate, percentage="8", jurisdiction="US"),) if tax_rate else ()
    line = se.LineSpec(
        amount_minor=amount_minor,
        price_id=price,
        product_id=f"prod_{price.removeprefix('price_')}",
        description="Platform subscription",
        period_start=APR_1,
        period_end=MAY_1,
        taxes=taxes,
    )
    invoice = se.make_invoice(
        customer,
        [line],
        currency=currency,
        invoice_id=invoice_id,
        subscription_id="sub_acme",
        created=APR_1,
        finalized_at=APR_1,
    )
    return se.make_event("invoice.finalized", invoice, created=APR_1)


def post_webhook(client, event: dict[str, Any]) -> None:
    """POST the event to our Stripe endpoint as Stripe does: raw bytes, signed now."""
    body = se.serialize(event)
    resp = client.post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=se.sign_payload(body, settings.STRIPE_WEBHOOK_SECRET),
    )
    assert resp.status_code == 200, resp.content
