"""Django admin for master data and mappings. Saves go through the mapping services, so the
admin validates and audits exactly as the API does; the ledger and audit are read-only here."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied

from sync import models as m
from sync.errors import PermissionDenied
from sync.mapping_kinds import needs_approval
from sync.permissions import (
    can_edit_global_mappings,
    can_edit_mappings,
    can_view,
    is_entity_limited,
)
from sync.selectors import entities_visible_to, scoped
from sync.services.mappings import mapping_delete, mapping_save


class MappingAdmin(admin.ModelAdmin):
    """Writes through ``mapping_save`` / ``mapping_delete``; integration admins only. A user
    limited to some legal entities sees only their rows, and cannot change mappings every
    entity shares (``entity_field = None``)."""

    entity_field: str | None = "legal_entity"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if self.entity_field is None:
            return qs
        return scoped(qs, request.user, self.entity_field)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is m.LegalEntity:
            kwargs["queryset"] = entities_visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _may_edit(self, request) -> bool:
        if needs_approval(self.model):
            return False  # a second admin approves these: the Mappings screen or the API
        if self.entity_field is None:
            return can_edit_global_mappings(request.user)
        return can_edit_mappings(request.user)

    def has_view_permission(self, request, obj=None):
        return can_view(request.user)

    def has_module_permission(self, request):
        return can_view(request.user)

    def has_add_permission(self, request):
        return self._may_edit(request)

    def has_change_permission(self, request, obj=None):
        return self._may_edit(request)

    def has_delete_permission(self, request, obj=None):
        return self._may_edit(request)

    def save_model(self, request, obj, form, change):
        try:
            mapping_save(actor=request.user, instance=obj)
        except PermissionDenied as exc:
            raise DjangoPermissionDenied(str(exc)) from exc

    def delete_model(self, request, obj):
        mapping_delete(actor=request.user, instance=obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            mapping_delete(actor=request.user, instance=obj)


@admin.register(m.LegalEntity)
class LegalEntityAdmin(MappingAdmin):
    entity_field = "pk"

    def _may_edit(self, request) -> bool:
        return can_edit_global_mappings(request.user)

    list_display = ("code", "name", "functional_currency", "country", "netsuite_subsidiary_id")
    search_fields = ("code", "name")


@admin.register(m.GLAccount)
class GLAccountAdmin(MappingAdmin):
    list_display = ("number", "name", "kind", "legal_entity", "is_active")
    list_filter = ("legal_entity", "kind")
    search_fields = ("number", "name")


@admin.register(m.PostingRule)
class PostingRuleAdmin(MappingAdmin):
    list_display = ("legal_entity", "revenue_type", "product_family", "effective_from")
    list_filter = ("legal_entity", "revenue_type")


@admin.register(m.ProductMapping)
class ProductMappingAdmin(MappingAdmin):
    entity_field = None
    list_display = (
        "source_ref",
        "product_code",
        "product_family",
        "revenue_type",
        "effective_from",
    )
    list_filter = ("revenue_type", "source_system")
    search_fields = ("source_ref", "product_code", "product_name")


@admin.register(m.TaxMapping)
class TaxMappingAdmin(MappingAdmin):
    list_display = (
        "source_rate_ref",
        "legal_entity",
        "jurisdiction",
        "rate_percent",
        "erp_tax_code",
    )
    list_filter = ("legal_entity",)


@admin.register(m.CustomerLink)
class CustomerLinkAdmin(MappingAdmin):
    list_display = ("billing_customer_id", "legal_entity", "crm_account_id", "erp_customer_id")
    list_filter = ("legal_entity",)
    search_fields = ("billing_customer_id", "crm_account_id", "erp_customer_id")


@admin.register(m.FxRate)
class FxRateAdmin(MappingAdmin):
    entity_field = None
    list_display = ("rate_date", "base_currency", "quote_currency", "rate")
    list_filter = ("base_currency", "quote_currency")


@admin.register(m.SlaPolicy)
class SlaPolicyAdmin(MappingAdmin):
    entity_field = None
    list_display = ("journey_type", "warning_minutes", "target_minutes")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Raw records across every entity (events, audit, alerts): for users who see every
    entity; an entity-limited user reads them through the scoped screens."""

    def has_view_permission(self, request, obj=None):
        return can_view(request.user) and not is_entity_limited(request.user)

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(m.AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor_label", "action", "object_type", "object_id")
    list_filter = ("action", "object_type")


@admin.register(m.InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "source_system", "event_type", "source_event_id", "state")
    list_filter = ("source_system", "state", "event_type")
    search_fields = ("source_event_id", "aggregate_key")


@admin.register(m.EntityAccounts)
class EntityAccountsAdmin(MappingAdmin):
    list_display = ("legal_entity", "cash_account", "customer_credit_account")


@admin.register(m.AccountingPeriod)
class AccountingPeriodAdmin(MappingAdmin):
    list_display = ("legal_entity", "period", "state", "closed_at")
    list_filter = ("legal_entity", "state")


@admin.register(m.ConnectorHealth)
class ConnectorHealthAdmin(ReadOnlyAdmin):
    """Read-only here: pause and resume go through /connectors/ (audited)."""

    list_display = ("system", "state", "consecutive_failures", "next_probe_at", "updated_at")


@admin.register(m.Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "title", "acknowledged_at")
    list_filter = ("kind",)


@admin.register(m.EntityAccess)
class EntityAccessAdmin(admin.ModelAdmin):
    """Who is limited to which legal entities: superusers only (it widens or narrows what a
    person sees)."""

    list_display = ("user", "updated_at")
    filter_horizontal = ("entities",)

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser
