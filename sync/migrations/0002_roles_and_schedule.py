"""The four roles as groups, and the django-q2 schedule that sweeps for due work every minute
(a safety net behind the clock process; the sweep is idempotent)."""

from django.db import migrations

ROLES = ("finance_ops", "integration_admin", "manager", "auditor")


def forwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name="sync.sweep",
        defaults={"func": "sync.tasks.sweep", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def backwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="sync.sweep").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
