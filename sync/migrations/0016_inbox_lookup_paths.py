from django.db import migrations

# Journeys find the events that name what they wait for: a refund the credit notes of its
# invoice, a failed payment the invoice.payment_failed events naming its charge or payment
# intent, a dispute the other events of that dispute. Each (event type, payload path) pair
# `inbox_events_naming` asks for gets a partial expression index over just those events, as
# the payment links did in 0015: without them each lookup scanned every event of its type
# (4 ms a refund at 10k events, ten times that at 100k). Other databases scan.
INDEXES = {
    "inbox_credit_note_invoice_idx": ("= 'credit_note.created'", "{data,object,invoice}"),
    "inbox_failed_charge_idx": ("= 'invoice.payment_failed'", "{data,object,charge}"),
    "inbox_failed_intent_idx": ("= 'invoice.payment_failed'", "{data,object,payment_intent}"),
    "inbox_dispute_id_idx": ("LIKE 'charge.dispute.%'", "{data,object,id}"),
}


def lookup_paths_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, (kind, path) in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON sync_inboundevent "
            f"((payload #>> '{path}')) WHERE event_type {kind}".replace("%", "%%")
        )


def lookup_paths_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0015_inbox_payment_link_paths"),
    ]

    operations = [
        migrations.RunPython(lookup_paths_create, lookup_paths_drop),
    ]
