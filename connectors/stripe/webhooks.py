"""Verify an inbound Stripe webhook exactly as Stripe signs it, then check its envelope.

Stripe signs ``"{t}.{raw body}"`` with HMAC-SHA256 keyed by the whole ``whsec_...`` secret and
sends ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`` (several ``v1`` values while a
secret is being rolled). The signature covers the raw bytes, so verification must happen before
anything parses or re-serializes the body.

The stripe SDK's verifier (``stripe.WebhookSignature.verify_header``) does the HMAC comparison.
Around it this module tells the failure modes apart -- the SDK folds them all into one exception
-- and checks the timestamp against ``now`` in both directions, so tests can pin the clock and a
timestamp far in the future is refused as well as a stale one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
from typing import Any

import stripe

from connectors.base import AuthError, PermanentError, WebhookEnvelope

__all__ = [
    "DEFAULT_TOLERANCE",
    "REASONS",
    "WebhookRejected",
    "parse_signature_header",
    "verify_event",
]

DEFAULT_TOLERANCE = 300  # seconds; Stripe's own default

REASONS = frozenset(
    {
        "missing_signature",
        "malformed_signature",
        "bad_signature",
        "stale_timestamp",
        "malformed_json",
        "missing_field",
    }
)


class WebhookRejected(PermanentError):
    """The request is not a genuine, well-formed Stripe event: answer 400, never retry it.

    ``reason`` is a stable machine code (one of ``REASONS``); ``message`` is for people.
    """

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown webhook rejection reason {reason!r}")
        super().__init__(message, status=400, code=reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    """Split ``t=...,v1=...[,v1=...]`` into the timestamp and the ``v1`` signatures.

    Parses the way the stripe SDK does (comma-separated ``key=value`` items, first ``t`` wins,
    other schemes such as ``v0`` ignored) so the two never disagree about what the header says.
    Raises ``WebhookRejected("malformed_signature", ...)``.
    """
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            continue
        if key == "t":
            timestamps.append(value)
        elif key == stripe.WebhookSignature.EXPECTED_SCHEME:
            signatures.append(value)
    if not timestamps:
        raise WebhookRejected("malformed_signature", "Stripe-Signature header has no t= timestamp")
    raw_t = timestamps[0]
    if not raw_t.isascii() or not raw_t.isdigit():
        raise WebhookRejected(
            "malformed_signature", f"Stripe-Signature timestamp t={raw_t!r} is not an integer"
        )
    if not signatures:
        raise WebhookRejected("malformed_signature", "Stripe-Signature header has no v1= signature")
    return int(raw_t), signatures


def _hmac_matches(raw_body: bytes, timestamp: int, signatures: list[str], secret: str) -> bool:
    """HMAC check over raw bytes, for bodies the SDK cannot take (it decodes them as UTF-8)."""
    expected = hmac.new(
        secret.encode("utf-8"), b"%d." % timestamp + raw_body, hashlib.sha256
    ).hexdigest()
    return any(hmac.compare_digest(expected.encode(), sig.encode("utf-8")) for sig in signatures)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def verify_event(
    raw_body: bytes,
    signature_header: str | None,
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: int | None = None,
) -> WebhookEnvelope:
    """Verify ``raw_body`` against ``Stripe-Signature`` and return the checked envelope.

    ``raw_body`` must be the request body exactly as received. ``now`` (unix seconds) defaults
    to the current time. Raises ``WebhookRejected`` with ``reason`` one of
    ``missing_signature``, ``malformed_signature``, ``bad_signature``, ``stale_timestamp``
    (older or further in the future than ``tolerance`` seconds), ``malformed_json`` or
    ``missing_field``; raises ``AuthError`` when no secret is configured (our fault, not the
    sender's).
    """
    if not secret or not secret.strip():
        raise AuthError("Stripe webhook secret is not configured", code="missing_webhook_secret")
    if tolerance <= 0:
        raise ValueError("tolerance must be a positive number of seconds")
    if isinstance(raw_body, (bytearray, memoryview)):
        raw_body = bytes(raw_body)
    if not isinstance(raw_body, bytes):
        raise TypeError("verify_event needs the raw request body as bytes")

    if signature_header is None or not signature_header.strip():
        raise WebhookRejected("missing_signature", "no Stripe-Signature header")
    timestamp, signatures = parse_signature_header(signature_header)

    # --- signature over the raw bytes -------------------------------------------------------
    body_text: str | None
    try:
        body_text = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        body_text = None
    if body_text is not None:
        # strict UTF-8 decoding round-trips byte for byte, so the SDK signs exactly raw_body.
        try:
            stripe.WebhookSignature.verify_header(body_text, signature_header, secret, None)
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejected(
                "bad_signature", f"Stripe-Signature does not match the body: {exc.user_message}"
            ) from None
    elif not _hmac_matches(raw_body, timestamp, signatures, secret):
        raise WebhookRejected("bad_signature", "Stripe-Signature does not match the body")

    # --- freshness, both directions ---------------------------------------------------------
    current = int(time.time()) if now is None else int(now)
    age = current - timestamp
    if age > tolerance:
        raise WebhookRejected(
            "stale_timestamp",
            f"signature timestamp {timestamp} is {age} s old (tolerance {tolerance} s)",
        )
    if -age > tolerance:
        raise WebhookRejected(
            "stale_timestamp",
            f"signature timestamp {timestamp} is {-age} s in the future (tolerance {tolerance} s)",
        )

    # --- JSON ---------------------------------------------------------------------------------
    if body_text is None:
        raise WebhookRejected("malformed_json", "body is not valid UTF-8")
    try:
        payload = json.loads(body_text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise WebhookRejected("malformed_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(
            "malformed_json", f"body is a JSON {type(payload).__name__}, not an object"
        )

    return _envelope(payload)


def event_parse(payload: Any) -> WebhookEnvelope:
    """Check the shape of a Stripe event read from the API (``GET /v1/events``) or an export,
    where no webhook signature applies. Raises ``WebhookRejected`` naming what is wrong."""
    if not isinstance(payload, dict):
        raise WebhookRejected(
            "malformed_json", f"an event is a JSON object, not a {type(payload).__name__}"
        )
    return _envelope(payload)


def _envelope(payload: dict[str, Any]) -> WebhookEnvelope:
    event_id = payload.get("id")
    if not isinstance(event_id, str) or not event_id.startswith("evt_"):
        raise WebhookRejected("missing_field", "event field 'id' (evt_...) is missing or invalid")
    event_type = payload.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise WebhookRejected("missing_field", f"event {event_id}: field 'type' is missing")
    created_raw = payload.get("created")
    if not isinstance(created_raw, int) or isinstance(created_raw, bool):
        raise WebhookRejected(
            "missing_field", f"event {event_id}: field 'created' (unix seconds) is missing"
        )
    try:
        created = dt.datetime.fromtimestamp(created_raw, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise WebhookRejected(
            "missing_field", f"event {event_id}: field 'created' is not a valid timestamp"
        ) from None
    api_version = payload.get("api_version")
    if api_version is not None and not isinstance(api_version, str):
        raise WebhookRejected(
            "missing_field", f"event {event_id}: field 'api_version' must be a string or null"
        )
    data = payload.get("data")
    if not isinstance(data, dict):
        raise WebhookRejected("missing_field", f"event {event_id}: field 'data' is missing")
    obj = data.get("object")
    if not isinstance(obj, dict):
        raise WebhookRejected("missing_field", f"event {event_id}: field 'data.object' is missing")
    object_id = obj.get("id")
    if not isinstance(object_id, str) or not object_id:
        raise WebhookRejected(
            "missing_field", f"event {event_id}: field 'data.object.id' is missing"
        )
    object_type = obj.get("object")
    if not isinstance(object_type, str) or not object_type:
        raise WebhookRejected(
            "missing_field", f"event {event_id}: field 'data.object.object' is missing"
        )
    return WebhookEnvelope(
        event_id=event_id,
        event_type=event_type,
        created=created,
        api_version=api_version or "",
        object_type=object_type,
        object_id=object_id,
        payload=payload,
    )
