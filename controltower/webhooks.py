"""Inbound webhooks. Verify over the raw body, store in the inbox, answer fast."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from connectors.stripe.webhooks import WebhookRejected, verify_event
from sync.services.inbox import inbound_event_receive, webhook_rejection_count

log = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Stripe's endpoint. 200 once the event is safely in the inbox (or was already there);
    400 with a JSON reason for anything unverified or malformed, which stores nothing."""
    try:
        envelope = verify_event(
            request.body,
            request.headers.get("Stripe-Signature"),
            settings.STRIPE_WEBHOOK_SECRET,
            tolerance=settings.STRIPE_WEBHOOK_TOLERANCE,
        )
    except WebhookRejected as exc:
        log.warning(
            "stripe webhook rejected: %s (%s) from %s, %d bytes",
            exc.reason,
            exc.message,
            request.META.get("REMOTE_ADDR", "?"),
            len(request.body),
        )
        webhook_rejection_count(source_system="stripe", reason=exc.reason)
        return JsonResponse({"error": {"reason": exc.reason, "message": exc.message}}, status=400)
    received = inbound_event_receive(source_system="stripe", envelope=envelope)
    return JsonResponse(
        {"received": True, "id": envelope.event_id, "duplicate": not received.created}
    )
