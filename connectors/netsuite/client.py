"""NetSuite connector over the SuiteTalk REST record service (``/services/rest/record/v1``).

Writes are upserts by external id (``PUT .../journalEntry/eid:<external id>``), so a retried
post after a timeout updates the same record instead of creating a second one. NetSuite
answers writes with ``204 No Content`` and a ``Location`` header whose last path segment is
the record's internal id.

Error bodies follow RFC 9457 plus Oracle extensions::

    {"type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
     "title": "Bad Request", "status": 400,
     "o:errorDetails": [{"detail": "...", "o:errorCode": "USER_ERROR", "o:errorPath": "..."}]}

``o:errorCode`` becomes ``ConnectorError.code`` and the ``detail`` texts its message; the
error class comes from the HTTP status (see ``connectors.http``), except that NetSuite's
request-limit codes are always transient.

Authentication is a bearer token (OAuth 2.0 access token). Amounts go out as exact JSON
numbers built from integer minor units; nothing here ever holds a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from connectors import currency
from connectors import http as nshttp
from connectors.base import (
    ConnectorError,
    LedgerEntry,
    PermanentError,
    PostResult,
    TransientError,
)

RECORD_PATH = "/services/rest/record/v1"
JOURNAL_ENTRY = "journalEntry"
CUSTOMER = "customer"

#: NetSuite error codes that mean "try again later" whatever the HTTP status.
TRANSIENT_CODES = frozenset(
    {
        "CONCURRENCY_LIMIT_EXCEEDED",
        "SSS_REQUEST_LIMIT_EXCEEDED",
        "WS_REQUEST_BLOCKED",
        "WS_CONCUR_SESSION_DISALLWD",
        "REQUEST_LIMIT_EXCEEDED",
    }
)
#: Codes meaning "no such record" (404 normally; some endpoints answer 400).
NOT_FOUND_CODES = frozenset({"NONEXISTENT_ID", "RCRD_DSNT_EXIST", "NONEXISTENT_EXT_ID"})


def netsuite_error_code(body: Any) -> str:
    """First ``o:errorCode`` of a NetSuite error body, or ``""``."""
    if isinstance(body, Mapping):
        for item in body.get("o:errorDetails") or ():
            if isinstance(item, Mapping) and item.get("o:errorCode"):
                return str(item["o:errorCode"])
        if body.get("o:errorCode"):
            return str(body["o:errorCode"])
    return ""


def netsuite_error_detail(body: Any) -> str:
    """All ``detail`` texts of a NetSuite error body joined with ``"; "``."""
    if not isinstance(body, Mapping):
        return ""
    texts = [
        str(item["detail"])
        for item in body.get("o:errorDetails") or ()
        if isinstance(item, Mapping) and item.get("detail")
    ]
    if not texts and body.get("detail"):
        texts.append(str(body["detail"]))
    return "; ".join(texts)


def _refine(exc: ConnectorError, action: str) -> ConnectorError:
    """Re-state an HTTP-level error in NetSuite's terms (code, detail)."""
    ns_code = netsuite_error_code(exc.details)
    if not ns_code and exc.status is None:
        return exc  # timeout / connection: nothing NetSuite-specific to add
    detail = netsuite_error_detail(exc.details)
    title = exc.details.get("title", "") if isinstance(exc.details, Mapping) else ""
    status = f"{exc.status} {title}".strip() if exc.status else ""
    message = f"NetSuite {action} failed"
    if status:
        message += f" ({status})"
    if detail:
        message += f": {detail}"
    if ns_code:
        message += f" [{ns_code}]"
    cls: type[ConnectorError] = type(exc)
    if ns_code in TRANSIENT_CODES:
        cls = TransientError
    return cls(
        message,
        status=exc.status,
        code=ns_code or exc.code,
        retry_after=exc.retry_after,
        details=exc.details,
    )


def _is_not_found(exc: ConnectorError) -> bool:
    return exc.status == 404 or (
        exc.status == 400 and netsuite_error_code(exc.details) in NOT_FOUND_CODES
    )


def _id_from_location(location: str | None) -> str:
    if not location:
        return ""
    path = urlsplit(location).path.rstrip("/")
    return path.rsplit("/", 1)[-1] if path else ""


def _check_external_id(external_id: str) -> None:
    if not isinstance(external_id, str) or not external_id.strip():
        raise PermanentError("external id must be a non-empty string", code="INVALID_EXTERNAL_ID")


class NetSuiteClient:
    """ERP connector for NetSuite (implements ``connectors.base.ErpConnector``)."""

    system = "netsuite"

    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        """``base_url`` is the account's REST host, e.g.
        ``https://1234567.suitetalk.api.netsuite.com`` (or the emulator's URL)."""
        if not base_url:
            raise ValueError("base_url is required")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._client = client

    def __repr__(self) -> str:  # never show the token
        return f"NetSuiteClient({self.base_url!r})"

    # --- plumbing ------------------------------------------------------------------------

    def _url(self, record_type: str, ref: str = "") -> str:
        url = f"{self.base_url}{RECORD_PATH}/{record_type}"
        return f"{url}/{ref}" if ref else url

    @staticmethod
    def _eid(external_id: str) -> str:
        return "eid:" + quote(external_id, safe="")

    def _send(
        self,
        method: str,
        url: str,
        action: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return nshttp.send(
                method,
                url,
                json_body=json_body,
                timeout=self.timeout,
                auth_token=self._token,
                client=self._client,
                params=params,
            )
        except ConnectorError as exc:
            refined = _refine(exc, action)
            if refined is exc:
                raise
            raise refined from exc

    def _upsert(
        self,
        record_type: str,
        external_id: str,
        body: dict[str, Any],
        *,
        params: Mapping[str, str] | None = None,
    ) -> PostResult:
        _check_external_id(external_id)
        action = f"upsert {record_type} {external_id!r}"
        response = self._send(
            "PUT",
            self._url(record_type, self._eid(external_id)),
            action,
            json_body=body,
            params=params,
        )
        document_id = _id_from_location(response.headers.get("Location"))
        if not document_id:
            # A 2xx without Location should not happen; read back rather than guess.
            found = self._get(record_type, external_id)
            document_id = str(found["id"]) if found and found.get("id") else ""
        if not document_id:
            raise PermanentError(
                f"NetSuite {action}: {response.status_code} without a Location header",
                status=response.status_code,
                code="NO_LOCATION",
            )
        return PostResult(document_id=document_id, external_id=external_id)

    def _get(self, record_type: str, external_id: str) -> dict[str, Any] | None:
        _check_external_id(external_id)
        try:
            response = self._send(
                "GET",
                self._url(record_type, self._eid(external_id)),
                f"get {record_type} {external_id!r}",
                params={"expandSubResources": "true"},
            )
        except ConnectorError as exc:
            if _is_not_found(exc):
                return None
            raise
        try:
            record = nshttp.parse_json(response)
        except ValueError as exc:
            raise TransientError(
                f"NetSuite get {record_type} {external_id!r}: response is not JSON",
                status=response.status_code,
                code="INVALID_RESPONSE",
            ) from exc
        if not isinstance(record, dict):
            raise TransientError(
                f"NetSuite get {record_type} {external_id!r}: unexpected body",
                status=response.status_code,
                code="INVALID_RESPONSE",
                details=record,
            )
        return record

    # --- journal entries -----------------------------------------------------------------

    @staticmethod
    def journal_entry_body(entry: LedgerEntry) -> dict[str, Any]:
        """The REST body for ``entry``; raises ``PermanentError`` for an entry NetSuite
        would (or should) reject: unbalanced, empty, bad lines, wrong exponent."""
        _check_external_id(entry.external_id)
        try:
            expected = currency.exponent(entry.currency)
        except ValueError as exc:
            raise PermanentError(str(exc), code="INVALID_CURRENCY") from exc
        if entry.exponent != expected:
            raise PermanentError(
                f"entry {entry.external_id!r}: exponent {entry.exponent} does not match "
                f"{entry.currency} ({expected})",
                code="INVALID_CURRENCY",
            )
        if not entry.subsidiary:
            raise PermanentError(f"entry {entry.external_id!r}: no subsidiary", code="INVALID")
        if not entry.lines:
            raise PermanentError(f"entry {entry.external_id!r}: no lines", code="INVALID")
        items: list[dict[str, Any]] = []
        for n, line in enumerate(entry.lines):
            where = f"entry {entry.external_id!r} line {n}"
            if not line.account:
                raise PermanentError(f"{where}: no account", code="INVALID")
            if line.debit_minor < 0 or line.credit_minor < 0:
                raise PermanentError(f"{where}: negative amount", code="INVALID")
            if (line.debit_minor == 0) == (line.credit_minor == 0):
                raise PermanentError(
                    f"{where}: exactly one of debit/credit must be non-zero", code="INVALID"
                )
            item: dict[str, Any] = {"account": {"id": line.account}}
            if line.debit_minor:
                item["debit"] = currency.minor_to_decimal(line.debit_minor, entry.currency)
            else:
                item["credit"] = currency.minor_to_decimal(line.credit_minor, entry.currency)
            if line.memo:
                item["memo"] = line.memo
            if line.customer_ref:
                item["entity"] = {"id": line.customer_ref}
            items.append(item)
        if not entry.is_balanced():
            debits = sum(ln.debit_minor for ln in entry.lines)
            credits = sum(ln.credit_minor for ln in entry.lines)
            raise PermanentError(
                f"entry {entry.external_id!r} is unbalanced: debits {debits} != credits "
                f"{credits} ({entry.currency} minor units)",
                code="UNBALANCED",
                details={"debit_minor": debits, "credit_minor": credits},
            )
        return {
            "externalId": entry.external_id,
            "subsidiary": {"id": entry.subsidiary},
            "currency": {"refName": currency.normalize(entry.currency)},
            "tranDate": entry.tran_date.isoformat(),
            "memo": entry.memo,
            "line": {"items": items},
        }

    def post_journal_entry(self, entry: LedgerEntry) -> PostResult:
        """Upsert ``entry`` under its external id; a repeat post updates the same record.

        ``replace=line`` makes the lines of the request replace the stored lines instead of
        being merged with them, so a re-post is exactly idempotent.
        """
        body = self.journal_entry_body(entry)
        return self._upsert(JOURNAL_ENTRY, entry.external_id, body, params={"replace": "line"})

    def find_journal_entry(self, external_id: str) -> PostResult | None:
        """``PostResult`` for the journal entry with ``external_id``; ``None`` if absent."""
        record = self._get(JOURNAL_ENTRY, external_id)
        if record is None:
            return None
        return PostResult(document_id=str(record.get("id", "")), external_id=external_id)

    def get_journal_entry(self, external_id: str) -> dict[str, Any] | None:
        """The full journal entry record (lines expanded, amounts ``Decimal``) or ``None``."""
        return self._get(JOURNAL_ENTRY, external_id)

    # --- customers -----------------------------------------------------------------------

    def upsert_customer(
        self, external_id: str, *, name: str, subsidiary: str, email: str = ""
    ) -> PostResult:
        """Create or update the customer with ``external_id`` (company name, subsidiary)."""
        if not name:
            raise PermanentError(f"customer {external_id!r}: name is required", code="INVALID")
        if not subsidiary:
            raise PermanentError(
                f"customer {external_id!r}: subsidiary is required", code="INVALID"
            )
        body: dict[str, Any] = {
            "externalId": external_id,
            "companyName": name,
            "subsidiary": {"id": subsidiary},
        }
        if email:
            body["email"] = email
        return self._upsert(CUSTOMER, external_id, body)

    def get_customer(self, external_id: str) -> dict[str, Any] | None:
        """The customer record for ``external_id`` or ``None``."""
        return self._get(CUSTOMER, external_id)
