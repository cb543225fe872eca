"""factory-boy factories and a ready-made demo-like ledger setup for tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from sync.models import (
    CustomerLink,
    EntityAccess,
    EntityAccounts,
    ExceptionCase,
    GLAccount,
    Journey,
    LegalEntity,
    PostingRule,
    ProductMapping,
    RevenueType,
    Step,
    TaxMapping,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-123")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        if extracted:
            for name in extracted:
                self.groups.add(Group.objects.get_or_create(name=name)[0])
        if create:
            self.save()

    @factory.post_generation
    def entities(self, create, extracted, **kwargs):
        """``entities=[...]`` limits the user to those legal entities (``[]``: to none)."""
        if create and extracted is not None:
            access = EntityAccess.objects.create(user=self)
            access.entities.set(extracted)


class LegalEntityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LegalEntity
        django_get_or_create = ("code",)

    code = "us-inc"
    name = "Acme US Inc."
    functional_currency = "USD"
    country = "US"
    netsuite_subsidiary_id = "1"


class GLAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GLAccount
        django_get_or_create = ("legal_entity", "number")

    legal_entity = factory.SubFactory(LegalEntityFactory)
    number = factory.Sequence(lambda n: str(1000 + n))
    name = factory.LazyAttribute(lambda a: f"Account {a.number}")
    kind = GLAccount.Kind.ASSET


@dataclass
class Ledger:
    """An entity with its chart, rules, one ratable and one usage product, and a tax rate."""

    entity: LegalEntity
    ar: GLAccount
    deferred: GLAccount
    revenue: GLAccount
    tax: GLAccount
    rounding: GLAccount
    ratable_rule: PostingRule
    usage_rule: PostingRule
    accounts: dict[str, GLAccount]


def make_ledger(
    code: str = "us-inc", currency: str = "USD", country: str = "US", subsidiary: str = "1"
) -> Ledger:
    entity = LegalEntityFactory(
        code=code,
        name=f"Acme {code}",
        functional_currency=currency,
        country=country,
        netsuite_subsidiary_id=subsidiary,
    )
    acc = {
        key: GLAccountFactory(legal_entity=entity, number=num, name=name, kind=kind)
        for key, num, name, kind in [
            ("ar", "1200", "Accounts receivable", GLAccount.Kind.ASSET),
            ("deferred", "2400", "Deferred revenue", GLAccount.Kind.LIABILITY),
            ("revenue", "4000", "Subscription revenue", GLAccount.Kind.REVENUE),
            ("tax", "2200", "Sales tax payable", GLAccount.Kind.LIABILITY),
            ("rounding", "7990", "FX rounding", GLAccount.Kind.EXPENSE),
        ]
    }
    rules = {}
    for rt in (RevenueType.RATABLE, RevenueType.POINT_IN_TIME):
        rules[rt] = PostingRule.objects.create(
            legal_entity=entity,
            revenue_type=rt,
            ar_account=acc["ar"],
            revenue_account=acc["revenue"],
            deferred_revenue_account=acc["deferred"],
            tax_payable_account=acc["tax"],
            fx_rounding_account=acc["rounding"],
        )
    return Ledger(
        entity,
        acc["ar"],
        acc["deferred"],
        acc["revenue"],
        acc["tax"],
        acc["rounding"],
        rules[RevenueType.RATABLE],
        rules[RevenueType.POINT_IN_TIME],
        acc,
    )


def add_cash_accounts(ledger: Ledger) -> EntityAccounts:
    """The accounts payments, refunds, credits and FX differences post to."""
    entity = ledger.entity
    for key, num, name, kind in [
        ("cash", "1100", "Cash / processor clearing", GLAccount.Kind.ASSET),
        ("fees", "6100", "Payment processing fees", GLAccount.Kind.EXPENSE),
        ("fx", "7900", "FX gain/loss", GLAccount.Kind.EXPENSE),
        ("credit", "2300", "Customer credit balances", GLAccount.Kind.LIABILITY),
    ]:
        ledger.accounts[key] = GLAccountFactory(
            legal_entity=entity, number=num, name=name, kind=kind
        )
    return EntityAccounts.objects.create(
        legal_entity=entity,
        cash_account=ledger.accounts["cash"],
        processor_fee_account=ledger.accounts["fees"],
        fx_gain_loss_account=ledger.accounts["fx"],
        customer_credit_account=ledger.accounts["credit"],
    )


def map_product(source_ref: str, revenue_type: str = RevenueType.RATABLE, code: str = "PLAT"):
    return ProductMapping.objects.create(
        source_system="stripe",
        source_ref=source_ref,
        product_code=code,
        product_name=code.title(),
        revenue_type=revenue_type,
        effective_from=dt.date(2000, 1, 1),
    )


def map_tax(ledger: Ledger, rate_ref: str, percent: str = "8", code: str = "US-ST") -> TaxMapping:
    return TaxMapping.objects.create(
        legal_entity=ledger.entity,
        source_system="stripe",
        source_rate_ref=rate_ref,
        jurisdiction="US",
        rate_percent=percent,
        erp_tax_code=code,
        tax_account=ledger.tax,
    )


def link_customer(ledger: Ledger, customer_id: str) -> CustomerLink:
    return CustomerLink.objects.create(
        legal_entity=ledger.entity, billing_system="stripe", billing_customer_id=customer_id
    )


class JourneyFactory(factory.django.DjangoModelFactory):
    """A journey written straight to the table (no pipeline): for screens and scoping tests
    that need rows, not behaviour."""

    class Meta:
        model = Journey

    journey_type = "invoice_to_ledger"
    business_key = factory.Sequence(lambda n: f"in_{n:06d}")
    aggregate_key = factory.LazyAttribute(lambda j: f"stripe:invoice:{j.business_key}")
    source_system = "stripe"
    legal_entity = factory.SubFactory(LegalEntityFactory)
    state = Journey.State.COMPLETED
    business_at = factory.LazyFunction(timezone.now)
    sla_warning_at = factory.LazyAttribute(lambda j: j.business_at + dt.timedelta(minutes=10))
    sla_due_at = factory.LazyAttribute(lambda j: j.business_at + dt.timedelta(minutes=15))


class StepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Step

    journey = factory.SubFactory(JourneyFactory)
    name = "post_entry"
    position = factory.Sequence(lambda n: n + 1)
    state = Step.State.SUCCEEDED


class ExceptionCaseFactory(factory.django.DjangoModelFactory):
    """An open exception on a journey in exception, with its failed step."""

    class Meta:
        model = ExceptionCase

    journey = factory.SubFactory(JourneyFactory, state=Journey.State.EXCEPTION)
    step = factory.LazyAttribute(lambda c: StepFactory(journey=c.journey, state=Step.State.FAILED))
    legal_entity = factory.LazyAttribute(lambda c: c.journey.legal_entity)
    business_key = factory.LazyAttribute(lambda c: c.journey.business_key)
    category = ExceptionCase.Category.UNMAPPED_PRODUCT
    summary = factory.LazyAttribute(
        lambda c: f"Invoice {c.journey.business_key}: price price_x has no product mapping."
    )
