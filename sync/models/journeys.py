"""Journeys, their steps and the exceptions people work.

Run state lives here, not in django-q2: a task only carries a step id and claims the row
before it acts, so a task delivered twice or lost costs latency, never a double effect.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from sync.stats_sql import pg_exception_functions, pg_journey_functions, stats_triggers


class IllegalTransition(Exception):
    """A state change the state machine does not allow."""


class Journey(models.Model):
    """One commercial event travelling through the systems, with an SLA timer."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Retrying"
        WAITING = "waiting", "Waiting"
        EXCEPTION = "exception", "Exception"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        SKIPPED = "skipped", "Skipped (stale or superseded)"

    ACTIVE = {State.PENDING, State.RUNNING, State.RETRYING, State.WAITING}
    TERMINAL = {State.COMPLETED, State.CANCELLED, State.SKIPPED}

    class SlaState(models.TextChoices):
        ON_TRACK = "on_track", "On track"
        AT_RISK = "at_risk", "At risk"
        BREACHED = "breached", "Breached"

    journey_type = models.CharField(max_length=64)
    business_key = models.CharField(max_length=200)
    aggregate_key = models.CharField(max_length=200)
    correlation_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    source_event = models.ForeignKey(
        "sync.InboundEvent", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    source_system = models.CharField(max_length=32, blank=True)
    legal_entity = models.ForeignKey(
        "sync.LegalEntity", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    context = models.JSONField(default=dict, blank=True)
    business_at = models.DateTimeField(help_text="When the business event happened.")
    sla_due_at = models.DateTimeField()
    sla_warning_at = models.DateTimeField()
    sla_state = models.CharField(max_length=16, choices=SlaState.choices, default=SlaState.ON_TRACK)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["journey_type", "business_key"], name="uniq_journey_business_key"
            )
        ]
        indexes = [
            models.Index(fields=["state", "journey_type"], name="journey_state_idx"),
            models.Index(fields=["aggregate_key"], name="journey_aggregate_idx"),
            # The engine's two hot questions stay small however many journeys are done:
            # which active journeys have work (oldest first), and who holds an aggregate.
            models.Index(
                fields=["id"],
                name="journey_active_idx",
                condition=models.Q(state__in=["pending", "running", "retrying", "waiting"]),
            ),
            models.Index(
                fields=["aggregate_key", "business_at"],
                name="journey_holding_idx",
                condition=models.Q(state__in=["pending", "running", "retrying"]),
            ),
            # The sweep's SLA questions, every tick: which unfinished journeys have just
            # passed their due (or warning) time. Without these each tick read every active
            # journey: 11 ms a question with 40k journeys queued in the 100k burst.
            models.Index(
                fields=["sla_due_at"],
                name="journey_sla_due_idx",
                condition=models.Q(
                    state__in=["pending", "running", "retrying", "waiting", "exception"]
                )
                & ~models.Q(sla_state="breached"),
            ),
            # The journeys list, newest first, at a million journeys.
            models.Index(fields=["-created_at", "-id"], name="journey_newest_idx"),
            models.Index(
                fields=["sla_warning_at"],
                name="journey_sla_warning_idx",
                condition=models.Q(
                    state__in=["pending", "running", "retrying", "waiting", "exception"],
                    sla_state="on_track",
                ),
            ),
        ]

        # Dashboard deltas (sync/stats_sql.py): one grouped insert per statement.
        triggers = stats_triggers("journey", pg_journey_functions())

    def __str__(self) -> str:
        return f"{self.journey_type} {self.business_key}"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE


class Step(models.Model):
    """One step of a journey. ``claim_token`` is set while a worker holds it."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    RUNNABLE = {State.PENDING, State.RETRYING}
    DONE = {State.SUCCEEDED, State.SKIPPED}

    # No index of its own: uniq_step_position (journey, position) serves lookups by journey.
    journey = models.ForeignKey(
        Journey, on_delete=models.CASCADE, related_name="steps", db_index=False
    )
    name = models.CharField(max_length=64)
    position = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_snapshot = models.JSONField(null=True, blank=True)
    response_snapshot = models.JSONField(null=True, blank=True)
    error_class = models.CharField(max_length=128, blank=True)
    error_message = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["journey", "position"]
        constraints = [
            models.UniqueConstraint(fields=["journey", "position"], name="uniq_step_position")
        ]
        # Deliberately no index on state: a step changes state at every claim and finish,
        # and with no indexed column changed (and room in the page: fillfactor, migration
        # 0014) PostgreSQL updates it in place (HOT) without touching any index. Due steps are
        # found from the active journeys (journey_active_idx) and their first unfinished step.

    def __str__(self) -> str:
        return f"{self.journey} / {self.position}:{self.name}"


class ExceptionCase(models.Model):
    """A failure a person must look at, with the context needed to act on it."""

    class Category(models.TextChoices):
        MISSING_ENTITY_MAPPING = "missing_entity_mapping", "Missing legal entity mapping"
        CUSTOMER_NOT_LINKED = "customer_not_linked", "Customer not linked"
        UNMAPPED_PRODUCT = "unmapped_product", "Unmapped product"
        INVALID_TAX_JURISDICTION = "invalid_tax_jurisdiction", "Unmapped tax rate"
        MISSING_POSTING_RULE = "missing_posting_rule", "Missing posting rule"
        MISSING_FX_RATE = "missing_fx_rate", "Missing FX rate"
        AMOUNT_MISMATCH = "amount_mismatch", "Amount mismatch"
        INVALID_PAYLOAD = "invalid_payload", "Invalid source data"
        ERP_REJECTED = "erp_rejected", "Rejected by the ERP"
        CONNECTOR_UNAVAILABLE = "connector_unavailable", "Connector unavailable"
        CONNECTOR_AUTH = "connector_auth", "Connector authentication"
        PAYMENT_NOT_LINKED = "payment_not_linked", "Payment not linked to an invoice"
        DOCUMENT_NOT_POSTED = "document_not_posted", "Waiting for a document to post"
        INTERNAL_ERROR = "internal_error", "Unexpected error"

    class Severity(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        IN_PROGRESS = "in_progress", "In progress"
        RESOLVED = "resolved", "Resolved"
        IGNORED = "ignored", "Ignored"

    ACTIVE = {State.OPEN, State.IN_PROGRESS}

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="exceptions")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="exceptions")
    category = models.CharField(max_length=48, choices=Category.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.MEDIUM)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    legal_entity = models.ForeignKey(
        "sync.LegalEntity", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    summary = models.CharField(max_length=500, help_text="A sentence a finance person acts on.")
    business_key = models.CharField(
        max_length=200,
        blank=True,
        help_text="The journey's, copied when the case opens: the queue's search reads one "
        "table (with trigram indexes on PostgreSQL), not a join to a million journeys.",
    )
    context = models.JSONField(default=dict, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    root_cause = models.CharField(
        max_length=200,
        blank=True,
        help_text="What blocks the case, shared by every case one fix unblocks (sync.root_causes).",
    )
    tags = models.ManyToManyField("sync.Tag", blank=True, related_name="cases")
    resolution_note = models.TextField(blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who resolved or ignored it by hand (empty when the journey completed).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "category"], name="exception_state_idx"),
            # The queue's questions at 100,000 open cases: newest first (the index is in the
            # list's order, so a page reads 50 entries, not a sort of every open case) ...
            models.Index(
                fields=["-created_at", "-id"],
                name="exception_queue_idx",
                condition=models.Q(state__in=["open", "in_progress"]),
            ),
            # ... and grouped by cause.
            models.Index(fields=["state", "root_cause"], name="exception_cause_idx"),
        ]
        triggers = stats_triggers("exception", pg_exception_functions())

    def __str__(self) -> str:
        return f"{self.get_category_display()}: {self.summary}"


class Tag(models.Model):
    """A label finance ops put on exceptions ("quarter-end", "waiting-on-sales")."""

    name = models.SlugField(max_length=40, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
