"""Revenue schedules: when each billed amount becomes revenue (ASC 606 / IFRS 15).

Every invoice line with revenue gets one schedule; its lines say how much is recognized in
which month. Lines always sum exactly to the schedule total (largest-remainder rounding).
A recognition run marks lines recognized with the entry that posted them, so no line is ever
recognized twice; credits reduce planned lines, cancellations cancel them.
"""

from __future__ import annotations

from django.db import models


class RevenueSchedule(models.Model):
    class Source(models.TextChoices):
        INVOICE_LINE = "invoice_line", "Invoice line"
        CREDIT_NOTE_LINE = "credit_note_line", "Credit note line"

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        CANCELLED = "cancelled", "Cancelled"

    legal_entity = models.ForeignKey("sync.LegalEntity", on_delete=models.PROTECT)
    source_kind = models.CharField(max_length=24, choices=Source.choices)
    source_ref = models.CharField(max_length=128, help_text="Billing line id.")
    invoice_line = models.ForeignKey(
        "sync.InvoiceLine",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="schedules",
    )
    journey = models.ForeignKey(
        "sync.Journey", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    customer_ref = models.CharField(max_length=128, blank=True)
    product_code = models.CharField(max_length=64)
    revenue_type = models.CharField(max_length=16)
    currency = models.CharField(max_length=3)
    fx_rate = models.DecimalField(
        max_digits=20,
        decimal_places=10,
        null=True,
        blank=True,
        help_text="Historical rate of the deferral (deferred revenue is non-monetary).",
    )
    total_minor = models.BigIntegerField()
    deferred_account = models.ForeignKey(
        "sync.GLAccount", on_delete=models.PROTECT, related_name="+"
    )
    revenue_account = models.ForeignKey(
        "sync.GLAccount", on_delete=models.PROTECT, related_name="+"
    )
    service_start = models.DateField(null=True, blank=True)
    service_end = models.DateField(null=True, blank=True, help_text="Exclusive.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["legal_entity__code", "service_start", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_kind", "source_ref"], name="uniq_schedule_source"
            )
        ]

    def __str__(self) -> str:
        return f"{self.product_code} {self.source_ref}"


class RevenueScheduleLine(models.Model):
    class State(models.TextChoices):
        PLANNED = "planned", "Planned"
        RECOGNIZED = "recognized", "Recognized"
        CANCELLED = "cancelled", "Cancelled"

    schedule = models.ForeignKey(RevenueSchedule, on_delete=models.CASCADE, related_name="lines")
    period = models.DateField(
        null=True,
        blank=True,
        help_text="Month it belongs to (first day); empty until delivery for on-delivery lines.",
    )
    amount_minor = models.BigIntegerField()
    functional_amount_minor = models.BigIntegerField(
        help_text="Its share of the deferral's functional carrying amount (historical rate); "
        "the shares sum exactly to what the invoice deferred."
    )
    credited_minor = models.BigIntegerField(
        default=0, help_text="Of a recognized line: how much credit notes have since reversed."
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PLANNED)
    recognized_period = models.DateField(
        null=True, blank=True, help_text="Month it was recognized in (a later open one if late)."
    )
    recognition_entry = models.ForeignKey(
        "sync.JournalEntry",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="recognized_lines",
    )

    class Meta:
        ordering = ["schedule", "period", "id"]
        indexes = [models.Index(fields=["state", "period"], name="schedule_line_due_idx")]

    def __str__(self) -> str:
        return f"{self.schedule} {self.period} {self.amount_minor}"
