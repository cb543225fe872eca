"""Realistic signed Stripe events for tests, built with the Stripe emulator."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.test import Client

from connectors.stripe import emulator as se

APR_1 = int(dt.datetime(2026, 4, 1, tzinfo=dt.UTC).timestamp())
MAY_1 = int(dt.datetime(2026, 5, 1, tzinfo=dt.UTC).timestamp())


def invoice_event(
    customer: str = "cus_acme",
    *,
    price: str = "price_platform",
    amount: int = 12_000_00,
    tax_rate: str | None = "txr_us_8",
    tax_percent: str = "8",
    currency: str = "usd",
    invoice_id: str | None = None,
    number: str | None = None,
    extra_lines: list[se.LineSpec] | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An ``invoice.finalized`` event with one subscription line (+8% exclusive tax)."""
    taxes = (
        (se.TaxSpec(rate_id=tax_rate, percentage=tax_percent, jurisdiction="US"),)
        if tax_rate
        else ()
    )
    lines = [
        se.LineSpec(
            amount_minor=amount,
            price_id=price,
            product_id=f"prod_{price.removeprefix('price_')}",
            description="Platform subscription",
            period_start=APR_1,
            period_end=MAY_1,
            taxes=taxes,
        ),
        *(extra_lines or []),
    ]
    invoice = se.make_invoice(
        customer,
        lines,
        currency=currency,
        number=number,
        invoice_id=invoice_id,
        subscription_id="sub_acme",
        metadata=metadata,
        created=APR_1,
        finalized_at=APR_1,
    )
    return se.make_event("invoice.finalized", invoice, created=APR_1)


def customer_event(customer: str, *, entity: str, name: str = "Acme Corp") -> dict[str, Any]:
    obj = se.make_customer(customer_id=customer, name=name, metadata={"legal_entity": entity})
    return se.make_event("customer.created", obj)


def post_signed(client: Client, event: dict[str, Any], *, secret: str | None = None):
    """POST the event to our webhook exactly as Stripe would (raw bytes, signed now)."""
    body = se.serialize(event)
    return client.post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=se.sign_payload(body, secret or settings.STRIPE_WEBHOOK_SECRET),
    )
