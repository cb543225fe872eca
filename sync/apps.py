from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Revenue sync"
    default_auto_field = "django.db.models.BigAutoField"
