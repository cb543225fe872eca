"""API routes: v1 (router) and the OpenAPI schema that describes it."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from controltower.api import accounting, connectors, mapping_changes, mappings, reports, views

router = DefaultRouter()
router.register("journeys", views.JourneyViewSet, basename="journey")
router.register("exceptions", views.ExceptionViewSet, basename="exception")
router.register("journal-entries", views.JournalEntryViewSet, basename="journal-entry")
router.register("legal-entities", mappings.LegalEntityViewSet, basename="legal-entity")
router.register("gl-accounts", mappings.GLAccountViewSet, basename="gl-account")
router.register("posting-rules", mappings.PostingRuleViewSet, basename="posting-rule")
router.register("product-mappings", mappings.ProductMappingViewSet, basename="product-mapping")
router.register("tax-mappings", mappings.TaxMappingViewSet, basename="tax-mapping")
router.register("customer-links", mappings.CustomerLinkViewSet, basename="customer-link")
router.register("fx-rates", mappings.FxRateViewSet, basename="fx-rate")
router.register("sla-policies", mappings.SlaPolicyViewSet, basename="sla-policy")
router.register("connectors", connectors.ConnectorViewSet, basename="connector")
router.register("mapping-changes", mapping_changes.MappingChangeViewSet, basename="mapping-change")
router.register("revenue-schedules", accounting.RevenueScheduleViewSet, basename="revenue-schedule")
accounting_urls = [
    path("recognition-runs/", accounting.RecognitionRunView.as_view(), name="recognition-run"),
    path("periods/close/", accounting.PeriodCloseView.as_view(), name="period-close"),
]

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "v1/",
        include((router.urls + reports.urlpatterns + accounting_urls, "api-v1"), namespace="v1"),
    ),
]
