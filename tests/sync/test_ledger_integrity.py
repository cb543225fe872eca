"""The database itself refuses an unbalanced entry and any change to posted entries or audit."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DatabaseError, connection, transaction

from sync.models import AuditEntry, JournalEntry, JournalLine
from tests.factories import make_ledger

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="database triggers exist on PostgreSQL only"
    ),
]


def _entry(ledger, external_id: str, state=JournalEntry.State.DRAFT) -> JournalEntry:
    return JournalEntry.objects.create(
        legal_entity=ledger.entity,
        posting_date=dt.date(2026, 4, 1),
        currency="USD",
        functional_currency="USD",
        external_id=external_id,
        state=state,
    )


def _line(entry, no, account, debit=0, credit=0) -> JournalLine:
    return JournalLine.objects.create(
        entry=entry,
        line_no=no,
        account=account,
        debit_minor=debit,
        credit_minor=credit,
        functional_debit_minor=debit,
        functional_credit_minor=credit,
    )


def test_postgres_refuses_an_unbalanced_entry_at_commit():
    ledger = make_ledger()
    with pytest.raises(DatabaseError, match="unbalanced"), transaction.atomic():
        entry = _entry(ledger, "JE-UNBAL")
        _line(entry, 1, ledger.ar, debit=10_000)
        _line(entry, 2, ledger.revenue, credit=9_999)
    assert not JournalEntry.objects.filter(external_id="JE-UNBAL").exists()


def test_postgres_refuses_unbalanced_functional_amounts():
    ledger = make_ledger()
    with pytest.raises(DatabaseError, match="unbalanced"), transaction.atomic():
        entry = _entry(ledger, "JE-FUNC")
        JournalLine.objects.create(
            entry=entry, line_no=1, account=ledger.ar, debit_minor=100, functional_debit_minor=91
        )
        JournalLine.objects.create(
            entry=entry,
            line_no=2,
            account=ledger.revenue,
            credit_minor=100,
            functional_credit_minor=92,
        )
    assert not JournalEntry.objects.filter(external_id="JE-FUNC").exists()


def test_a_balanced_entry_commits():
    ledger = make_ledger()
    with transaction.atomic():
        entry = _entry(ledger, "JE-OK")
        _line(entry, 1, ledger.ar, debit=10_000)
        _line(entry, 2, ledger.revenue, credit=10_000)
    assert JournalLine.objects.filter(entry__external_id="JE-OK").count() == 2


@pytest.fixture
def posted(db):
    ledger = make_ledger()
    with transaction.atomic():
        entry = _entry(ledger, "JE-POSTED")
        _line(entry, 1, ledger.ar, debit=5_000)
        _line(entry, 2, ledger.revenue, credit=5_000)
    JournalEntry.objects.filter(pk=entry.pk).update(
        state=JournalEntry.State.POSTED, erp_document_id="77"
    )
    return entry


def test_postgres_refuses_updating_a_posted_entry(posted):
    with pytest.raises(DatabaseError), transaction.atomic():
        JournalEntry.objects.filter(pk=posted.pk).update(memo="edited")
    with pytest.raises(DatabaseError), transaction.atomic():
        JournalEntry.objects.filter(pk=posted.pk).update(state=JournalEntry.State.DRAFT)
    posted.refresh_from_db()
    assert posted.memo == "" and posted.state == JournalEntry.State.POSTED


def test_postgres_refuses_deleting_a_posted_entry_or_changing_its_lines(posted):
    with pytest.raises(DatabaseError), transaction.atomic():
        JournalEntry.objects.filter(pk=posted.pk).delete()
    with pytest.raises(DatabaseError, match="posted"), transaction.atomic():
        JournalLine.objects.filter(entry=posted, line_no=1).update(memo="x")
    with pytest.raises(DatabaseError, match="posted"), transaction.atomic():
        JournalLine.objects.filter(entry=posted).delete()
    with pytest.raises(DatabaseError, match="posted"), transaction.atomic():
        _line(posted, 3, posted.legal_entity.accounts.first(), debit=0, credit=0)
    assert [ln.memo for ln in posted.lines.all()] == ["", ""]


def test_postgres_refuses_updating_or_deleting_audit_rows():
    row = AuditEntry.objects.create(
        actor_label="system", action="x", object_type="t", object_id="1"
    )
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=row.pk).update(action="forged")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=row.pk).delete()
    row.refresh_from_db()
    assert row.action == "x"
