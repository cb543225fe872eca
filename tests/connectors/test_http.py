import email.utils
import logging
import random
import socket
import time
from decimal import Decimal

import httpx
import pytest

from connectors import http
from connectors.base import AuthError, PermanentError, TransientError


class Recorder:
    """httpx.MockTransport handler that records requests and answers from a script."""

    def __init__(self, respond=None):
        self.requests: list[httpx.Request] = []
        self.respond = respond or (lambda request: httpx.Response(200, json={"ok": True}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def answer(status, *, body=None, headers=None):
    def respond(request):
        content = b"" if body is None else body.encode() if isinstance(body, str) else body
        return httpx.Response(status, content=content, headers=headers or {})

    return Recorder(respond)


# --- correlation id ----------------------------------------------------------------------


def test_correlation_header_sent_only_when_set():
    rec = Recorder()
    client = rec.client()
    http.send("GET", "https://erp.test/a", timeout=1, client=client)
    with http.correlation("run-1:inv-9") as cid:
        assert cid == "run-1:inv-9"
        assert http.get_correlation_id() == "run-1:inv-9"
        http.send("GET", "https://erp.test/b", timeout=1, client=client)
    http.send("GET", "https://erp.test/c", timeout=1, client=client)
    assert [r.headers.get("X-Correlation-ID") for r in rec.requests] == [None, "run-1:inv-9", None]
    assert http.get_correlation_id() is None


def test_set_and_reset_correlation_id():
    token = http.set_correlation_id("outer")
    try:
        with http.correlation("inner"):
            assert http.get_correlation_id() == "inner"
        assert http.get_correlation_id() == "outer"
    finally:
        http.reset_correlation_id(token)
    assert http.get_correlation_id() is None


# --- request encoding --------------------------------------------------------------------


def test_json_body_decimal_is_exact_and_auth_header_set():
    rec = Recorder()
    http.send(
        "put",
        "https://erp.test/x",
        json_body={"debit": Decimal("10.50"), "n": 3, "big": Decimal("12345678901234567890.123")},
        timeout=1,
        auth_token="tok",
        client=rec.client(),
    )
    req = rec.requests[0]
    assert req.method == "PUT"
    assert req.content == b'{"debit":10.50,"n":3,"big":12345678901234567890.123}'
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Authorization"] == "Bearer tok"


def test_float_in_body_is_refused_before_sending():
    rec = Recorder()
    with pytest.raises(TypeError, match=r"\$\.line\[0\]\.debit"):
        http.send(
            "POST",
            "https://erp.test/x",
            json_body={"line": [{"debit": 10.5}]},
            timeout=1,
            client=rec.client(),
        )
    assert rec.requests == []


def test_timeout_is_mandatory():
    with pytest.raises(TypeError):
        http.send("GET", "https://erp.test/x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="timeout"):
        http.send("GET", "https://erp.test/x", timeout=0)


def test_params_are_merged():
    rec = Recorder()
    http.send("GET", "https://erp.test/x?a=1", params={"b": "2"}, timeout=1, client=rec.client())
    assert rec.requests[0].url.params == httpx.QueryParams({"a": "1", "b": "2"})


def test_success_response_body_parses_to_decimal():
    rec = answer(200, body='{"amount": 1.050, "n": 2}')
    resp = http.send("GET", "https://erp.test/x", timeout=1, client=rec.client())
    data = http.parse_json(resp)
    assert data == {"amount": Decimal("1.050"), "n": 2}
    assert str(data["amount"]) == "1.050"


# --- classification ----------------------------------------------------------------------


def test_429_with_retry_after_seconds():
    rec = answer(429, body='{"title": "Too Many Requests"}', headers={"Retry-After": "2"})
    with pytest.raises(TransientError) as info:
        http.send("GET", "https://erp.test/x", timeout=1, client=rec.client())
    err = info.value
    assert err.transient is True
    assert (err.status, err.code, err.retry_after) == (429, "http_429", 2.0)
    assert err.details == {"title": "Too Many Requests"}


def test_429_with_retry_after_http_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    rec = answer(429, headers={"Retry-After": when})
    with pytest.raises(TransientError) as info:
        http.send("GET", "https://erp.test/x", timeout=1, client=rec.client())
    assert 25 <= info.value.retry_after <= 31


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_transient(status):
    rec = answer(status, body='{"detail": "down"}')
    with pytest.raises(TransientError) as info:
        http.send("POST", "https://erp.test/x", json_body={}, timeout=1, client=rec.client())
    assert info.value.status == status
    assert info.value.details == {"detail": "down"}
    assert "down" in info.value.message
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [401, 403])
def test_401_403_are_auth_errors(status):
    rec = answer(status, body='{"error": {"message": "bad key", "code": "auth"}}')
    with pytest.raises(AuthError) as info:
        http.send("GET", "https://erp.test/x", timeout=1, client=rec.client())
    assert info.value.transient is False
    assert info.value.status == status
    assert info.value.details == {"error": {"message": "bad key", "code": "auth"}}
    assert "bad key" in str(info.value)


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_4xx_are_permanent(status):
    body = '{"o:errorDetails": [{"detail": "Amount 1.50 invalid", "o:errorCode": "USER_ERROR"}]}'
    rec = answer(status, body=body)
    with pytest.raises(PermanentError) as info:
        http.send("GET", "https://erp.test/x", timeout=1, client=rec.client())
    err = info.value
    assert (err.status, err.code) == (status, f"http_{status}")
    assert err.details["o:errorDetails"][0]["o:errorCode"] == "USER_ERROR"
    assert "Amount 1.50 invalid" in err.message


def test_non_json_error_body_kept_raw():
    rec = answer(502, body="<html>bad gateway</html>")
    with pytest.raises(TransientError) as info:
        http.send("GET", "https://erp.test/x", timeout=1, client=rec.client())
    assert info.value.details == {"raw": "<html>bad gateway</html>"}


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ReadTimeout("read timed out"), "timeout"),
        (httpx.ConnectTimeout("connect timed out"), "timeout"),
        (httpx.PoolTimeout("pool"), "timeout"),
        (httpx.ConnectError("refused"), "connection"),
        (httpx.ReadError("reset"), "connection"),
        (httpx.RemoteProtocolError("server disconnected"), "connection"),
    ],
)
def test_transport_errors_are_transient(exc, code):
    def boom(request):
        raise exc

    with pytest.raises(TransientError) as info:
        http.send("GET", "https://erp.test/x", timeout=1, client=Recorder(boom).client())
    assert info.value.code == code
    assert info.value.status is None
    assert info.value.details == {"exception": type(exc).__name__}
    assert info.value.__cause__ is exc


def test_real_connection_refused_is_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on ``port`` any more.
    with pytest.raises(TransientError) as info:
        http.send("GET", f"http://127.0.0.1:{port}/x", timeout=2)
    assert info.value.code == "connection"


# --- logging and redaction ---------------------------------------------------------------


def test_logs_one_info_line_without_credentials(caplog):
    rec = answer(204)
    caplog.set_level(logging.DEBUG, logger="connectors.http")
    with http.correlation("cid-42"):
        http.send(
            "PUT",
            "https://user:pw@erp.test/x?token=s3cret&keep=1",
            json_body={"a": 1},
            timeout=1,
            auth_token="super-secret-token",
            client=rec.client(),
        )
    info = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(info) == 1
    line = info[0].getMessage()
    assert line.startswith("PUT https://[REDACTED]@erp.test/x?token=[REDACTED]&keep=1 -> 204")
    assert "cid=cid-42" in line
    assert " in " in line and "ms" in line
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "super-secret-token" not in everything
    assert "s3cret" not in everything
    assert ":pw@" not in everything
    assert "[REDACTED]" in everything  # the DEBUG header dump redacts Authorization


def test_redact_headers():
    headers = {"Authorization": "Bearer x", "X-Api-Key": "k", "Cookie": "c", "Accept": "a"}
    assert http.redact_headers(headers) == {
        "Authorization": "[REDACTED]",
        "X-Api-Key": "[REDACTED]",
        "Cookie": "[REDACTED]",
        "Accept": "a",
    }


# --- Retry-After and backoff -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        ("0", 0.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("NaN", None),
    ],
)
def test_parse_retry_after(value, expected):
    assert http.parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    now = 1_700_000_000.0
    value = email.utils.formatdate(now + 120, usegmt=True)
    assert http.parse_retry_after(value, now=now) == 120.0
    past = email.utils.formatdate(now - 120, usegmt=True)
    assert http.parse_retry_after(past, now=now) == 0.0


class MaxRng(random.Random):
    """Always picks the top of the jitter range."""

    def uniform(self, a, b):
        return b


def test_backoff_grows_exponentially_up_to_cap():
    rng = MaxRng()
    delays = [backoff(n, rng) for n in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def backoff(attempt, rng, retry_after=None):
    return http.backoff_delay(attempt, base=0.5, cap=10.0, retry_after=retry_after, rng=rng)


def test_backoff_full_jitter_stays_within_bounds():
    rng = random.Random(1234)
    for attempt in range(0, 200):
        delay = http.backoff_delay(attempt, base=1.0, cap=30.0, retry_after=None, rng=rng)
        assert 0.0 <= delay <= min(30.0, 2.0**attempt)
    values = {
        round(http.backoff_delay(10, base=1.0, cap=30.0, retry_after=None), 6) for _ in range(50)
    }
    assert len(values) > 40  # jittered, not constant


def test_backoff_never_less_than_retry_after():
    rng = random.Random(7)
    for attempt in range(20):
        assert http.backoff_delay(attempt, base=0.1, cap=5.0, retry_after=2.0, rng=rng) >= 2.0
    # The server's Retry-After wins over the cap.
    assert http.backoff_delay(3, base=0.1, cap=5.0, retry_after=60.0, rng=rng) == 60.0
    # Above retry_after the jitter is kept.
    assert backoff(6, MaxRng(), retry_after=1.0) == 10.0


def test_backoff_huge_attempt_does_not_overflow():
    assert http.backoff_delay(10_000, base=1.0, cap=30.0, retry_after=None, rng=MaxRng()) == 30.0


# --- shared client -----------------------------------------------------------------------


def test_shared_client_is_reused_and_recreated_after_close():
    first = http.get_client()
    assert http.get_client() is first
    http.close_client()
    assert first.is_closed
    second = http.get_client()
    assert second is not first and not second.is_closed
