"""Stripe billing connector: webhook verification and parsers into the canonical objects.

``webhooks.verify_event`` checks an inbound webhook; ``mapping.parse_*`` turn Stripe objects
(current and pre-basil API shapes) into ``connectors.base`` dataclasses. ``emulator`` (imported
explicitly, not from here) builds Stripe-shaped objects and signed deliveries for the demo and
tests.
"""

from connectors.stripe.mapping import (
    IncompletePayload,
    parse_customer,
    parse_invoice,
    parse_invoice_line,
    parse_subscription,
)
from connectors.stripe.webhooks import WebhookRejected, verify_event

__all__ = [
    "IncompletePayload",
    "WebhookRejected",
    "parse_customer",
    "parse_invoice",
    "parse_invoice_line",
    "parse_subscription",
    "verify_event",
]
