"""Schedule lines carry their share of the deferral's functional amount. Existing rows are
filled from their own transaction amounts (converted at the schedule's rate when it has one)."""

from decimal import ROUND_HALF_EVEN, Decimal

from django.db import migrations, models

EXP = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3,
       "TND": 3}


def fill(apps, schema_editor):
    Line = apps.get_model("sync", "RevenueScheduleLine")
    for line in Line.objects.select_related("schedule__legal_entity").iterator():
        s = line.schedule
        if s.fx_rate is None:
            value = line.amount_minor
        else:
            shift = EXP.get(s.legal_entity.functional_currency, 2) - EXP.get(s.currency, 2)
            value = int((Decimal(line.amount_minor) * s.fx_rate * Decimal(10) ** shift).quantize(
                Decimal(1), rounding=ROUND_HALF_EVEN))
        Line.objects.filter(pk=line.pk).update(functional_amount_minor=value)


class Migration(migrations.Migration):
    dependencies = [("sync", "0004_monthly_recognition_schedule")]

    operations = [
        migrations.AddField(
            model_name="revenuescheduleline",
            name="functional_amount_minor",
            field=models.BigIntegerField(null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="revenuescheduleline",
            name="functional_amount_minor",
            field=models.BigIntegerField(
                help_text="Its share of the deferral's functional carrying amount (historical "
                "rate); the shares sum exactly to what the invoice deferred."
            ),
        ),
    ]
