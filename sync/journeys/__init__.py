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


@dataclass(frozen=True)
class StepDef:
    name: str
    func: StepFunc
    description: str = ""
    # The external system the step talks to ("netsuite"); the engine holds the step back while
    # that connector's circuit is open or it is paused. Empty: no connector gate.
    connector: str = ""


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
        credit_note,
        customer_sync,
        invoice_to_ledger,
        invoice_void,
        payment,
        revenue_recognition,
        subscription_cancellation,
    )

    types = [
        invoice_to_ledger.JOURNEY,
        invoice_void.JOURNEY,
        credit_note.JOURNEY,
        revenue_recognition.JOURNEY,
        subscription_cancellation.JOURNEY,
        *payment.JOURNEYS,
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


def journey_type_for_event(source_system: str, event_type: str) -> JourneyType | None:
    for jt in registry().values():
        if jt.source_system == source_system and event_type in jt.event_types:
            return jt
    return None
