"""rows_insert / rows_update: many rows in one statement from plain values, the same result
on PostgreSQL (unnest) and elsewhere (the ORM's bulk operations)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sync.models import AuditEntry, GLAccount, LegalEntity, WebhookRejection
from sync.services.bulk import objs_insert, rows_insert, rows_update

pytestmark = pytest.mark.django_db


@pytest.fixture
def entity():
    return LegalEntity.objects.create(
        code="bulk-inc", name="Bulk Inc", functional_currency="USD", country="US"
    )


def test_rows_are_inserted_in_one_statement_and_their_ids_come_back_in_order(entity):
    rows = [(entity.pk, f"9{n:03d}", f"Account {n}", "revenue", True) for n in range(300)]
    with CaptureQueriesContext(connection) as queries:
        ids = rows_insert(
            GLAccount,
            ("legal_entity_id", "number", "name", "kind", "is_active"),
            rows,
            returning_ids=True,
        )
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    if connection.vendor == "postgresql":
        assert len(inserts) == 1 and "unnest" in inserts[0]
    assert len(ids) == 300
    got = dict(GLAccount.objects.filter(pk__in=ids).values_list("pk", "number"))
    assert [got[pk] for pk in ids] == [row[1] for row in rows]
    assert rows_insert(GLAccount, ("number",), []) == []
    assert (
        rows_insert(GLAccount, ("legal_entity_id", "number", "name", "kind", "is_active"), rows[:0])
        == []
    )


def test_values_are_prepared_as_the_orm_prepares_them(entity):
    at = dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC)
    (pk,) = rows_insert(
        WebhookRejection,
        ("source_system", "reason", "day", "count", "last_at"),
        [("stripe", "ünïcode ✓", at.date(), 2**40, at)],
        returning_ids=True,
    )
    row = WebhookRejection.objects.get(pk=pk)
    assert (row.reason, row.day, row.count, row.last_at) == ("ünïcode ✓", at.date(), 2**40, at)


def test_rows_are_updated_in_one_statement_each_to_its_own_values(entity):
    ids = rows_insert(
        GLAccount,
        ("legal_entity_id", "number", "name", "kind", "is_active"),
        [(entity.pk, f"8{n:03d}", "old", "asset", n % 2 == 0) for n in range(5)],
        returning_ids=True,
    )
    untouched = ids.pop()
    with CaptureQueriesContext(connection) as queries:
        n = rows_update(
            GLAccount, ("name", "kind"), [(pk, [f"new {pk}", "liability"]) for pk in ids]
        )
    assert n == 4
    if connection.vendor == "postgresql":
        updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
        assert len(updates) == 1 and "unnest" in updates[0]
    rows = {
        pk: (name, kind) for pk, name, kind in GLAccount.objects.values_list("pk", "name", "kind")
    }
    assert {pk: rows[pk] for pk in ids} == {pk: (f"new {pk}", "liability") for pk in ids}
    assert rows[untouched] == ("old", "asset")
    assert rows_update(GLAccount, ("name",), []) == 0


def test_a_field_that_is_not_a_plain_column_is_refused(entity):
    with pytest.raises(TypeError, match="not a plain column"):
        rows_insert(AuditEntry, ("action", "after"), [("x", {"a": 1})])
    with pytest.raises(TypeError, match="not a plain column"):
        rows_update(AuditEntry, ("before",), [(1, [{}])])
    with pytest.raises(TypeError, match="stamped by the ORM"):
        rows_insert(AuditEntry, ("at",), [(dt.datetime.now(tz=dt.UTC),)])
    assert not AuditEntry.objects.filter(action="x").exists()


def test_instances_are_inserted_as_bulk_create_would_with_their_new_ids(entity):
    """objs_insert: every field as bulk_create writes it (auto_now_add stamped, JSON through
    the field's encoder, None as NULL), the new ids on the instances in order."""
    from django.utils import timezone

    before = timezone.now()
    entries = [
        AuditEntry(
            actor_label="system",
            action="test.objs",
            object_type="x",
            object_id=str(n),
            before=None if n % 2 else {"amount": "1.10", "n": n},
            after={"day": "2026-11-27", "list": [n, "ü"], "nested": {"ok": True}},
            correlation_id="cid",
        )
        for n in range(3)
    ]
    objs_insert(entries)
    assert all(e.pk and not e._state.adding for e in entries)
    rows = {r.pk: r for r in AuditEntry.objects.filter(action="test.objs")}
    assert [rows[e.pk].object_id for e in entries] == ["0", "1", "2"]
    assert rows[entries[0].pk].before == {"amount": "1.10", "n": 0}
    assert rows[entries[1].pk].before is None
    assert rows[entries[2].pk].after == {
        "day": "2026-11-27",
        "list": [2, "ü"],
        "nested": {"ok": True},
    }
    assert all(r.at >= before for r in rows.values())  # auto_now_add stamped
    objs_insert([])  # nothing to do


def test_a_related_object_saved_after_it_was_assigned_gives_its_id(entity):
    account = GLAccount(legal_entity=entity, number="7000", name="x", kind="asset")
    other = LegalEntity(code="later-inc", name="Later", functional_currency="EUR", country="DE")
    account.legal_entity = other
    other.save()  # saved after assignment: its id is taken at insert, as bulk_create does
    objs_insert([account])
    assert GLAccount.objects.get(pk=account.pk).legal_entity_id == other.pk
