"""Mapping changes that wait for a second person's approval (maker-checker)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class MappingChange(models.Model):
    """A proposed create, update or delete of a mapping that affects postings (posting rules,
    product mappings). It applies only when another integration admin approves it; until then
    the mapping is unchanged. ``values`` holds the proposed field values (foreign keys as ids),
    ``before`` the row as it was proposed against: an approval is refused if the row has changed
    since, so nobody approves a change to something they have not seen."""

    class State(models.TextChoices):
        PENDING = "pending", "Awaiting approval"
        APPLIED = "applied", "Approved and applied"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn"

    class Operation(models.TextChoices):
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        DELETE = "delete", "Delete"

    kind = models.CharField(max_length=32, help_text="Mapping kind, e.g. product_mapping.")
    operation = models.CharField(max_length=8, choices=Operation.choices)
    target_id = models.BigIntegerField(null=True, blank=True)
    legal_entity = models.ForeignKey(
        "sync.LegalEntity", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    values = models.JSONField(default=dict)
    before = models.JSONField(null=True, blank=True)
    reason = models.TextField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    proposed_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    applied_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-proposed_at", "-id"]
        indexes = [models.Index(fields=["state", "kind"], name="mapping_change_state_idx")]

    def __str__(self) -> str:
        target = f" #{self.target_id}" if self.target_id else ""
        return f"{self.get_operation_display()} {self.kind}{target} ({self.get_state_display()})"
