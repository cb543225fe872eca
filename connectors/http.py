"""The one module all outbound HTTP goes through.

Every connector calls :func:`send`; nothing else in the project talks to ``httpx`` directly.
That gives one place for:

* a mandatory timeout on every request (keyword, no default);
* the ``X-Correlation-ID`` header, taken from the :data:`correlation_id` context variable the
  engine sets around each unit of work (:func:`correlation` / :func:`set_correlation_id`);
* JSON bodies encoded with ``simplejson(use_decimal=True)`` -- ``Decimal`` goes out as an exact
  JSON number, and a ``float`` anywhere in a body is refused;
* one INFO log line per request (method, redacted URL, status, elapsed, correlation id);
  credentials never reach the log;
* classification of failures into the ``connectors.base`` error classes:

  ====================================  ==========================================
  timeout (connect/read/write/pool)     ``TransientError(code="timeout")``
  connection refused/reset, bad framing ``TransientError(code="connection")``
  429                                   ``TransientError`` + ``retry_after``
  5xx                                   ``TransientError`` (+ ``retry_after`` if sent)
  401, 403                              ``AuthError``
  other 4xx (and unexpected 3xx)        ``PermanentError``
  ====================================  ==========================================

  HTTP errors carry ``status``, ``code="http_<status>"`` and the parsed JSON body (amounts as
  ``Decimal``) in ``details``; connectors refine the message/code from vendor error shapes.

* :func:`backoff_delay`, the retry schedule the engine uses.

A per-process ``httpx.Client`` is created lazily and shared for connection reuse; it is
re-created after ``fork`` (worker processes must not share sockets with their parent).
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import simplejson

from connectors.base import AuthError, ConnectorError, PermanentError, TransientError

logger = logging.getLogger("connectors.http")

CORRELATION_HEADER = "X-Correlation-ID"
USER_AGENT = "revenue-control-tower/0.1 (+connectors.http)"
REDACTED = "[REDACTED]"

#: Correlation id of the unit of work in progress; ``None`` outside one.
correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

_SENSITIVE_NAME = re.compile(
    r"auth|token|secret|passw|pwd|api[-_]?key|signature|sig$|credential|cookie|session|"
    r"oauth|bearer|private",
    re.IGNORECASE,
)


# --- correlation id ----------------------------------------------------------------------


def set_correlation_id(cid: str | None) -> contextvars.Token[str | None]:
    """Set the correlation id for the current context; pass the token to ``reset_...``."""
    return correlation_id.set(cid)


def reset_correlation_id(token: contextvars.Token[str | None]) -> None:
    """Restore the correlation id that was current before ``set_correlation_id``."""
    correlation_id.reset(token)


def get_correlation_id() -> str | None:
    """The correlation id of the current context, if any."""
    return correlation_id.get()


@contextlib.contextmanager
def correlation(cid: str | None) -> Iterator[str | None]:
    """``with correlation("run-42"):`` -- every request inside sends ``X-Correlation-ID``."""
    token = correlation_id.set(cid)
    try:
        yield cid
    finally:
        correlation_id.reset(token)


# --- shared client -----------------------------------------------------------------------

_client: httpx.Client | None = None
_client_pid: int | None = None
_client_lock = threading.Lock()


def get_client() -> httpx.Client:
    """The per-process shared ``httpx.Client`` (created on first use, re-created after fork)."""
    global _client, _client_pid
    pid = os.getpid()
    client = _client
    if client is not None and _client_pid == pid and not client.is_closed:
        return client
    with _client_lock:
        if _client is None or _client_pid != pid or _client.is_closed:
            # After fork the parent's client (and its sockets) must not be touched: drop it.
            _client = httpx.Client(
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
            _client_pid = pid
        return _client


def close_client() -> None:
    """Close the shared client (tests, shutdown). The next ``send`` creates a new one."""
    global _client, _client_pid
    with _client_lock:
        if _client is not None and _client_pid == os.getpid():
            _client.close()
        _client = None
        _client_pid = None


# --- redaction ---------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` with userinfo and credential-like query parameters replaced by [REDACTED]."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, REDACTED if _SENSITIVE_NAME.search(k) else v) for k, v in pairs], safe="[]:"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Copy of ``headers`` with Authorization, cookies, tokens and keys redacted."""
    return {k: (REDACTED if _SENSITIVE_NAME.search(k) else v) for k, v in headers.items()}


# --- JSON --------------------------------------------------------------------------------


def _reject_floats(value: Any, path: str = "$") -> None:
    if isinstance(value, float):
        raise TypeError(f"float in JSON body at {path}: use Decimal or int minor units")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _reject_floats(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _reject_floats(v, f"{path}[{i}]")


def dumps(value: Any) -> str:
    """JSON text with ``Decimal`` as exact numbers; raises ``TypeError`` on any float."""
    _reject_floats(value)
    return simplejson.dumps(value, use_decimal=True, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | bytes) -> Any:
    """Parse JSON with every non-integer number as ``Decimal`` (never float)."""
    return simplejson.loads(text, use_decimal=True)


def parse_json(response: httpx.Response) -> Any:
    """The response body parsed by :func:`loads`; ``None`` for an empty body.

    Raises ``ValueError`` (``simplejson.JSONDecodeError``) when the body is not JSON.
    """
    content = response.content
    if not content.strip():
        return None
    return loads(content)


def _error_body(response: httpx.Response) -> Any:
    try:
        return parse_json(response)
    except ValueError:
        text = response.text
        return {"raw": text[:2000]} if text else None


def _error_summary(body: Any) -> str:
    """Best human-readable text from common error shapes (RFC 9457, {"error": ...}, ...)."""
    if not isinstance(body, Mapping):
        return ""
    details = body.get("o:errorDetails")
    if isinstance(details, list) and details:
        texts = [str(d.get("detail", "")) for d in details if isinstance(d, Mapping)]
        if any(texts):
            return "; ".join(t for t in texts if t)
    err = body.get("error")
    if isinstance(err, Mapping):
        return str(err.get("message") or err.get("code") or "")
    for key in ("detail", "message", "error_description", "error", "title", "raw"):
        if body.get(key):
            return str(body[key])
    return ""


# --- Retry-After and backoff -------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date).

    Returns ``None`` for a missing or unparseable header; never negative.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(Decimal(value))
    except ArithmeticError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**attempt)]``.
    When the remote sent ``retry_after`` the result is never less than it (even above
    ``cap``: the server's word wins). ``rng`` makes the jitter deterministic in tests.
    """
    if base < 0 or cap < 0:
        raise ValueError("base and cap must be >= 0")
    exp = min(max(0, attempt), 60)  # bounded: 2**60 * base overflows nothing and caps anyway
    ceiling = min(cap, base * (2**exp))
    delay = (rng or random).uniform(0.0, ceiling) if ceiling > 0 else 0.0
    if retry_after is not None and retry_after > delay:
        delay = float(retry_after)
    return delay


# --- send --------------------------------------------------------------------------------


def _classify_status(response: httpx.Response, method: str, safe_url: str) -> ConnectorError:
    status = response.status_code
    body = _error_body(response)
    summary = _error_summary(body)
    reason = response.reason_phrase or ""
    message = f"{method} {safe_url} -> {status} {reason}".rstrip()
    if summary:
        message = f"{message}: {summary}"
    code = f"http_{status}"
    if status == 429 or status >= 500:
        return TransientError(
            message,
            status=status,
            code=code,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            details=body,
        )
    if status in (401, 403):
        return AuthError(message, status=status, code=code, details=body)
    return PermanentError(message, status=status, code=code, details=body)


def send(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    auth_token: str | None = None,
    client: httpx.Client | None = None,
    params: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Send one HTTP request and return the 2xx response, or raise a ``ConnectorError``.

    ``timeout`` (seconds) applies to connect, read, write and pool acquisition. ``json_body``
    is encoded by :func:`dumps` (Decimal exact, floats refused). ``auth_token`` becomes
    ``Authorization: Bearer ...``. ``client`` overrides the shared client (tests, custom TLS).
    No retries happen here: the engine decides, using the error class and
    :func:`backoff_delay`.
    """
    if timeout is None or timeout <= 0:
        raise ValueError("timeout must be a positive number of seconds")
    method = method.upper()
    req_headers: dict[str, str] = {"Accept": "application/json"}
    if headers:
        req_headers.update(headers)
    cid = correlation_id.get()
    if cid:
        req_headers[CORRELATION_HEADER] = cid
    if auth_token is not None:
        req_headers["Authorization"] = f"Bearer {auth_token}"
    content: bytes | None = None
    if json_body is not None:
        content = dumps(json_body).encode("utf-8")
        req_headers.setdefault("Content-Type", "application/json")

    http = client if client is not None else get_client()
    full_url = url
    if params:
        full_url = str(httpx.URL(url).copy_merge_params(dict(params)))
    safe_url = redact_url(full_url)
    logger.debug("%s %s headers=%s", method, safe_url, redact_headers(req_headers))

    started = time.monotonic()
    try:
        response = http.request(
            method, full_url, content=content, headers=req_headers, timeout=timeout
        )
    except httpx.TimeoutException as exc:
        elapsed = (time.monotonic() - started) * 1000
        logger.info(
            "%s %s -> timeout (%s) in %.0fms cid=%s",
            method,
            safe_url,
            type(exc).__name__,
            elapsed,
            cid,
        )
        raise TransientError(
            f"{method} {safe_url} timed out after {timeout}s ({type(exc).__name__})",
            code="timeout",
            details={"exception": type(exc).__name__},
        ) from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
        elapsed = (time.monotonic() - started) * 1000
        logger.info(
            "%s %s -> connection error (%s) in %.0fms cid=%s",
            method,
            safe_url,
            type(exc).__name__,
            elapsed,
            cid,
        )
        raise TransientError(
            f"{method} {safe_url} connection failed: {type(exc).__name__}: {exc}",
            code="connection",
            details={"exception": type(exc).__name__},
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
        raise PermanentError(
            f"{method} {safe_url} cannot be sent: {type(exc).__name__}: {exc}",
            code="invalid_request",
            details={"exception": type(exc).__name__},
        ) from exc

    elapsed = (time.monotonic() - started) * 1000
    logger.info(
        "%s %s -> %s in %.0fms cid=%s", method, safe_url, response.status_code, elapsed, cid
    )
    if response.is_success:
        return response
    raise _classify_status(response, method, safe_url)
