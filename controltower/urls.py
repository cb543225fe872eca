"""URL map: screens, webhooks, metrics, API v1 and its schema, admin."""

from django.contrib import admin
from django.urls import include, path

from controltower import webhooks
from controltower.metrics_view import metrics_view

urlpatterns = [
    path("webhooks/stripe/", webhooks.stripe_webhook, name="webhook-stripe"),
    path("metrics/", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include("controltower.api.urls")),
    path("", include("controltower.views.urls")),
]
