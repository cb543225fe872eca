"""Finding the inbox events that name an object (``inbox_events_naming``): the same answers
on PostgreSQL (literal paths, partial expression indexes) and elsewhere (the ORM)."""

from __future__ import annotations

import pytest
from django.db import connection

from connectors.stripe import emulator as se
from connectors.stripe.webhooks import event_parse
from sync.journeys.payment import _CHARGE_PATHS, _INTENT_PATHS
from sync.services.inbox import inbound_events_receive_bulk, inbox_events_naming

pytestmark = pytest.mark.django_db

INVOICE = ("data", "object", "invoice")
REFS = [f"ref_{n}" for n in range(1, 4001, 2)]


def _receive(*events: dict) -> None:
    inbound_events_receive_bulk(source_system="stripe", envelopes=[event_parse(e) for e in events])


def _ids(events) -> list[str]:
    return [e.source_event_id for e in events]


def test_events_naming_a_value_at_any_path_in_business_order():
    _receive(
        se.make_event(
            "credit_note.created",
            {"object": "credit_note", "id": "cn_1", "invoice": "in_a"},
            300,
            event_id="evt_e1",
        ),
        se.make_event(
            "credit_note.created",
            {"object": "credit_note", "id": "cn_2", "invoice": "in_b"},
            100,
            event_id="evt_e2",
        ),
        se.make_event(
            "credit_note.created",
            {"object": "credit_note", "id": "cn_3", "invoice": "in_a"},
            200,
            event_id="evt_e3",
        ),
        # Same path, another type: not asked for.
        se.make_event(
            "invoice.paid",
            {"object": "invoice", "id": "in_x", "invoice": "in_a"},
            50,
            event_id="evt_e4",
        ),
        se.make_event(
            "credit_note.created",
            {"object": "credit_note", "id": "cn_4", "invoice": "in_c"},
            400,
            event_id="evt_e5",
        ),
    )
    assert _ids(inbox_events_naming("credit_note.created", {INVOICE: ["in_a"]})) == [
        "evt_e3",
        "evt_e1",
    ]
    assert _ids(
        inbox_events_naming("credit_note.created", {INVOICE: ["in_a", "in_c"]}, newest_first=True)
    ) == ["evt_e5", "evt_e1", "evt_e3"]
    # Two paths, either matching; a path asked with no values is left out.
    both = inbox_events_naming(
        "credit_note.created", {INVOICE: ["in_b"], ("data", "object", "id"): ["cn_4"], ("x",): []}
    )
    assert _ids(both) == ["evt_e2", "evt_e5"]
    assert list(inbox_events_naming("credit_note.created", {INVOICE: []})) == []
    assert (
        list(
            inbox_events_naming(
                "credit_note.created", {INVOICE: ["in_a"]}, source_system="chargebee"
            )
        )
        == []
    )


def test_a_type_ending_in_a_dot_takes_every_type_it_starts():
    _receive(
        se.make_event(
            "charge.dispute.created", {"object": "dispute", "id": "dp_1"}, 100, event_id="evt_d1"
        ),
        se.make_event(
            "charge.dispute.closed", {"object": "dispute", "id": "dp_1"}, 200, event_id="evt_d2"
        ),
        se.make_event(
            "charge.dispute.closed", {"object": "dispute", "id": "dp_2"}, 300, event_id="evt_d3"
        ),
        se.make_event(
            "charge.refunded", {"object": "charge", "id": "dp_1"}, 400, event_id="evt_d4"
        ),
    )
    found = inbox_events_naming(
        "charge.dispute.", {("data", "object", "id"): ["dp_1"]}, newest_first=True
    )
    assert _ids(found) == ["evt_d2", "evt_d1"]


@pytest.mark.parametrize(
    ("event_type", "path"),
    [
        ("credit_note.created", ("data", "object", "invoice') OR 1=1 --")),
        ("credit_note.created", ("data", "Object")),
        ("credit_note.created'", ("data", "object", "invoice")),
    ],
)
def test_paths_and_types_are_checked_before_they_reach_sql(event_type, path):
    with pytest.raises(ValueError, match="not a"):
        list(inbox_events_naming(event_type, {path: ["in_a"]}))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's partial indexes")
def test_each_lookup_the_journeys_make_has_its_partial_index():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'sync_inboundevent'"
        )
        defs = dict(cursor.fetchall())
    expected = {
        "inbox_credit_note_invoice_idx": ("'credit_note.created'", "{data,object,invoice}"),
        "inbox_failed_charge_idx": ("'invoice.payment_failed'", "{data,object,charge}"),
        "inbox_failed_intent_idx": ("'invoice.payment_failed'", "{data,object,payment_intent}"),
        "inbox_dispute_id_idx": ("'charge.dispute.%'", "{data,object,id}"),
        "inbox_link_pay_intent_idx": (
            "'invoice_payment.paid'",
            "{data,object,payment,payment_intent}",
        ),
    }
    for name, (kind, path) in expected.items():
        assert kind in defs[name] and path in defs[name], defs.get(name)


# An inbox of 24,000 events, 4,000 of each type the journeys look up and of one they do
# not, each naming its own objects at every path asked for.
_INBOX_SQL = """
INSERT INTO sync_inboundevent (source_system, source_event_id, event_type, api_version,
    occurred_at, received_at, aggregate_key, payload, verification, state, state_reason)
SELECT 'stripe', 'evt_' || t.n || '_' || g, t.type, '', now(), now(), 'stripe:' || g,
    jsonb_build_object('data', jsonb_build_object('object', jsonb_build_object(
        'id', 'ref_' || g, 'invoice', 'ref_' || g, 'charge', 'ref_' || g,
        'payment_intent', 'ref_' || g,
        'payment', jsonb_build_object('charge', 'ref_' || g, 'payment_intent', 'ref_' || g)))),
    'signature_valid', 'dispatched', ''
FROM generate_series(1, 4000) AS g
CROSS JOIN (VALUES (1, 'invoice_payment.paid'), (2, 'credit_note.created'),
    (3, 'invoice.payment_failed'), (4, 'charge.dispute.created'), (5, 'charge.dispute.closed'),
    (6, 'invoice.paid')) AS t(n, type)
"""


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's partial indexes")
@pytest.mark.parametrize(
    ("event_type", "paths", "indexes"),
    [
        (
            "invoice_payment.paid",
            {**dict.fromkeys(_INTENT_PATHS, REFS), **dict.fromkeys(_CHARGE_PATHS, REFS)},
            {"inbox_link_pay_intent_idx", "inbox_link_intent_idx", "inbox_link_charge_idx"},
        ),
        ("credit_note.created", {INVOICE: REFS}, {"inbox_credit_note_invoice_idx"}),
        (
            "invoice.payment_failed",
            {("data", "object", "charge"): REFS, ("data", "object", "payment_intent"): REFS},
            {"inbox_failed_charge_idx", "inbox_failed_intent_idx"},
        ),
        ("charge.dispute.", {("data", "object", "id"): REFS}, {"inbox_dispute_id_idx"}),
    ],
)
def test_the_journeys_lookups_are_answered_from_their_indexes(event_type, paths, indexes):
    """In an inbox with statistics, a lookup of 2,000 values a path (a claim's worth) reads
    its index, one probe per value, not every event of the type (which the planner chose for
    values given as = ANY(array) this many)."""
    query = inbox_events_naming(event_type, paths)
    with connection.cursor() as cursor:
        cursor.execute(_INBOX_SQL)
        cursor.execute("ANALYZE sync_inboundevent")
        cursor.execute("EXPLAIN " + query.raw_query, query.params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan" not in plan, plan[:400]
    assert any(name in plan for name in indexes), plan[:400]
    # The index answers the values, not just the type (its predicate).
    conds = [line for line in plan.splitlines() if "Index Cond" in line]
    assert conds and all("(payload #>> '{" in line for line in conds), plan[:600]
