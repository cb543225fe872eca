"""A dry run: what a replay of a journey would post and which ERP calls it would make.

The journey's not-done steps run, up to (not including) the first step that talks to the ERP,
inside a transaction that is always rolled back: the entry they build is read back with its
lines, the request the NetSuite client would send for it is built with the client's own body
builder, and the first data defect met is reported in the words of the exception it would
open. Nothing persists, nothing is sent, nothing is audited; any role that can view may ask.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from connectors.base import ConnectorError, PermanentError
from connectors.netsuite.client import JOURNAL_ENTRY, RECORD_PATH, NetSuiteClient
from sync.errors import DataDefect, DependencyPending, DomainError, PermissionDenied
from sync.journeys import StepContext, journey_type
from sync.journeys.common import ledger_entry_for
from sync.models import ExceptionCase, JournalEntry, Journey, Step
from sync.permissions import can_view, may_see_entity
from sync.services.journeys import (
    POSTING_STEP,
    entries_to_discard,
    entry_discard,
    start_step_for,
    steps_reset,
)

# Steps that call the ERP: a dry run stops before the first of them.
ERP_STEPS = frozenset({POSTING_STEP, "confirm_in_erp", "upsert_erp_customer"})


@dataclass(frozen=True)
class DryRunLine:
    line_no: int
    account_number: str
    account_name: str
    debit_minor: int
    credit_minor: int
    functional_debit_minor: int
    functional_credit_minor: int
    memo: str
    product_code: str
    tax_code: str


@dataclass(frozen=True)
class DryRunEntry:
    external_id: str
    state: str  # "new" when the dry run built it, else the stored entry's state
    posting_date: str
    currency: str
    functional_currency: str
    fx_rate: str | None
    memo: str
    lines: tuple[DryRunLine, ...]

    @property
    def totals(self) -> dict[str, int]:
        names = ("debit_minor", "credit_minor", "functional_debit_minor", "functional_credit_minor")
        return {n: sum(getattr(ln, n) for ln in self.lines) for n in names}


@dataclass(frozen=True)
class DryRunCall:
    method: str
    path: str
    purpose: str
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class DryRunDefect:
    step: str
    category: str
    summary: str


@dataclass
class DryRun:
    journey_id: int
    business_key: str
    from_step: str = ""
    steps_run: list[str] = field(default_factory=list)
    stopped_before: str = ""
    entry: DryRunEntry | None = None
    calls: list[DryRunCall] = field(default_factory=list)
    defect: DryRunDefect | None = None
    refused: str = ""
    notes: list[str] = field(default_factory=list)


class _RollBack(Exception):
    """Raised at the end of every dry run so its transaction never commits."""


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def journey_dry_run(
    *, journey_id: int, actor: AbstractBaseUser, from_step: str | None = None
) -> DryRun:
    """What replaying the journey (from its failed step, or ``from_step``) would do."""
    if not can_view(actor):
        raise PermissionDenied("You may not view journeys.")
    from_step = (from_step or "").strip() or None
    journey = Journey.objects.select_related("source_event", "legal_entity").get(pk=journey_id)
    if not may_see_entity(actor, journey.legal_entity_id):
        raise PermissionDenied("You may not view journeys of that legal entity.")
    dry = DryRun(journey_id=journey.pk, business_key=journey.business_key)
    try:
        with transaction.atomic():
            _simulate(journey, dry, from_step)
            raise _RollBack
    except _RollBack:
        pass
    return dry


def _simulate(journey: Journey, dry: DryRun, from_step: str | None) -> None:
    if journey.state == Journey.State.CANCELLED:
        dry.refused = f"Journey {journey.business_key} is cancelled; nothing would run."
        return
    if journey.state == Journey.State.COMPLETED and from_step is None:
        dry.notes.append(
            f"Journey {journey.business_key} has completed; a replay would change nothing."
        )
        return
    steps = list(Step.objects.filter(journey=journey).order_by("position"))
    existing = set(JournalEntry.objects.filter(journey=journey).values_list("pk", flat=True))
    try:
        start = start_step_for(journey, steps, from_step)
        dry.from_step = start.name
        if from_step is not None:
            posted = JournalEntry.objects.filter(
                journey=journey, state=JournalEntry.State.POSTED
            ).first()
            what = f"replayed from “{start.name}”"
            if journey.state == Journey.State.COMPLETED and posted is not None:
                raise DomainError(
                    f"Journey {journey.business_key} cannot be {what}: its entry is already "
                    f"posted as {posted.external_id}; posted entries are immutable, post a "
                    "correction instead."
                )
            for entry in entries_to_discard(journey, steps, start, what=what, read_erp=False):
                dry.notes.append(
                    f"The draft entry {entry.external_id} would be discarded, with its revenue "
                    "schedules, and built again."
                    + (
                        " An earlier posting attempt has an unknown outcome: the replay reads "
                        "the ERP back first and refuses if it holds the entry."
                        if entry.state != JournalEntry.State.DRAFT
                        else ""
                    )
                )
                entry_discard(entry)
            steps_reset(journey, steps, start)
    except DomainError as exc:
        dry.refused = str(exc)
        return
    jt = journey_type(journey.journey_type)
    data = dict(journey.context)
    posting_step: Step | None = None
    for step in steps:
        if step.position < start.position:
            continue
        if step.name in ERP_STEPS or getattr(jt.step(step.name), "connector", ""):
            dry.stopped_before = step.name
            posting_step = step if step.name == POSTING_STEP else None
            break
        defect = _run_step(jt.step(step.name).func, journey, step, data)
        if defect is not None:
            dry.defect = defect
            return
        dry.steps_run.append(step.name)
    entry_id = data.get("entry_id")
    entry = (
        JournalEntry.objects.select_related("legal_entity").filter(pk=entry_id).first()
        if entry_id
        else None
    )
    if entry is None:
        if dry.stopped_before and dry.stopped_before != POSTING_STEP:
            dry.notes.append(f"Next, step “{dry.stopped_before}” would call the ERP.")
        elif posting_step is not None:
            dry.notes.append("Nothing to post: the journey built no entry.")
        return
    dry.entry = _entry_of(entry, built=entry.pk not in existing)
    if posting_step is None:
        return
    if entry.state == JournalEntry.State.POSTED:
        dry.notes.append(
            f"Entry {entry.external_id} is already posted (ERP document "
            f"{entry.erp_document_id}); nothing would be sent."
        )
        return
    _posting_calls(entry, posting_step, dry)


def _run_step(func, journey: Journey, step: Step, data: dict[str, Any]) -> DryRunDefect | None:
    ctx = StepContext(journey=journey, step=step, data=data)
    try:
        with transaction.atomic():
            result = func(ctx) or {}
    except (DataDefect, DependencyPending) as exc:
        return DryRunDefect(step.name, exc.category, exc.summary)
    except ConnectorError as exc:
        return DryRunDefect(step.name, ExceptionCase.Category.ERP_REJECTED, exc.message)
    except Exception as exc:  # a bug: say what it would be, as the engine would
        return DryRunDefect(
            step.name,
            ExceptionCase.Category.INTERNAL_ERROR,
            f"Step '{step.name}' would fail unexpectedly ({type(exc).__name__}: {exc}).",
        )
    data.update(_json_safe(result))
    return None


def _entry_of(entry: JournalEntry, *, built: bool) -> DryRunEntry:
    return DryRunEntry(
        external_id=entry.external_id,
        state="new" if built else entry.state,
        posting_date=entry.posting_date.isoformat(),
        currency=entry.currency,
        functional_currency=entry.functional_currency,
        fx_rate=str(entry.fx_rate) if entry.fx_rate is not None else None,
        memo=entry.memo,
        lines=tuple(
            DryRunLine(
                line_no=ln.line_no,
                account_number=ln.account.number,
                account_name=ln.account.name,
                debit_minor=ln.debit_minor,
                credit_minor=ln.credit_minor,
                functional_debit_minor=ln.functional_debit_minor,
                functional_credit_minor=ln.functional_credit_minor,
                memo=ln.memo,
                product_code=ln.product_code,
                tax_code=ln.tax_code,
            )
            for ln in entry.lines.select_related("account").order_by("line_no")
        ),
    )


def _posting_calls(entry: JournalEntry, step: Step, dry: DryRun) -> None:
    path = f"{RECORD_PATH}/{JOURNAL_ENTRY}/{NetSuiteClient._eid(entry.external_id)}"
    try:
        body = NetSuiteClient.journal_entry_body(ledger_entry_for(entry))
    except PermanentError as exc:
        dry.defect = DryRunDefect(
            POSTING_STEP,
            ExceptionCase.Category.ERP_REJECTED,
            f"The ERP would reject entry {entry.external_id}: {exc.message}",
        )
        return
    if step.attempts >= 1 or entry.state == JournalEntry.State.POSTING:
        dry.calls.append(
            DryRunCall(
                "GET",
                path,
                "Read back first (an earlier attempt's outcome is unknown); the PUT is sent "
                "only if the ERP holds nothing.",
                {"expandSubResources": "true"},
            )
        )
    dry.calls.append(
        DryRunCall(
            "PUT",
            path,
            "Upsert the entry under its external id",
            {"replace": "line"},
            _json_safe(body),
        )
    )
    dry.calls.append(
        DryRunCall(
            "GET", path, "confirm_in_erp: read the entry back", {"expandSubResources": "true"}
        )
    )
