"""Master data and mappings that admins edit. Every change goes through a service and is audited."""

from __future__ import annotations

import datetime as dt

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

currency_code = RegexValidator(r"^[A-Z]{3}$", "Use a three-letter ISO-4217 code, e.g. USD.")
country_code = RegexValidator(r"^[A-Z]{2}$", "Use a two-letter ISO-3166 code, e.g. US.")


class RevenueType(models.TextChoices):
    RATABLE = "ratable", "Ratable subscription"
    POINT_IN_TIME = "point_in_time", "Recognized at once (usage, one-off fees)"
    ON_DELIVERY = "on_delivery", "Services on delivery"


class LegalEntity(models.Model):
    """A company in the group that keeps its own books in one functional currency."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    functional_currency = models.CharField(max_length=3, validators=[currency_code])
    country = models.CharField(max_length=2, validators=[country_code])
    netsuite_subsidiary_id = models.CharField(
        max_length=64, blank=True, help_text="Internal id of this entity's subsidiary in NetSuite."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "legal entities"

    def __str__(self) -> str:
        return f"{self.code} ({self.functional_currency})"


class GLAccount(models.Model):
    """A general-ledger account of one legal entity, identified by its ERP account id."""

    class Kind(models.TextChoices):
        ASSET = "asset", "Asset"
        LIABILITY = "liability", "Liability"
        EQUITY = "equity", "Equity"
        REVENUE = "revenue", "Revenue"
        EXPENSE = "expense", "Expense"

    legal_entity = models.ForeignKey(LegalEntity, on_delete=models.PROTECT, related_name="accounts")
    number = models.CharField(max_length=32, help_text="Account id in the ERP.")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["legal_entity__code", "number"]
        constraints = [
            models.UniqueConstraint(fields=["legal_entity", "number"], name="uniq_account_number")
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"


class PostingRule(models.Model):
    """Which accounts an invoice line posts to, per entity and revenue type, from a date.

    The most specific rule wins: a rule naming the product family beats one that leaves it
    blank; among equals, the latest ``effective_from`` on or before the posting date. Entries
    record the rule id that built them, so a later change never alters what was posted.
    """

    legal_entity = models.ForeignKey(LegalEntity, on_delete=models.PROTECT, related_name="rules")
    revenue_type = models.CharField(max_length=16, choices=RevenueType.choices)
    product_family = models.CharField(max_length=64, blank=True)
    effective_from = models.DateField(default=dt.date(2000, 1, 1))
    ar_account = models.ForeignKey(GLAccount, on_delete=models.PROTECT, related_name="+")
    revenue_account = models.ForeignKey(GLAccount, on_delete=models.PROTECT, related_name="+")
    deferred_revenue_account = models.ForeignKey(
        GLAccount, on_delete=models.PROTECT, related_name="+"
    )
    tax_payable_account = models.ForeignKey(GLAccount, on_delete=models.PROTECT, related_name="+")
    fx_rounding_account = models.ForeignKey(
        GLAccount, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    contra_revenue_account = models.ForeignKey(
        GLAccount,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        help_text="Where credit notes debit the earned part; blank debits the revenue account.",
    )

    class Meta:
        ordering = ["legal_entity__code", "revenue_type", "product_family", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["legal_entity", "revenue_type", "product_family", "effective_from"],
                name="uniq_posting_rule_version",
            )
        ]

    def __str__(self) -> str:
        family = self.product_family or "any family"
        return f"{self.legal_entity.code}/{self.revenue_type}/{family} from {self.effective_from}"


class EntityAccounts(models.Model):
    """Accounts an entity uses outside revenue lines: cash, processor fees, FX, customer credit,
    disputed payments and bad debt.

    One row per legal entity; payments, refunds, credits, FX differences, disputes and
    write-offs post here. The dispute and bad debt accounts are optional until an entity has a
    dispute or a write-off: the journey then stops with a ``missing_posting_rule`` case.
    """

    legal_entity = models.OneToOneField(
        LegalEntity, on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    cash_account = models.ForeignKey(
        GLAccount,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Cash or the payment processor's clearing account.",
    )
    processor_fee_account = models.ForeignKey(GLAccount, on_delete=models.PROTECT, related_name="+")
    fx_gain_loss_account = models.ForeignKey(GLAccount, on_delete=models.PROTECT, related_name="+")
    customer_credit_account = models.ForeignKey(
        GLAccount,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Liability for customer credit balances (overpayments, credits after payment).",
    )
    dispute_account = models.ForeignKey(
        GLAccount,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        help_text="Asset for disputed payments (chargebacks) the processor withheld until the "
        "dispute closes. Needed to post disputes.",
    )
    bad_debt_account = models.ForeignKey(
        GLAccount,
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
        help_text="Expense for receivables written off (uncollectible invoices) and disputes "
        "lost. Needed to post them.",
    )

    class Meta:
        verbose_name_plural = "entity accounts"

    def __str__(self) -> str:
        return f"Accounts of {self.legal_entity.code}"


class AccountingPeriod(models.Model):
    """A month of one entity's books. A period with no row, or an open row, is open."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    legal_entity = models.ForeignKey(LegalEntity, on_delete=models.PROTECT, related_name="periods")
    period = models.DateField(help_text="First day of the month.")
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["legal_entity__code", "-period"]
        constraints = [
            models.UniqueConstraint(fields=["legal_entity", "period"], name="uniq_period"),
            models.CheckConstraint(condition=models.Q(period__day=1), name="period_is_month_start"),
        ]

    def __str__(self) -> str:
        return f"{self.legal_entity.code} {self.period:%Y-%m} ({self.state})"


class ProductMapping(models.Model):
    """A billing price (or product) -> canonical product, family and revenue type, from a date."""

    source_system = models.CharField(max_length=32, default="stripe")
    source_ref = models.CharField(
        max_length=128, help_text="Billing price id (price_...) or product id (prod_...)."
    )
    product_code = models.CharField(max_length=64)
    product_name = models.CharField(max_length=200, blank=True)
    product_family = models.CharField(max_length=64, blank=True)
    revenue_type = models.CharField(max_length=16, choices=RevenueType.choices)
    effective_from = models.DateField(default=dt.date(2000, 1, 1))

    class Meta:
        ordering = ["source_system", "source_ref", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_system", "source_ref", "effective_from"],
                name="uniq_product_mapping_version",
            )
        ]

    def __str__(self) -> str:
        return f"{self.source_system}:{self.source_ref} -> {self.product_code}"


class TaxMapping(models.Model):
    """A billing tax rate -> the entity's ERP tax code and tax payable account."""

    legal_entity = models.ForeignKey(LegalEntity, on_delete=models.PROTECT, related_name="taxes")
    source_system = models.CharField(max_length=32, default="stripe")
    source_rate_ref = models.CharField(max_length=128, help_text="Billing tax rate id (txr_...).")
    jurisdiction = models.CharField(max_length=64, blank=True)
    rate_percent = models.DecimalField(
        max_digits=7, decimal_places=4, validators=[MinValueValidator(0)]
    )
    erp_tax_code = models.CharField(max_length=64)
    tax_account = models.ForeignKey(GLAccount, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["legal_entity__code", "source_rate_ref"]
        constraints = [
            models.UniqueConstraint(
                fields=["legal_entity", "source_system", "source_rate_ref"],
                name="uniq_tax_mapping",
            )
        ]

    def __str__(self) -> str:
        return f"{self.source_rate_ref} -> {self.erp_tax_code}"


class CustomerLink(models.Model):
    """One customer across systems: billing id <-> CRM id <-> ERP id, and its legal entity."""

    legal_entity = models.ForeignKey(LegalEntity, on_delete=models.PROTECT, related_name="links")
    billing_system = models.CharField(max_length=32, default="stripe")
    billing_customer_id = models.CharField(max_length=128)
    crm_account_id = models.CharField(max_length=128, blank=True)
    erp_customer_id = models.CharField(max_length=128, blank=True)
    customer = models.ForeignKey(
        "sync.Customer", on_delete=models.SET_NULL, null=True, blank=True, related_name="links"
    )

    class Meta:
        ordering = ["billing_system", "billing_customer_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["billing_system", "billing_customer_id"], name="uniq_customer_link"
            )
        ]

    def __str__(self) -> str:
        return f"{self.billing_system}:{self.billing_customer_id} -> {self.legal_entity.code}"


class FxRate(models.Model):
    """How many units of ``quote_currency`` one unit of ``base_currency`` buys on a date."""

    rate_date = models.DateField()
    base_currency = models.CharField(max_length=3, validators=[currency_code])
    quote_currency = models.CharField(max_length=3, validators=[currency_code])
    rate = models.DecimalField(max_digits=20, decimal_places=10, validators=[MinValueValidator(0)])

    class Meta:
        ordering = ["-rate_date", "base_currency", "quote_currency"]
        constraints = [
            models.UniqueConstraint(
                fields=["rate_date", "base_currency", "quote_currency"], name="uniq_fx_rate"
            ),
            models.CheckConstraint(condition=models.Q(rate__gt=0), name="fx_rate_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.rate_date} {self.base_currency}/{self.quote_currency} {self.rate}"


class SlaPolicy(models.Model):
    """How long a journey type may take before it is at risk, and before it is breached."""

    journey_type = models.CharField(max_length=64, unique=True)
    warning_minutes = models.PositiveIntegerField()
    target_minutes = models.PositiveIntegerField()

    class Meta:
        ordering = ["journey_type"]
        verbose_name_plural = "SLA policies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(warning_minutes__lte=models.F("target_minutes")),
                name="sla_warning_before_target",
                violation_error_message="The warning must come no later than the target: "
                "warning minutes cannot exceed target minutes.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.journey_type}: {self.target_minutes} min"
