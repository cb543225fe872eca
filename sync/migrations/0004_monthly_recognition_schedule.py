"""The monthly revenue recognition run, as a django-q2 schedule: on the 1st at 02:00 UTC it
starts recognition for the month that just ended, in every active entity."""

import datetime as dt

from django.db import migrations


def forwards(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    today = dt.datetime.now(dt.UTC)
    first_next = (today.replace(day=28) + dt.timedelta(days=4)).replace(
        day=1, hour=2, minute=0, second=0, microsecond=0
    )
    Schedule.objects.get_or_create(
        name="sync.recognition.monthly",
        defaults={
            "func": "sync.tasks.recognition_run_monthly",
            "schedule_type": "M",
            "repeats": -1,
            "next_run": first_next,
        },
    )


def backwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="sync.recognition.monthly").delete()


class Migration(migrations.Migration):
    dependencies = [("sync", "0003_accounting_core")]

    operations = [migrations.RunPython(forwards, backwards)]
