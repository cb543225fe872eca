"""Journey types, declared once as data: trigger, ordered steps, SLA key, keys.

Adding a journey type means adding one ``JourneyType`` to ``REGISTRY`` and its step
functions; the engine, the sweeper, replay and the screens need no change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.base import WebhookEnvelope

StepFunc = Callable[["StepContext"], dict[str, Any] | None]
StepBatchFunc = Callable[[list["StepContext"]], list[dict[str, Any] | Exception]]


@dataclass(frozen=True)
class StepDef:
    name: str
    func: StepFunc
    description: str = ""
    # The external system the step talks to ("netsuite"); the engine holds the step back while
    # that connector's circuit is open or it is paused. Empty: no connector gate.
    connector: str = ""
    # Optional batch form: the same step for many journeys at once, reading what they share
    # in a few queries. It returns one outcome per context, in order: the result dict, or the
    # exception ``func`` would have raised for that journey (never raised for one journey).
    # It must do for each context exactly what ``func`` does, and set each journey's
    # correlation id around that journey's outbound calls.
    batch: StepBatchFunc | None = None


@dataclass(frozen=True)
class JourneyType:
    name: str
    source_system: str
    event_types: frozenset[str]
    steps: tuple[StepDef, ...]
    # How an event names its journey; None for journeys started by a schedule or a person.
    business_key: Callable[[WebhookEnvelope], str] | None = None
    aggregate_key: Callable[[WebhookEnvelope], str] | None = None
    default_sla_minutes: int = 60
    # Which events of ``event_types`` start this journey; None accepts them all. Lets two
    # journey types share an event type (e.g. ``customer.subscription.updated``: amendment or
    # scheduled cancellation) and lets an event that is master data only start nothing.
    accepts: Callable[[WebhookEnvelope], bool] | None = None

    def step(self, name: str) -> StepDef:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"{self.name} has no step {name!r}")


@dataclass
class StepContext:
    """What a step function gets: the journey row, its step row and the shared context dict."""

    journey: Any  # sync.models.Journey
    step: Any  # sync.models.Step
    data: dict[str, Any]


def _registry() -> dict[str, JourneyType]:
    from sync.journeys import (
        amendment,
        credit_note,
        customer_sync,
        dispute,
        invoice_to_ledger,
        invoice_uncollectible,
        invoice_void,
        payment,
        payment_failed,
        revenue_recognition,
        subscription_cancellation,
    )

    types = [
        invoice_to_ledger.JOURNEY,
        invoice_void.JOURNEY,
        credit_note.JOURNEY,
        revenue_recognition.JOURNEY,
        subscription_cancellation.JOURNEY,
        amendment.JOURNEY,
        subscription_cancellation.SCHEDULED_JOURNEY,
        *payment.JOURNEYS,
        payment_failed.JOURNEY,
        *dispute.JOURNEYS,
        invoice_uncollectible.JOURNEY,
        customer_sync.JOURNEY,
    ]
    return {t.name: t for t in types}


_REGISTRY: dict[str, JourneyType] | None = None


def registry() -> dict[str, JourneyType]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _registry()
    return _REGISTRY


def journey_type(name: str) -> JourneyType:
    return registry()[name]


def journey_type_for_event(
    source_system: str, event_type: str, envelope: WebhookEnvelope | None = None
) -> JourneyType | None:
    """The journey type an event starts, or None. A type with an ``accepts`` predicate is
    chosen only when the envelope is given and the predicate accepts it (without the
    envelope nothing proves it applies, so the event stays master data only)."""
    for jt in registry().values():
        if jt.source_system != source_system or event_type not in jt.event_types:
            continue
        if jt.accepts is None or (envelope is not None and jt.accepts(envelope)):
            return jt
    return None
