"""django-q2 entry points. Thin: they take ids and call the engine or a service.

Enqueue only after commit (callers use ``transaction.on_commit``) so a task never races the
row it names. Lost or duplicated tasks are harmless: work is claimed in our tables and the
sweeper re-enqueues whatever is due and not moving.
"""

from __future__ import annotations

from django.utils import timezone
from django_q.tasks import async_task

from sync.models import InboundEvent, Step


def enqueue_dispatch(event_id: int) -> None:
    InboundEvent.objects.filter(pk=event_id).update(enqueued_at=timezone.now())
    async_task("sync.tasks.dispatch_event", event_id, task_name=f"dispatch-{event_id}")


def enqueue_step(step_id: int) -> None:
    Step.objects.filter(pk=step_id).update(enqueued_at=timezone.now())
    async_task("sync.tasks.run_step", step_id, task_name=f"step-{step_id}")


def enqueue_dispatch_batch() -> None:
    async_task("sync.tasks.dispatch_received", task_name="dispatch-received")


def dispatch_received(limit: int = 500) -> int:
    """Dispatch up to ``limit`` inbox events still ``received`` (after a bulk ingest)."""
    from sync.services.dispatch import inbound_events_dispatch_received

    return inbound_events_dispatch_received(limit=limit)


def dispatch_event(event_id: int) -> str:
    from sync.services.dispatch import inbound_event_dispatch

    return inbound_event_dispatch(event_id=event_id)


def run_step(step_id: int) -> str:
    from sync.engine import journey_advance

    return journey_advance(step_id)


def sweep() -> dict[str, int]:
    from sync.engine import sweep as engine_sweep

    return engine_sweep()


def recognition_run_monthly() -> dict[str, int]:
    from sync.services.recognition import recognition_run_monthly as run

    return run()


def enqueue_notification_delivery() -> None:
    async_task("sync.tasks.deliver_notifications", task_name="deliver-notifications")


def deliver_notifications() -> int:
    from sync.services.notifications import notifications_deliver

    return notifications_deliver()
