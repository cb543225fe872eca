"""Domain errors raised by services and journey steps."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request the domain refuses; the message is meant for the person who asked."""


class PermissionDenied(DomainError):
    """The actor may not do this."""


class DataDefect(Exception):
    """A journey step cannot go on until a person fixes data (a mapping, a link, a rate).

    Never retried automatically: it becomes an ExceptionCase with ``category`` and a summary
    a finance person can act on; replay after the fix.
    """

    def __init__(
        self, category: str, summary: str, *, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(summary)
        self.category = category
        self.summary = summary
        self.context = context or {}


class DependencyPending(Exception):
    """Something this step needs has not arrived yet (a customer event after its invoice).

    Retried with backoff like a transient error; once attempts run out it becomes the
    ``category`` exception with ``summary``, so a missing dependency is never silent.
    """

    def __init__(
        self,
        category: str,
        summary: str,
        *,
        context: dict[str, Any] | None = None,
        retry_after: float = 2.0,
    ) -> None:
        super().__init__(summary)
        self.category = category
        self.summary = summary
        self.context = context or {}
        self.retry_after = retry_after


class StepSkipped(Exception):
    """The step finds its event stale or superseded: the journey ends as ``skipped`` with
    ``reason`` recorded (never silently), and its remaining steps do not run."""

    def __init__(self, reason: str, *, result: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result = result or {}


class ConnectorHeldBack(Exception):
    """A step of a batch that was not sent: its connector had already failed again and
    again in the same batch. The engine puts it back to wait, spending no attempt."""
