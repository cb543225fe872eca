"""Master data and mappings over the API: every role reads, integration admins write.

Serializers check the shape of a request; every write then goes through
``sync.services.mappings.mapping_save`` / ``mapping_delete``, the same validation and audit as
the Django admin. A ``django.core.exceptions.ValidationError`` from the service becomes a 400
naming each field (``controltower.api.errors``); deleting a row that other rows (posted
entries among them) depend on becomes a 409.

Posting rules and product mappings decide how entries post: a write to them is validated and
*proposed* (202 with the ``MappingChange``; ``/api/v1/mapping-changes/``), and applies only when
another integration admin approves it.

Legal entities are named by their code; accounts by id. Rates and percentages are decimal
strings: a JSON float is refused rather than rounded.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import django_filters as df
from django.db import models
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.validators import UniqueValidator

from controltower.api.mapping_changes import ProposeInsteadMixin
from controltower.api.permissions import CanEditMappingsOrReadOnly
from controltower.api.serializers import ErrorSerializer
from sync.models import (
    CustomerLink,
    FxRate,
    GLAccount,
    LegalEntity,
    PostingRule,
    ProductMapping,
    SlaPolicy,
    TaxMapping,
)
from sync.permissions import can_view
from sync.selectors import entities_visible_to, scoped
from sync.services.mappings import mapping_delete, mapping_save

# --- fields ------------------------------------------------------------------------------------


class DecimalStringField(serializers.DecimalField):
    """A decimal read and written as a string ("1.0842"); JSON floats are refused, since the
    parser has already rounded them to binary before we see them."""

    default_error_messages = {
        "float": 'Send this number as a decimal string, e.g. "1.0842", not a JSON float.',
    }

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, float):
            self.fail("float")
        return super().to_internal_value(data)


class EntityField(serializers.SlugRelatedField):
    """A legal entity named by its code, among those the requesting user may see (another
    entity's code reads as unknown)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("queryset", LegalEntity.objects.all())
        super().__init__(slug_field="code", **kwargs)

    def get_queryset(self) -> QuerySet:
        request = self.context.get("request")
        if request is None:
            return super().get_queryset()
        return entities_visible_to(request.user)


# --- serializers ---------------------------------------------------------------------------------


class MappingSerializer(serializers.ModelSerializer):
    # Shape only. Uniqueness and cross-row rules are left to ``mapping_save`` (model
    # ``full_clean`` plus the same-entity check), so the API and the admin cannot drift.

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DecimalField: DecimalStringField,
    }
    reason = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text="Why the change is made; recorded in the audit trail.",
    )

    def get_unique_together_validators(self) -> list:
        return []

    def get_unique_for_date_validators(self) -> list:
        return []

    def build_standard_field(self, field_name: str, model_field: models.Field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if model_field.unique:  # checked by full_clean in the service
            kwargs["validators"] = [
                v for v in kwargs.get("validators", []) if not isinstance(v, UniqueValidator)
            ]
        return field_class, kwargs


class LegalEntitySerializer(MappingSerializer):
    """A company of the group, with its functional currency and ERP subsidiary."""

    class Meta:
        model = LegalEntity
        fields = [
            "id",
            "code",
            "name",
            "functional_currency",
            "country",
            "netsuite_subsidiary_id",
            "is_active",
            "reason",
        ]


class GLAccountSerializer(MappingSerializer):
    """A general-ledger account of one legal entity (``number`` is the ERP id)."""

    legal_entity = EntityField()

    class Meta:
        model = GLAccount
        fields = ["id", "legal_entity", "number", "name", "kind", "is_active", "reason"]


class PostingRuleSerializer(MappingSerializer):
    """Accounts an invoice line posts to; all must belong to ``legal_entity``."""

    legal_entity = EntityField()

    class Meta:
        model = PostingRule
        fields = [
            "id",
            "legal_entity",
            "revenue_type",
            "product_family",
            "effective_from",
            "ar_account",
            "revenue_account",
            "deferred_revenue_account",
            "tax_payable_account",
            "fx_rounding_account",
            "reason",
        ]


class ProductMappingSerializer(MappingSerializer):
    """A billing price or product -> canonical product and revenue type."""

    class Meta:
        model = ProductMapping
        fields = [
            "id",
            "source_system",
            "source_ref",
            "product_code",
            "product_name",
            "product_family",
            "revenue_type",
            "effective_from",
            "reason",
        ]


class TaxMappingSerializer(MappingSerializer):
    """A billing tax rate -> ERP tax code and tax account of the entity."""

    legal_entity = EntityField()

    class Meta:
        model = TaxMapping
        fields = [
            "id",
            "legal_entity",
            "source_system",
            "source_rate_ref",
            "jurisdiction",
            "rate_percent",
            "erp_tax_code",
            "tax_account",
            "reason",
        ]


class CustomerLinkSerializer(MappingSerializer):
    """A billing customer linked to its CRM and ERP ids and legal entity."""

    legal_entity = EntityField()

    class Meta:
        model = CustomerLink
        fields = [
            "id",
            "legal_entity",
            "billing_system",
            "billing_customer_id",
            "crm_account_id",
            "erp_customer_id",
            "customer",
            "reason",
        ]


class FxRateSerializer(MappingSerializer):
    """Units of ``quote_currency`` one ``base_currency`` buys on ``rate_date``."""

    class Meta:
        model = FxRate
        fields = ["id", "rate_date", "base_currency", "quote_currency", "rate", "reason"]


class SlaPolicySerializer(MappingSerializer):
    """Minutes before a journey type is at risk, and before it is breached."""

    class Meta:
        model = SlaPolicy
        fields = ["id", "journey_type", "warning_minutes", "target_minutes", "reason"]


# --- filters (API only for now; move to sync.filters when the mapping screens need them) ----


class _EntityFilter(df.FilterSet):
    entity = df.CharFilter(field_name="legal_entity__code", label="Legal entity code")


class GLAccountFilter(_EntityFilter):
    class Meta:
        model = GLAccount
        fields = ["entity", "kind", "is_active", "number"]


class PostingRuleFilter(_EntityFilter):
    class Meta:
        model = PostingRule
        fields = ["entity", "revenue_type", "product_family"]


class TaxMappingFilter(_EntityFilter):
    class Meta:
        model = TaxMapping
        fields = ["entity", "source_system", "source_rate_ref"]


class CustomerLinkFilter(_EntityFilter):
    class Meta:
        model = CustomerLink
        fields = ["entity", "billing_system", "billing_customer_id", "crm_account_id"]


# --- viewsets ------------------------------------------------------------------------------------

_WRITE_RESPONSES = {
    400: OpenApiResponse(description="Invalid: a list of messages per field name."),
    403: OpenApiResponse(ErrorSerializer, description="Not an integration admin."),
}
_DELETE_RESPONSES = {
    204: None,
    403: OpenApiResponse(ErrorSerializer, description="Not an integration admin."),
    409: OpenApiResponse(ErrorSerializer, description="Still used by other rows."),
}


def _documented(cls: type[viewsets.ModelViewSet]) -> type[viewsets.ModelViewSet]:
    serializer = cls.serializer_class
    writes = {200: serializer, **_WRITE_RESPONSES}
    return extend_schema_view(
        create=extend_schema(responses={201: serializer, **_WRITE_RESPONSES}),
        update=extend_schema(responses=writes),
        partial_update=extend_schema(responses=writes),
        destroy=extend_schema(responses=_DELETE_RESPONSES),
    )(cls)


class MappingViewSet(viewsets.ModelViewSet):
    """Read for every role; create, change and delete for integration admins, through the
    mapping services."""

    permission_classes = [CanEditMappingsOrReadOnly]
    select: tuple[str, ...] = ()
    # Path to the legal entity a row belongs to; None for mappings every entity shares.
    entity_field: str | None = "legal_entity"

    def get_queryset(self) -> QuerySet:
        model = self.get_serializer_class().Meta.model
        qs = model.objects.select_related(*self.select)
        if self.entity_field is None:
            return qs if can_view(self.request.user) else qs.none()
        return scoped(qs, self.request.user, self.entity_field)

    def perform_create(self, serializer: MappingSerializer) -> None:
        data = dict(serializer.validated_data)
        reason = data.pop("reason", "")
        instance = serializer.Meta.model(**data)
        serializer.instance = mapping_save(
            actor=self.request.user, instance=instance, reason=reason
        )

    def perform_update(self, serializer: MappingSerializer) -> None:
        data = dict(serializer.validated_data)
        reason = data.pop("reason", "")
        instance = serializer.instance
        for name, value in data.items():
            setattr(instance, name, value)
        serializer.instance = mapping_save(
            actor=self.request.user, instance=instance, reason=reason
        )

    def perform_destroy(self, instance: models.Model) -> None:
        mapping_delete(actor=self.request.user, instance=instance)


@_documented
class LegalEntityViewSet(MappingViewSet):
    """Legal entities: the companies that keep books, each in one functional currency."""

    serializer_class = LegalEntitySerializer
    entity_field = "pk"
    filterset_fields = ["code", "functional_currency", "country", "is_active"]


@_documented
class GLAccountViewSet(MappingViewSet):
    """General-ledger accounts, per legal entity."""

    serializer_class = GLAccountSerializer
    filterset_class = GLAccountFilter
    select = ("legal_entity",)


@_documented
class PostingRuleViewSet(ProposeInsteadMixin, MappingViewSet):
    """Which accounts an invoice line posts to, per entity and revenue type, from a date."""

    serializer_class = PostingRuleSerializer
    filterset_class = PostingRuleFilter
    select = ("legal_entity",)


@_documented
class ProductMappingViewSet(ProposeInsteadMixin, MappingViewSet):
    """Billing prices and products -> canonical product, family and revenue type."""

    serializer_class = ProductMappingSerializer
    entity_field = None
    filterset_fields = ["source_system", "source_ref", "product_code", "revenue_type"]


@_documented
class TaxMappingViewSet(MappingViewSet):
    """Billing tax rates -> the entity's ERP tax code and tax account."""

    serializer_class = TaxMappingSerializer
    filterset_class = TaxMappingFilter
    select = ("legal_entity",)


@_documented
class CustomerLinkViewSet(MappingViewSet):
    """One customer across billing, CRM and ERP, and its legal entity."""

    serializer_class = CustomerLinkSerializer
    filterset_class = CustomerLinkFilter
    select = ("legal_entity",)


@_documented
class FxRateViewSet(MappingViewSet):
    """Exchange rates by date and currency pair, as decimal strings."""

    serializer_class = FxRateSerializer
    entity_field = None
    filterset_fields = ["rate_date", "base_currency", "quote_currency"]


@_documented
class SlaPolicyViewSet(MappingViewSet):
    """SLA thresholds per journey type."""

    serializer_class = SlaPolicySerializer
    entity_field = None
    filterset_fields = ["journey_type"]
