"""verify_event: Stripe's signing scheme over the raw bytes, then the event envelope."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time

import pytest
import stripe

from connectors.base import AuthError, PermanentError
from connectors.stripe.emulator import make_event, make_invoice, serialize, sign_payload
from connectors.stripe.webhooks import WebhookRejected, verify_event

SECRET = "whsec_test_5d41402abc4b2a76b9719d911017c592"
OTHER_SECRET = "whsec_test_7d793037a0760186574b0282f2f435e7"
NOW = 1_750_000_000


def _v1(body: bytes, ts: int, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), b"%d." % ts + body, hashlib.sha256).hexdigest()


def _event(**kwargs) -> dict:
    invoice = make_invoice("cus_TEST", [{"amount_minor": 1000}], created=NOW - 60)
    return make_event("invoice.finalized", invoice, created=NOW - 30, **kwargs)


def _reason(exc_info: pytest.ExceptionInfo[WebhookRejected]) -> str:
    return exc_info.value.reason


# --- accepted -------------------------------------------------------------------------------------


def test_valid_signature_is_accepted_and_envelope_is_filled():
    event = _event()
    body = serialize(event)
    env = verify_event(body, sign_payload(body, SECRET, NOW), SECRET, now=NOW)
    assert env.event_id == event["id"] and env.event_id.startswith("evt_")
    assert env.event_type == "invoice.finalized"
    assert env.created == dt.datetime.fromtimestamp(NOW - 30, tz=dt.UTC)
    assert env.created.tzinfo is not None and env.created.utcoffset() == dt.timedelta(0)
    assert env.api_version == event["api_version"]
    assert env.object_type == "invoice"
    assert env.object_id == event["data"]["object"]["id"]
    assert env.payload == json.loads(body)


def test_sign_payload_matches_the_stripe_sdk():
    body = serialize(_event())
    sdk_header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, NOW)
    assert sign_payload(body, SECRET, NOW) == sdk_header


def test_reference_event_with_null_api_version(load_fixture):
    body = json.dumps(load_fixture("current_event.json")).encode()
    env = verify_event(body, sign_payload(body, SECRET, NOW), SECRET, now=NOW)
    assert env.event_id == "evt_1Pgc76B7WZ01zgkWwyRHS12y"
    assert env.event_type == "plan.created"
    assert env.api_version == ""
    assert env.created == dt.datetime(2009, 2, 13, 23, 31, 30, tzinfo=dt.UTC)
    assert (env.object_type, env.object_id) == ("plan", "price_1PgafmB7WZ01zgkW6dKueIc5")


def test_several_v1_values_one_valid_is_accepted():
    body = serialize(_event())
    header = f"t={NOW},v1={_v1(body, NOW, OTHER_SECRET)},v1={_v1(body, NOW)},v0={'0' * 64}"
    assert verify_event(body, header, SECRET, now=NOW).event_type == "invoice.finalized"


def test_secret_rotation_both_secrets_verify():
    body = serialize(_event())
    header = f"t={NOW},v1={_v1(body, NOW, OTHER_SECRET)},v1={_v1(body, NOW, SECRET)}"
    verify_event(body, header, SECRET, now=NOW)
    verify_event(body, header, OTHER_SECRET, now=NOW)


def test_non_ascii_utf8_body_verifies():
    event = _event()
    event["data"]["object"]["customer_name"] = "Müller & Söhne — 東京"
    body = serialize(event)
    assert "Müller".encode() in body
    env = verify_event(body, sign_payload(body, SECRET, NOW), SECRET, now=NOW)
    assert env.payload["data"]["object"]["customer_name"] == "Müller & Söhne — 東京"


def test_timestamp_exactly_at_tolerance_is_accepted():
    body = serialize(_event())
    verify_event(body, sign_payload(body, SECRET, NOW - 300), SECRET, now=NOW)
    verify_event(body, sign_payload(body, SECRET, NOW + 300), SECRET, now=NOW)


def test_now_defaults_to_the_clock():
    body = serialize(_event())
    verify_event(body, sign_payload(body, SECRET, int(time.time())), SECRET)
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, sign_payload(body, SECRET, int(time.time()) - 3600), SECRET)
    assert _reason(exc_info) == "stale_timestamp"


def test_bytearray_and_memoryview_bodies_are_accepted():
    body = serialize(_event())
    header = sign_payload(body, SECRET, NOW)
    verify_event(bytearray(body), header, SECRET, now=NOW)
    verify_event(memoryview(body), header, SECRET, now=NOW)


# --- rejected -------------------------------------------------------------------------------------


def test_bad_signature_wrong_secret():
    body = serialize(_event())
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, sign_payload(body, OTHER_SECRET, NOW), SECRET, now=NOW)
    assert _reason(exc_info) == "bad_signature"


def test_bad_signature_tampered_body():
    body = serialize(_event())
    header = sign_payload(body, SECRET, NOW)
    tampered = body.replace(b'"amount_due": 1000', b'"amount_due": 1')
    assert tampered != body
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(tampered, header, SECRET, now=NOW)
    assert _reason(exc_info) == "bad_signature"


def test_signature_is_over_raw_bytes_not_reserialized_json():
    event = _event()
    compact = json.dumps(event, separators=(",", ":")).encode()
    pretty = json.dumps(event, indent=2).encode()
    assert json.loads(compact) == json.loads(pretty)
    header = sign_payload(compact, SECRET, NOW)
    verify_event(compact, header, SECRET, now=NOW)
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(pretty, header, SECRET, now=NOW)
    assert _reason(exc_info) == "bad_signature"


def test_signature_with_other_timestamp_is_bad():
    body = serialize(_event())
    header = f"t={NOW},v1={_v1(body, NOW - 1)}"
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, header, SECRET, now=NOW)
    assert _reason(exc_info) == "bad_signature"


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_signature(header):
    body = serialize(_event())
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, header, SECRET, now=NOW)
    assert _reason(exc_info) == "missing_signature"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "v1=abcdef",  # no timestamp
        f"t={NOW}",  # no v1
        f"t={NOW},v0=abcdef",  # only another scheme
        "t=yesterday,v1=abcdef",  # timestamp not an integer
        "t=-5,v1=abcdef",
        "t=,v1=abcdef",
    ],
)
def test_malformed_signature_header(header):
    body = serialize(_event())
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, header, SECRET, now=NOW)
    assert _reason(exc_info) == "malformed_signature"


def test_stale_timestamp_301_seconds_old():
    body = serialize(_event())
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, sign_payload(body, SECRET, NOW - 301), SECRET, now=NOW)
    assert _reason(exc_info) == "stale_timestamp"
    assert "301 s old" in exc_info.value.message


def test_future_timestamp_beyond_tolerance():
    body = serialize(_event())
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, sign_payload(body, SECRET, NOW + 301), SECRET, now=NOW)
    assert _reason(exc_info) == "stale_timestamp"
    assert "future" in exc_info.value.message


def test_custom_tolerance():
    body = serialize(_event())
    header = sign_payload(body, SECRET, NOW - 30)
    verify_event(body, header, SECRET, now=NOW, tolerance=30)
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, header, SECRET, now=NOW, tolerance=29)
    assert _reason(exc_info) == "stale_timestamp"


def test_forged_stale_request_reports_bad_signature_first():
    body = serialize(_event())
    header = sign_payload(body, OTHER_SECRET, NOW - 3600)
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, header, SECRET, now=NOW)
    assert _reason(exc_info) == "bad_signature"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b'{"id": "evt_1", ', b"[1, 2, 3]", b'"evt_1"', b'{"id": NaN}'],
)
def test_malformed_json(body):
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, sign_payload(body, SECRET, NOW), SECRET, now=NOW)
    assert _reason(exc_info) == "malformed_json"


def test_non_utf8_body_correctly_signed_is_malformed_json():
    body = b'{"id": "evt_\xff\xfe", "type": "invoice.paid"}'
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, sign_payload(body, SECRET, NOW), SECRET, now=NOW)
    assert _reason(exc_info) == "malformed_json"
    assert "UTF-8" in exc_info.value.message


def test_non_utf8_body_wrongly_signed_is_bad_signature():
    body = b'{"id": "evt_\xff\xfe"}'
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, sign_payload(body, OTHER_SECRET, NOW), SECRET, now=NOW)
    assert _reason(exc_info) == "bad_signature"


def _drop(event: dict, path: str) -> dict:
    target = event
    *parents, leaf = path.split(".")
    for key in parents:
        target = target[key]
    del target[leaf]
    return event


@pytest.mark.parametrize(
    ("path", "field_name"),
    [
        ("id", "id"),
        ("type", "type"),
        ("created", "created"),
        ("data", "data"),
        ("data.object", "data.object"),
        ("data.object.id", "data.object.id"),
        ("data.object.object", "data.object.object"),
    ],
)
def test_missing_envelope_field(path, field_name):
    body = json.dumps(_drop(_event(), path)).encode()
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, sign_payload(body, SECRET, NOW), SECRET, now=NOW)
    assert _reason(exc_info) == "missing_field"
    assert f"'{field_name}'" in exc_info.value.message


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("id", "ch_notanevent"),
        ("id", 42),
        ("type", ""),
        ("created", "1750000000"),
        ("created", 1.75e9),
        ("created", True),
        ("data", []),
    ],
)
def test_invalid_envelope_field(field_name, value):
    event = _event()
    event[field_name] = value
    body = json.dumps(event).encode()
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, sign_payload(body, SECRET, NOW), SECRET, now=NOW)
    assert _reason(exc_info) == "missing_field"
    assert f"'{field_name}'" in exc_info.value.message


def test_data_object_not_a_dict():
    event = _event()
    event["data"]["object"] = "in_123"
    body = json.dumps(event).encode()
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, sign_payload(body, SECRET, NOW), SECRET, now=NOW)
    assert _reason(exc_info) == "missing_field"
    assert "'data.object'" in exc_info.value.message


# --- configuration and error contract -------------------------------------------------------------


@pytest.mark.parametrize("secret", ["", "  "])
def test_missing_secret_is_a_configuration_error(secret):
    body = serialize(_event())
    with pytest.raises(AuthError):
        verify_event(body, sign_payload(body, SECRET, NOW), secret, now=NOW)


def test_str_body_is_refused():
    with pytest.raises(TypeError):
        verify_event("{}", f"t={NOW},v1=00", SECRET, now=NOW)  # type: ignore[arg-type]


def test_webhook_rejected_is_a_permanent_400():
    body = serialize(_event())
    with pytest.raises(WebhookRejected) as exc_info:
        verify_event(body, None, SECRET, now=NOW)
    err = exc_info.value
    assert isinstance(err, PermanentError) and not err.transient
    assert err.status == 400 and err.code == "missing_signature"
    assert str(err).startswith("missing_signature:")
    with pytest.raises(ValueError):
        WebhookRejected("something_else", "no such reason")
