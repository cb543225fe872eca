from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sqlite_stats_triggers(sender=None, using: str = "default", **kwargs) -> None:
    """On SQLite, (re)create the dashboard delta triggers after every migrate.

    Django alters a SQLite table by building a new one and renaming it, which drops the old
    table's triggers; the rows are copied before the triggers exist again, so nothing is
    counted twice. PostgreSQL alters tables in place (its triggers belong to django-pgtrigger).
    """
    from django.db import connections

    from sync import stats_sql

    connection = connections[using]
    if getattr(sender, "label", "sync") != "sync" or connection.vendor != "sqlite":
        return
    tables = set(connection.introspection.table_names())
    if not {"sync_journey", "sync_exceptioncase", stats_sql.JOURNEY_DELTA} <= tables:
        return
    with connection.cursor() as cursor:
        for sql in stats_sql.sqlite_drop_statements() + stats_sql.sqlite_create_statements():
            cursor.execute(sql)


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Revenue sync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_sqlite_stats_triggers, dispatch_uid="sync.sqlite_stats_triggers")
