"""django-q2 entry points. Thin: they take ids (or nothing) and call the engine or a service.

Work lives in our tables. The main path is pull: ``dispatch_received`` and ``advance`` take
whatever is due from the inbox and the steps, in batches, until nothing is left or their time
budget is spent. They are *kicked* after commit by whoever made work (at most a few times a
second per process) and topped up by the clock's sweep, so a lost task costs latency and a
duplicated one costs a query — never a double effect, since every step is claimed.
``run_step`` and ``dispatch_event`` name one row, for replays and tests.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.utils import timezone
from django_q.tasks import async_task

from sync.models import InboundEvent, Step

log = logging.getLogger(__name__)

# A process sends a given kick at most this often; the sweep covers any kick left unsent.
KICK_INTERVAL_SECONDS = 0.2
_last_kick: dict[str, float] = {}


def _queued() -> int:
    """Tasks waiting in the broker (not yet taken by a cluster)."""
    from django_q.brokers import get_broker

    try:
        return get_broker().queue_size() or 0
    except Exception:  # a broker that cannot count: assume room
        return 0


def _workers() -> int:
    return int(settings.Q_CLUSTER.get("workers", 1))


def _kick(func: str) -> None:
    """Queue a pull task unless this process just did, or the broker already holds one per
    worker: pull tasks run until the work is gone, so more in the queue would only wait."""
    now = time.monotonic()
    if now - _last_kick.get(func, -KICK_INTERVAL_SECONDS) < KICK_INTERVAL_SECONDS:
        return
    _last_kick[func] = now
    if _queued() >= _workers():
        return
    async_task(func, task_name=func.rsplit(".", 1)[-1])


def kick_advance() -> None:
    """Due steps exist: have a worker pull them."""
    _kick("sync.tasks.advance")


def kick_dispatch() -> None:
    """Events wait in the inbox: have a worker dispatch them."""
    _kick("sync.tasks.dispatch_received")


def pull_tasks_top_up(*, events: bool, steps: bool) -> int:
    """Queue pull tasks until the broker holds one per worker (the sweep calls this when it
    finds work). Returns how many it queued."""
    room = max(0, _workers() - _queued())
    plan = (["sync.tasks.dispatch_received"] if events else []) + (
        ["sync.tasks.advance"] * room if steps else []
    )
    for func in plan[:room]:
        async_task(func, task_name=func.rsplit(".", 1)[-1])
    return len(plan[:room])


def enqueue_dispatch(event_id: int) -> None:
    InboundEvent.objects.filter(pk=event_id).update(enqueued_at=timezone.now())
    async_task("sync.tasks.dispatch_event", event_id, task_name=f"dispatch-{event_id}")


def enqueue_step(step_id: int) -> None:
    Step.objects.filter(pk=step_id).update(enqueued_at=timezone.now())
    async_task("sync.tasks.run_step", step_id, task_name=f"step-{step_id}")


def dispatch_received(budget_seconds: float = 20.0, batch: int = 500) -> int:
    """Dispatch inbox events still ``received``, oldest business time first, in batches,
    until none is left or the time budget is spent (then a fresh task takes over)."""
    from sync.services.dispatch import inbound_events_dispatch_received

    deadline = time.monotonic() + budget_seconds
    done = 0
    while time.monotonic() < deadline:
        n = inbound_events_dispatch_received(limit=batch, follow_up=False)
        done += n
        if n == 0:
            return done
    kick_dispatch()
    return done


def advance(budget_seconds: float = 20.0, batch: int | None = None) -> int:
    from sync.engine import journeys_advance_due

    batch = batch or claim_batch()
    return journeys_advance_due(budget_seconds=budget_seconds, batch=batch)


_lock_capacity: list[int] = []


def claim_batch() -> int:
    """``RCT_CLAIM_BATCH``, kept inside PostgreSQL's lock table: a batch claim holds one
    advisory lock per step until it commits, and every worker may be claiming at once, so
    the workers' batches together stay within three quarters of the table
    (``max_locks_per_transaction`` x ``max_connections``; 2,400 a worker with PostgreSQL's
    defaults and two workers). A larger setting is lowered to that, once logged."""
    from django.db import connection

    wanted = settings.RCT["CLAIM_BATCH"]
    if connection.vendor != "postgresql":
        return wanted
    first = not _lock_capacity
    if first:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('max_locks_per_transaction')::int"
                " * current_setting('max_connections')::int"
            )
            _lock_capacity.append(cursor.fetchone()[0])
    budget = max(1, _lock_capacity[0] * 3 // 4 // _workers())
    if first and wanted > budget:
        log.warning(
            "RCT_CLAIM_BATCH %d is more than %d workers can hold in PostgreSQL's lock "
            "table (%d locks); claiming %d at a time",
            wanted,
            _workers(),
            _lock_capacity[0],
            budget,
        )
    return min(wanted, budget)


def dispatch_event(event_id: int) -> str:
    from sync.services.dispatch import inbound_event_dispatch

    return inbound_event_dispatch(event_id=event_id)


def run_step(step_id: int) -> str:
    from sync.engine import journey_advance

    return journey_advance(step_id)


def sweep() -> dict[str, int]:
    from sync.engine import sweep as engine_sweep

    return engine_sweep(limit=1)  # whether anything is due is all the top-up needs


def stats_rollup() -> dict[str, int]:
    from sync.services.stats import stats_rollup as rollup

    return rollup()


def recognition_run_monthly() -> dict[str, int]:
    from sync.services.recognition import recognition_run_monthly as run

    return run()


def enqueue_notification_delivery() -> None:
    async_task("sync.tasks.deliver_notifications", task_name="deliver-notifications")


def deliver_notifications() -> int:
    from sync.services.notifications import notifications_deliver

    return notifications_deliver()
