"""The screens. Every one needs a signed-in user with a role (see ``views.base.screen``)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from controltower.views import alerts, connectors, dashboard, exceptions, journeys, reports

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
    path("reports/period/", reports.report_period_action, name="report-period-action"),
]
