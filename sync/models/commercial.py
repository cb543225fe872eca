"""Commercial objects as the billing system last told us about them."""

from __future__ import annotations

from django.db import models


class Customer(models.Model):
    """A billing customer, kept at the latest source version we have seen."""

    source_system = models.CharField(max_length=32)
    source_id = models.CharField(max_length=128)
    name = models.CharField(max_length=200, blank=True)
    email = models.CharField(max_length=254, blank=True)
    country = models.CharField(max_length=2, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    source_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["source_system", "source_id"]
        constraints = [
            models.UniqueConstraint(fields=["source_system", "source_id"], name="uniq_customer")
        ]

    def __str__(self) -> str:
        return self.name or self.source_id


class Subscription(models.Model):
    """A billing subscription, kept at the latest source version we have seen."""

    source_system = models.CharField(max_length=32)
    source_id = models.CharField(max_length=128)
    customer_ref = models.CharField(max_length=128)
    status = models.CharField(max_length=32)
    currency = models.CharField(max_length=3, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    items = models.JSONField(default=list, blank=True)
    source_updated_at = models.DateTimeField(null=True, blank=True)
    service_ended_on = models.DateField(
        null=True,
        blank=True,
        help_text="Last day of service, once the subscription has ended (set by the "
        "cancellation journey); a schedule made later for it stops there too.",
    )

    class Meta:
        ordering = ["source_system", "source_id"]
        constraints = [
            models.UniqueConstraint(fields=["source_system", "source_id"], name="uniq_subscription")
        ]

    def __str__(self) -> str:
        return self.source_id


class Invoice(models.Model):
    """A finalized billing invoice. Amounts in minor units of ``currency``."""

    source_system = models.CharField(max_length=32)
    source_id = models.CharField(max_length=128)
    number = models.CharField(max_length=64, blank=True)
    customer_ref = models.CharField(max_length=128)
    subscription_ref = models.CharField(max_length=128, blank=True)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=32)
    issued_at = models.DateTimeField()
    subtotal_minor = models.BigIntegerField()
    tax_minor = models.BigIntegerField()
    total_minor = models.BigIntegerField()
    source_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at"]
        constraints = [
            models.UniqueConstraint(fields=["source_system", "source_id"], name="uniq_invoice")
        ]

    def __str__(self) -> str:
        return self.number or self.source_id


class InvoiceLine(models.Model):
    """One invoice line with its service period, product and tax."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    source_id = models.CharField(max_length=128)
    description = models.CharField(max_length=500, blank=True)
    price_ref = models.CharField(max_length=128, blank=True)
    product_ref = models.CharField(max_length=128, blank=True)
    quantity = models.IntegerField(default=1)
    amount_minor = models.BigIntegerField(help_text="As billed.")
    net_minor = models.BigIntegerField(help_text="Excluding tax.")
    tax_minor = models.BigIntegerField(default=0)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    proration = models.BooleanField(default=False)
    taxes = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="uniq_invoice_line")
        ]

    def __str__(self) -> str:
        return f"{self.invoice} #{self.position}"


class CreditNote(models.Model):
    """A billing credit note against an invoice. Amounts in minor units of ``currency``."""

    class Timing(models.TextChoices):
        PRE_PAYMENT = "pre_payment", "Before payment (reduces the receivable)"
        POST_PAYMENT = "post_payment", "After payment (refund or customer credit)"

    source_system = models.CharField(max_length=32)
    source_id = models.CharField(max_length=128)
    number = models.CharField(max_length=64, blank=True)
    invoice_ref = models.CharField(max_length=128)
    customer_ref = models.CharField(max_length=128)
    currency = models.CharField(max_length=3)
    timing = models.CharField(max_length=16, choices=Timing.choices)
    refunded = models.BooleanField(default=False)
    subtotal_minor = models.BigIntegerField()
    tax_minor = models.BigIntegerField()
    total_minor = models.BigIntegerField()
    issued_at = models.DateTimeField()

    class Meta:
        ordering = ["-issued_at"]
        constraints = [
            models.UniqueConstraint(fields=["source_system", "source_id"], name="uniq_credit_note")
        ]

    def __str__(self) -> str:
        return self.number or self.source_id


class CreditNoteLine(models.Model):
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    source_id = models.CharField(max_length=128)
    invoice_line_ref = models.CharField(max_length=128, blank=True)
    description = models.CharField(max_length=500, blank=True)
    net_minor = models.BigIntegerField()
    tax_minor = models.BigIntegerField(default=0)
    taxes = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["credit_note", "position"]
        constraints = [
            models.UniqueConstraint(fields=["credit_note", "position"], name="uniq_credit_line")
        ]

    def __str__(self) -> str:
        return f"{self.credit_note} #{self.position}"


class Payment(models.Model):
    """Money received for (or refunded on) an invoice, as settled by the processor; or a
    collection attempt that failed (``state`` failed: nothing settled, nothing posted), kept so
    finance can see every failed attempt per invoice."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment"
        REFUND = "refund", "Refund"

    class State(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    source_system = models.CharField(max_length=32)
    source_id = models.CharField(max_length=128)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.SUCCEEDED)
    invoice_ref = models.CharField(max_length=128, blank=True)
    customer_ref = models.CharField(max_length=128)
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField()
    fee_minor = models.BigIntegerField(default=0)
    settled_at = models.DateTimeField(
        null=True, blank=True, help_text="When the funds settled; empty for a failed attempt."
    )
    attempted_at = models.DateTimeField(
        null=True, blank=True, help_text="When the processor created the charge or refund."
    )
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-settled_at"]
        constraints = [
            models.UniqueConstraint(fields=["source_system", "source_id"], name="uniq_payment")
        ]

    def __str__(self) -> str:
        return self.source_id
