"""URL map: screens, webhooks, API v1 and its schema, admin."""

from django.contrib import admin
from django.urls import include, path

from controltower import webhooks

urlpatterns = [
    path("webhooks/stripe/", webhooks.stripe_webhook, name="webhook-stripe"),
    path("admin/", admin.site.urls),
    path("api/", include("controltower.api.urls")),
    path("", include("controltower.views.urls")),
]
