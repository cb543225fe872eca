"""NetSuite connector over the SuiteTalk REST record service (``/services/rest/record/v1``).

Writes are upserts by external id (``PUT .../journalEntry/eid:<external id>``), so a retried
post after a timeout updates the same record instead of creating a second one. NetSuite
answers writes with ``204 No Content`` and a ``Location`` header whose last path segment is
the record's internal id.

Many records at once: REST batch operations (``PUT .../journalEntry`` with ``Prefer:
respond-async`` and a ``type=collection`` body of up to 100 records, each upserted by its
``externalId``) run as an async job; the client polls the job, then reads the internal ids
back in one SuiteQL query (``POST /services/rest/query/v1/suiteql``), or, when some record
failed, each task's result. SuiteQL also reads many entries back by external id at once.

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

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
SUITEQL_PATH = "/services/rest/query/v1/suiteql"
COLLECTION_CONTENT_TYPE = "application/vnd.oracle.resource+json; type=collection"
#: Records per REST batch request (NetSuite's limit) and external ids per SuiteQL query.
BATCH_LIMIT = 100
SUITEQL_PAGE = 1000
#: Waits between reads of a batch job's status; then the batch counts as failed (transient).
ASYNC_POLL_DELAYS = (0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
JOURNAL_ENTRY = "journalEntry"
CUSTOMER = "customer"
SUITEQL_TABLES = {JOURNAL_ENTRY: "transaction", CUSTOMER: "customer"}


@dataclass(frozen=True)
class CustomerRecord:
    """What ``upsert_customers`` writes for one customer."""

    external_id: str
    name: str
    subsidiary: str
    email: str = ""


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

    @property
    def batch_limit(self) -> int:
        """Records per batch request (``post_journal_entries`` splits larger lists)."""
        return BATCH_LIMIT

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
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return nshttp.send(
                method,
                url,
                json_body=json_body,
                headers=headers,
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
        return self._json(response, f"get {record_type} {external_id!r}")

    # --- batches -------------------------------------------------------------------------

    def _absolute(self, location: str) -> str:
        return location if "://" in location else f"{self.base_url}{location}"

    def _json(self, response: httpx.Response, action: str) -> dict[str, Any]:
        try:
            body = nshttp.parse_json(response)
        except ValueError as exc:
            raise TransientError(
                f"NetSuite {action}: response is not JSON",
                status=response.status_code,
                code="INVALID_RESPONSE",
            ) from exc
        if not isinstance(body, dict):
            raise TransientError(
                f"NetSuite {action}: unexpected body",
                status=response.status_code,
                code="INVALID_RESPONSE",
                details=body,
            )
        return body

    def _upsert_batch(
        self,
        record_type: str,
        bodies: Sequence[dict[str, Any]],
        *,
        params: Mapping[str, str] | None = None,
    ) -> list[PostResult | ConnectorError]:
        """Upsert up to ``BATCH_LIMIT`` records in one REST batch request (async), wait for
        its job, and return each record's outcome in order. A request that fails as a whole
        raises; so does a job still unfinished after the polling budget (nothing is known of
        its records then: callers read back by external id before writing again)."""
        external_ids = [str(body["externalId"]) for body in bodies]
        for external_id in external_ids:
            _check_external_id(external_id)
        action = f"batch upsert of {len(bodies)} {record_type} records"
        response = self._send(
            "PUT",
            self._url(record_type),
            action,
            json_body={"items": list(bodies)},
            params=params,
            headers={
                "Prefer": "respond-async",
                "Content-Type": COLLECTION_CONTENT_TYPE,
                "X-NetSuite-Idempotency-Key": str(uuid.uuid4()),
            },
        )
        location = response.headers.get("Location")
        if not location:
            raise TransientError(
                f"NetSuite {action}: {response.status_code} without the job's Location",
                status=response.status_code,
                code="NO_LOCATION",
            )
        job_url = self._absolute(location)
        job = self._job_wait(job_url, action)
        if job.get("progress") == "succeeded":
            ids = self._ids_by_external_id(record_type, external_ids)
            return [
                PostResult(document_id=ids[e], external_id=e)
                if e in ids
                else TransientError(
                    f"NetSuite {action}: the job succeeded but {e!r} is not found yet",
                    code="NOT_VISIBLE",
                )
                for e in external_ids
            ]
        return self._task_outcomes(job_url, record_type, external_ids, action)

    def _job_wait(self, job_url: str, action: str) -> dict[str, Any]:
        for delay in (*ASYNC_POLL_DELAYS, None):
            job = self._json(self._send("GET", job_url, f"{action}: job status"), action)
            if job.get("completed"):
                return job
            if delay is None:
                break
            time.sleep(delay)
        raise TransientError(
            f"NetSuite {action}: the job at {job_url} had not finished after "
            f"{sum(ASYNC_POLL_DELAYS):.1f} s",
            code="ASYNC_PENDING",
        )

    def _task_outcomes(
        self, job_url: str, record_type: str, external_ids: list[str], action: str
    ) -> list[PostResult | ConnectorError]:
        """Each task's result, for a job where some record failed: the response its
        one-record request would have had."""
        tasks = self._json(self._send("GET", f"{job_url}/task", f"{action}: tasks"), action)
        items = tasks.get("items") or []
        if len(items) != len(external_ids):
            raise TransientError(
                f"NetSuite {action}: the job lists {len(items)} tasks for "
                f"{len(external_ids)} records",
                code="INVALID_RESPONSE",
            )
        outcomes: list[PostResult | ConnectorError] = []
        for item, external_id in zip(items, external_ids, strict=True):
            task_url = f"{job_url}/task/{item.get('id')}"
            one = f"upsert {record_type} {external_id!r}"
            try:
                result = self._send("GET", f"{task_url}/result", one)
            except ConnectorError as exc:
                outcomes.append(exc)
                continue
            document_id = _id_from_location(result.headers.get("Location"))
            outcomes.append(
                PostResult(document_id=document_id, external_id=external_id)
                if document_id
                else TransientError(
                    f"NetSuite {one}: the task result has no Location", code="NO_LOCATION"
                )
            )
        return outcomes

    def _ids_by_external_id(self, record_type: str, external_ids: Sequence[str]) -> dict[str, str]:
        """Internal ids of the records with these external ids (absent ones left out), by
        SuiteQL: one query per ``BATCH_LIMIT`` ids."""
        table = SUITEQL_TABLES[record_type]
        found: dict[str, str] = {}
        wanted = list(dict.fromkeys(external_ids))
        for start in range(0, len(wanted), BATCH_LIMIT):
            chunk = wanted[start : start + BATCH_LIMIT]
            asked = set(chunk)
            for external_id in chunk:
                _check_external_id(external_id)
            values = ", ".join("'" + e.replace("'", "''") + "'" for e in chunk)
            query = f"SELECT id, externalid FROM {table} WHERE externalid IN ({values})"  # noqa: S608
            offset = 0
            while True:
                action = f"SuiteQL on {table} ({len(chunk)} external ids)"
                page = self._json(
                    self._send(
                        "POST",
                        f"{self.base_url}{SUITEQL_PATH}",
                        action,
                        json_body={"q": query},
                        params={"limit": str(SUITEQL_PAGE), "offset": str(offset)},
                        headers={"Prefer": "transient"},
                    ),
                    action,
                )
                for row in page.get("items") or []:
                    if row.get("externalid") in asked and row.get("id") is not None:
                        found[str(row["externalid"])] = str(row["id"])
                if not page.get("hasMore"):
                    break
                offset += SUITEQL_PAGE
        return found

    def _upsert_many(
        self,
        record_type: str,
        bodies: Sequence[dict[str, Any] | ConnectorError],
        *,
        params: Mapping[str, str] | None = None,
    ) -> list[PostResult | ConnectorError]:
        """``_upsert_batch`` over any number of records, ``BATCH_LIMIT`` per request. A body
        given as an error is that record's outcome, not sent. The records of a request that
        failed as a whole share its one exception object (one call, one failure)."""
        outcomes: list[PostResult | ConnectorError | None] = [
            body if isinstance(body, ConnectorError) else None for body in bodies
        ]
        to_send = [(i, b) for i, b in enumerate(bodies) if not isinstance(b, ConnectorError)]
        for start in range(0, len(to_send), BATCH_LIMIT):
            chunk = to_send[start : start + BATCH_LIMIT]
            try:
                results: list[PostResult | ConnectorError] = self._upsert_batch(
                    record_type, [body for _, body in chunk], params=params
                )
            except ConnectorError as exc:
                results = [exc] * len(chunk)
            for (i, _), result in zip(chunk, results, strict=True):
                outcomes[i] = result
        return [outcome for outcome in outcomes if outcome is not None]

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

    def post_journal_entries(
        self, entries: Sequence[LedgerEntry]
    ) -> list[PostResult | ConnectorError]:
        """``post_journal_entry`` for many entries, ``BATCH_LIMIT`` per REST batch request:
        each entry's outcome in order, a ``PostResult`` or the error for that entry (an entry
        NetSuite would refuse is refused here and not sent). The entries of a request that
        failed as a whole share its one exception object."""
        bodies: list[dict[str, Any] | ConnectorError] = []
        for entry in entries:
            try:
                bodies.append(self.journal_entry_body(entry))
            except PermanentError as exc:
                bodies.append(exc)
        return self._upsert_many(JOURNAL_ENTRY, bodies, params={"replace": "line"})

    def find_journal_entries(self, external_ids: Sequence[str]) -> dict[str, PostResult]:
        """The journal entries NetSuite holds under these external ids (absent ones left
        out), read by SuiteQL in one query per ``BATCH_LIMIT`` ids."""
        ids = self._ids_by_external_id(JOURNAL_ENTRY, external_ids)
        return {e: PostResult(document_id=d, external_id=e) for e, d in ids.items()}

    def get_journal_entry(self, external_id: str) -> dict[str, Any] | None:
        """The full journal entry record (lines expanded, amounts ``Decimal``) or ``None``."""
        return self._get(JOURNAL_ENTRY, external_id)

    # --- customers -----------------------------------------------------------------------

    def upsert_customer(
        self, external_id: str, *, name: str, subsidiary: str, email: str = ""
    ) -> PostResult:
        """Create or update the customer with ``external_id`` (company name, subsidiary)."""
        body = self.customer_body(external_id, name=name, subsidiary=subsidiary, email=email)
        return self._upsert(CUSTOMER, external_id, body)

    def upsert_customers(
        self, customers: Sequence[CustomerRecord]
    ) -> list[PostResult | ConnectorError]:
        """``upsert_customer`` for many, ``BATCH_LIMIT`` per REST batch request; outcomes
        as ``post_journal_entries`` gives them."""
        bodies: list[dict[str, Any] | ConnectorError] = []
        for c in customers:
            try:
                bodies.append(
                    self.customer_body(
                        c.external_id, name=c.name, subsidiary=c.subsidiary, email=c.email
                    )
                )
            except PermanentError as exc:
                bodies.append(exc)
        return self._upsert_many(CUSTOMER, bodies)

    @staticmethod
    def customer_body(
        external_id: str, *, name: str, subsidiary: str, email: str = ""
    ) -> dict[str, Any]:
        """The REST body of a customer; ``PermanentError`` when NetSuite would refuse it."""
        _check_external_id(external_id)
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
        return body

    def get_customer(self, external_id: str) -> dict[str, Any] | None:
        """The customer record for ``external_id`` or ``None``."""
        return self._get(CUSTOMER, external_id)
