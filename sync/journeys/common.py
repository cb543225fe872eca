"""Steps every posting journey shares: post the entry to the ERP, then confirm it there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.utils import timezone

from connectors import http
from connectors.base import AuthError, ConnectorError, LedgerEntry, LedgerLine
from connectors.currency import exponent
from sync.errors import ConnectorHeldBack, DataDefect
from sync.journeys import StepContext, StepDef
from sync.models import ExceptionCase, GLAccount, JournalEntry
from sync.services.connector_health import ConnectorGuard

Cat = ExceptionCase.Category


def journeys_set_entity(assigned: list[tuple[StepContext, Any]]) -> None:
    """Record each journey's legal entity (``(ctx, entity)`` pairs): one update per entity,
    and the journey rows in hand updated too, for the steps that follow in this worker."""
    by_entity: dict[int, tuple[Any, list[StepContext]]] = {}
    for ctx, entity in assigned:
        by_entity.setdefault(entity.pk, (entity, []))[1].append(ctx)
    for entity, ctxs in by_entity.values():
        type(ctxs[0].journey).objects.filter(pk__in=[c.journey.pk for c in ctxs]).update(
            legal_entity=entity
        )
        for ctx in ctxs:
            ctx.journey.legal_entity = entity


def ledger_entry_for(entry: JournalEntry, numbers: dict[int, str] | None = None) -> LedgerEntry:
    """The canonical entry the ERP connector posts. ``numbers``: GL account numbers by id,
    when the caller has read them for many entries."""
    if numbers is None:
        numbers = dict(
            GLAccount.objects.filter(pk__in=entry.lines.values("account_id")).values_list(
                "pk", "number"
            )
        )
    return LedgerEntry(
        external_id=entry.external_id,
        subsidiary=entry.legal_entity.netsuite_subsidiary_id,
        currency=entry.currency,
        exponent=exponent(entry.currency),
        tran_date=entry.posting_date,
        memo=entry.memo,
        lines=tuple(
            LedgerLine(
                account=numbers[ln.account_id],
                debit_minor=ln.debit_minor,
                credit_minor=ln.credit_minor,
                memo=ln.memo,
                customer_ref=ln.customer_ref,
                product_ref=ln.product_code,
                tax_code=ln.tax_code,
            )
            for ln in entry.lines.all()
            if ln.debit_minor or ln.credit_minor
        ),
    )


def post_entry(ctx: StepContext) -> dict[str, Any]:
    """Post the entry under its external id. Exactly once: a posted entry is never sent again,
    and after an attempt with an unknown outcome the ERP is read back before writing."""
    from sync.services.connectors import erp_connector

    if not ctx.data.get("entry_id"):
        return {"skipped": "nothing to post"}
    entry = JournalEntry.objects.select_related("legal_entity").get(pk=ctx.data["entry_id"])
    if entry.state == JournalEntry.State.POSTED:
        return {"erp_document_id": entry.erp_document_id, "already_posted": True}
    erp = erp_connector(entry.erp_system)
    result = None
    if ctx.step.attempts > 1 or entry.state == JournalEntry.State.POSTING:
        result = erp.find_journal_entry(entry.external_id)
    if result is None:
        JournalEntry.objects.filter(pk=entry.pk, state=JournalEntry.State.DRAFT).update(
            state=JournalEntry.State.POSTING
        )
        result = erp.post_journal_entry(ledger_entry_for(entry))
    JournalEntry.objects.filter(pk=entry.pk).exclude(state=JournalEntry.State.POSTED).update(
        state=JournalEntry.State.POSTED,
        erp_document_id=result.document_id,
        posted_at=timezone.now(),
    )
    return {"erp_document_id": result.document_id}


def post_entries(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``post_entry`` for many journeys, in bulk calls: their entries, lines and GL account
    numbers read in three queries, every entry still to send marked ``posting`` in one
    update before the first call; those whose earlier outcome is unknown read back by
    external id in one query (SuiteQL); the rest sent in the ERP's batch writes (100 per
    request); those the ERP took marked ``posted`` in one update. An entry that fails stays
    ``posting``, so its retry reads back before writing: never two postings."""
    from sync.services.connectors import erp_connector

    outcomes: list[dict[str, Any] | Exception] = [{} for _ in ctxs]
    wanted = {i: ctx.data.get("entry_id") for i, ctx in enumerate(ctxs)}
    entries = (
        JournalEntry.objects.select_related("legal_entity")
        .prefetch_related("lines")
        .order_by()
        .in_bulk([e for e in wanted.values() if e])
    )
    numbers = dict(
        GLAccount.objects.filter(
            pk__in={ln.account_id for e in entries.values() for ln in e.lines.all()}
        ).values_list("pk", "number")
    )
    to_send = [
        entries[entry_id].pk
        for entry_id in wanted.values()
        if entry_id and entries[entry_id].state == JournalEntry.State.DRAFT
    ]
    JournalEntry.objects.filter(pk__in=to_send, state=JournalEntry.State.DRAFT).update(
        state=JournalEntry.State.POSTING
    )
    by_system: dict[str, list[tuple[int, JournalEntry]]] = {}
    for i, entry_id in wanted.items():
        if not entry_id:
            outcomes[i] = {"skipped": "nothing to post"}
            continue
        entry = entries[entry_id]
        if entry.state == JournalEntry.State.POSTED:
            outcomes[i] = {"erp_document_id": entry.erp_document_id, "already_posted": True}
            continue
        by_system.setdefault(entry.erp_system, []).append((i, entry))
    posted: dict[int, str] = {}
    for system, items in by_system.items():
        erp = erp_connector(system)
        # Read back first where an earlier attempt's outcome is unknown (the entry was
        # already ``posting`` before this run, or the step ran before).
        unknown = [
            (i, e)
            for i, e in items
            if ctxs[i].step.attempts > 1 or e.state == JournalEntry.State.POSTING
        ]
        found: dict[str, Any] = {}
        if unknown:
            found, failed = entries_read_back(erp, ctxs, unknown, outcomes)
            items = [(i, e) for i, e in items if i not in failed]
        sending: list[tuple[int, JournalEntry, Any]] = []
        for i, entry in items:
            if entry.external_id in found:
                posted[entry.pk] = found[entry.external_id].document_id
                outcomes[i] = {"erp_document_id": posted[entry.pk], "read_back": True}
                continue
            try:
                sending.append((i, entry, ledger_entry_for(entry, numbers)))
            except Exception as exc:
                outcomes[i] = exc
        results = send_in_bulk(
            ctxs,
            [(i, ledger) for i, _, ledger in sending],
            erp.post_journal_entries,
            erp.batch_limit,
        )
        for (i, entry, _), result in zip(sending, results, strict=True):
            if isinstance(result, Exception):
                outcomes[i] = result
                continue
            posted[entry.pk] = result.document_id
            outcomes[i] = {"erp_document_id": result.document_id}
    _mark_posted(posted)
    return outcomes


def send_in_bulk(
    ctxs: list[StepContext],
    items: list[tuple[int, Any]],
    call: Callable[[list[Any]], list[Any]],
    size: int,
) -> list[Any]:
    """Send ``items`` (``(index into ctxs, record)``) through a connector's bulk ``call``,
    ``size`` records per call, each call carrying its journeys' correlation ids. Returns one
    outcome per item, in order, as the engine should record them (``one_failure_per_call``).
    After as many failed calls as open the connector's circuit, the rest are not sent: they
    wait, as a batch of single calls would."""
    from sync.engine import claims_renew_aged

    guard = ConnectorGuard()
    out: list[Any] = []
    for chunk in (items[n : n + size] for n in range(0, len(items), size)):
        claims_renew_aged()  # a long run of bulk calls must not outlive the group's claims
        if not guard.allowed:
            out.extend(guard.held_back() for _ in chunk)
            continue
        with http.correlation(batch_correlation([ctxs[i] for i, _ in chunk])):
            results = one_failure_per_call(call([record for _, record in chunk]))
        guard.record(next((r for r in results if isinstance(r, ConnectorError)), None))
        out.extend(results)
    return out


def entries_read_back(
    erp: Any,
    ctxs: list[StepContext],
    items: list[tuple[int, JournalEntry]],
    outcomes: list[Any],
) -> tuple[dict[str, Any], set[int]]:
    """Read ``items`` (``(index into ctxs, entry)``) back from ``erp`` by external id, one
    call per ``erp.batch_limit`` entries, each carrying only its own journeys' correlation
    ids: one header naming a claim's 2,000 journeys (74 kB) is more than HTTP servers take
    (the emulator answered 431, which read as the ERP refusing every entry). A call that
    fails is its entries' outcome (``one_failure_per_call``); after as many failed calls as
    open the connector's circuit the rest wait. Returns what was found, by external id, and
    the indexes whose outcome is set."""
    guard = ConnectorGuard()
    found: dict[str, Any] = {}
    failed: set[int] = set()
    size = erp.batch_limit
    for page in (items[n : n + size] for n in range(0, len(items), size)):
        if not guard.allowed:
            for i, _ in page:
                outcomes[i] = guard.held_back()
                failed.add(i)
            continue
        with http.correlation(batch_correlation([ctxs[i] for i, _ in page])):
            try:
                found.update(erp.find_journal_entries([e.external_id for _, e in page]))
                guard.record(None)
            except ConnectorError as exc:
                for (i, _), outcome in zip(
                    page, one_failure_per_call([exc] * len(page)), strict=True
                ):
                    outcomes[i] = outcome
                    failed.add(i)
                guard.record(exc)
    return found, failed


def batch_correlation(ctxs: list[StepContext]) -> str:
    """The ``X-Correlation-ID`` of a bulk call: the correlation ids of the journeys it
    carries, comma-separated, so each journey's id travels with the call that wrote it."""
    return ",".join(dict.fromkeys(str(ctx.journey.correlation_id) for ctx in ctxs))


def one_failure_per_call(results: list[Any]) -> list[Any]:
    """Outcomes of bulk calls as the engine should record them: the records of a call that
    failed as a whole share one exception object (``ErpConnector.post_journal_entries``).
    A refusal (``PermanentError``) is each record's own outcome. A transient or auth failure
    is one failure of one call: its first record takes it (an attempt spent, the connector's
    circuit counting one failure, an auth failure pausing it); the others wait as a held-back
    batch waits, no attempt spent, and their next run reads back before writing."""
    seen: set[int] = set()
    out: list[Any] = []
    for result in results:
        shared = isinstance(result, ConnectorError) and (
            result.transient or isinstance(result, AuthError)
        )
        if shared and id(result) in seen:
            out.append(
                ConnectorHeldBack(
                    "sent in a bulk call that failed as a whole "
                    f"({result.code or type(result).__name__}); that failure is recorded "
                    "once, on the call's first record"
                )
            )
            continue
        if shared:
            seen.add(id(result))
        out.append(result)
    return out


# Entries the ERP took, marked posted at once (PostgreSQL; elsewhere one by one).
_POSTED_MANY_SQL = """
UPDATE sync_journalentry AS e SET state = %(posted)s, erp_document_id = v.doc, posted_at = %(now)s
FROM unnest(%(ids)b::bigint[], %(docs)b::text[]) AS v(id, doc)
WHERE e.id = v.id AND e.state <> %(posted)s
"""


def _mark_posted(posted: dict[int, str]) -> None:
    if not posted:
        return
    now = timezone.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                _POSTED_MANY_SQL,
                {
                    "now": now,
                    "posted": JournalEntry.State.POSTED.value,
                    "ids": list(posted),
                    "docs": list(posted.values()),
                },
            )
        return
    for pk, document_id in posted.items():
        JournalEntry.objects.filter(pk=pk).exclude(state=JournalEntry.State.POSTED).update(
            state=JournalEntry.State.POSTED, erp_document_id=document_id, posted_at=now
        )


def confirm_entries(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``confirm_in_erp`` for many journeys: their entries read in one query, read back
    from the ERP in bulk calls of ``batch_limit`` entries (SuiteQL by external id)."""
    from sync.services.connectors import erp_connector

    entries = JournalEntry.objects.order_by().in_bulk(
        [ctx.data["entry_id"] for ctx in ctxs if ctx.data.get("entry_id")]
    )
    outcomes: list[dict[str, Any] | Exception] = [{} for _ in ctxs]
    by_system: dict[str, list[tuple[int, JournalEntry]]] = {}
    for i, ctx in enumerate(ctxs):
        entry = entries.get(ctx.data.get("entry_id"))
        if entry is None:
            outcomes[i] = {"skipped": "nothing to post"}
            continue
        by_system.setdefault(entry.erp_system, []).append((i, entry))
    for system, items in by_system.items():
        found, failed = entries_read_back(erp_connector(system), ctxs, items, outcomes)
        for i, entry in items:
            if i in failed:
                continue
            try:
                outcomes[i] = _confirmed(entry, found.get(entry.external_id))
            except DataDefect as exc:
                outcomes[i] = exc
    return outcomes


def confirm_in_erp(ctx: StepContext) -> dict[str, Any]:
    """Read the entry back from the ERP and check it holds what we posted."""
    if not ctx.data.get("entry_id"):
        return {"skipped": "nothing to post"}
    return _confirm(ctx, JournalEntry.objects.get(pk=ctx.data["entry_id"]))


def _confirm(ctx: StepContext, entry: JournalEntry | None) -> dict[str, Any]:
    from sync.services.connectors import erp_connector

    if entry is None:
        return {"skipped": "nothing to post"}
    return _confirmed(entry, erp_connector(entry.erp_system).find_journal_entry(entry.external_id))


def _confirmed(entry: JournalEntry, found: Any) -> dict[str, Any]:
    """The ERP holds ``entry`` as the document we recorded, or a defect saying what it holds."""
    if found is None or found.document_id != entry.erp_document_id:
        raise DataDefect(
            Cat.AMOUNT_MISMATCH,
            f"The ERP does not hold entry {entry.external_id} as document "
            f"{entry.erp_document_id} (it answered {found.document_id if found else 'nothing'}).",
            context={"external_id": entry.external_id},
        )
    return {"erp_confirmed": True}


POSTING_STEPS = (
    StepDef(
        "post_entry",
        post_entry,
        "Post to the ERP under the external id",
        "netsuite",
        batch=post_entries,
    ),
    StepDef(
        "confirm_in_erp",
        confirm_in_erp,
        "Read the entry back from the ERP",
        "netsuite",
        batch=confirm_entries,
    ),
)
