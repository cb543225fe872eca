from django.db import migrations

# payment_to_ledger finds the invoice_payment.paid events naming a batch's charges and payment
# intents. Containment (the GIN index of 0013) needed four OR'd conditions per payment; with
# hundreds of payments in a claim batch the planner scanned the whole inbox instead (seconds
# per batch at 100k events). Each path the connector reads now has its own partial expression
# index over just those events, so `= ANY(array)` answers any batch with four index scans.
# Other databases scan.
PATHS = {
    "inbox_link_pay_intent_idx": "{data,object,payment,payment_intent}",
    "inbox_link_intent_idx": "{data,object,payment_intent}",
    "inbox_link_pay_charge_idx": "{data,object,payment,charge}",
    "inbox_link_charge_idx": "{data,object,charge}",
}
GIN = (
    "CREATE INDEX IF NOT EXISTS inbox_payment_link_gin ON sync_inboundevent "
    "USING gin (payload jsonb_path_ops) WHERE event_type = 'invoice_payment.paid'"
)


def link_paths_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS inbox_payment_link_gin")
    for name, path in PATHS.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON sync_inboundevent "
            f"((payload #>> '{path}')) WHERE event_type = 'invoice_payment.paid'"
        )


def link_paths_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in PATHS:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
    schema_editor.execute(GIN)


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0014_step_updates_in_place"),
    ]

    operations = [
        migrations.RunPython(link_paths_create, link_paths_drop),
    ]
