"""The screens. Every one needs a signed-in user with a role (see ``views.base.screen``)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from controltower.views import (
    alerts,
    audit,
    connectors,
    dashboard,
    exceptions,
    journeys,
    mappings,
    reports,
)

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", dashboard.dashboard, name="home"),
    path("exceptions/", exceptions.exception_list, name="exception-list"),
    path("exceptions/causes/", exceptions.exception_causes, name="exception-causes"),
    path("exceptions/<int:pk>/replay/", exceptions.exception_replay, name="exception-replay"),
    path("journeys/", journeys.journey_list, name="journey-list"),
    path("journeys/<int:pk>/", journeys.journey_detail_view, name="journey-detail"),
    path("journeys/<int:pk>/replay/", journeys.journey_replay_view, name="journey-replay"),
    path("journeys/<int:pk>/<slug:action>/", journeys.journey_action_view, name="journey-action"),
    path("reports/", reports.report_index, name="report-index"),
    path("alerts/", alerts.alert_list, name="alert-list"),
    path("alerts/<int:pk>/acknowledge/", alerts.alert_acknowledge, name="alert-acknowledge"),
    path("connectors/", connectors.connector_list, name="connector-list"),
    path(
        "connectors/<slug:system>/<slug:action>/",
        connectors.connector_action,
        name="connector-action",
    ),
    path("reports/lines/", reports.report_lines, name="report-lines"),
    path("audit/", audit.audit_log, name="audit-log"),
    path("audit/export.csv", audit.audit_export, name="audit-export"),
    path("mappings/", mappings.mapping_index, name="mapping-index"),
    path("mappings/changes/", mappings.change_list, name="mapping-changes"),
    path("mappings/changes/<int:pk>/", mappings.change_detail, name="mapping-change"),
    path(
        "mappings/changes/<int:pk>/<slug:action>/",
        mappings.change_action,
        name="mapping-change-action",
    ),
    path("mappings/fix/", mappings.mapping_fix, name="mapping-fix"),
    path("mappings/<slug:kind>/", mappings.mapping_list, name="mapping-list"),
    path("mappings/<slug:kind>/new/", mappings.mapping_edit, name="mapping-new"),
    path("mappings/<slug:kind>/<int:pk>/", mappings.mapping_edit, name="mapping-edit"),
    path(
        "mappings/<slug:kind>/<int:pk>/history/", mappings.mapping_history, name="mapping-history"
    ),
    path(
        "mappings/<slug:kind>/<int:pk>/delete/",
        mappings.mapping_delete_view,
        name="mapping-delete",
    ),
    path("reports/period/", reports.report_period_action, name="report-period-action"),
]
