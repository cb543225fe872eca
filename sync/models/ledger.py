"""What we post (or posted) to the ERP.

Two guarantees, held by the application and, on PostgreSQL, by the database itself:
every entry balances in transaction and in functional currency (a deferred constraint
trigger checks at commit, as django-hordak does), and a posted entry and its lines can
never be updated or deleted (a correction is a reversing entry).
"""

from __future__ import annotations

import pgtrigger
from django.db import models

_BALANCE_CHECK = pgtrigger.Func(
    """
    DECLARE
        eid bigint;
        d numeric; c numeric; fd numeric; fc numeric;
    BEGIN
        IF TG_OP = 'DELETE' THEN
            eid := OLD.{columns.entry};
        ELSE
            eid := NEW.{columns.entry};
        END IF;
        SELECT COALESCE(SUM({columns.debit_minor}), 0), COALESCE(SUM({columns.credit_minor}), 0),
               COALESCE(SUM({columns.functional_debit_minor}), 0),
               COALESCE(SUM({columns.functional_credit_minor}), 0)
          INTO d, c, fd, fc
          FROM {meta.db_table} WHERE {columns.entry} = eid;
        IF d <> c OR fd <> fc THEN
            RAISE EXCEPTION 'journal entry % is unbalanced: debit % <> credit % (functional % / %)',
                eid, d, c, fd, fc USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END;
    """
)

_POSTED_LINES_FROZEN = pgtrigger.Func(
    """
    DECLARE
        eid bigint;
        entry_state text;
    BEGIN
        IF TG_OP = 'DELETE' THEN
            eid := OLD.{columns.entry};
        ELSE
            eid := NEW.{columns.entry};
        END IF;
        SELECT state INTO entry_state FROM sync_journalentry WHERE id = eid;
        IF entry_state = 'posted' OR (TG_OP <> 'INSERT' AND EXISTS (
            SELECT 1 FROM sync_journalentry WHERE id = OLD.{columns.entry} AND state = 'posted'
        )) THEN
            RAISE EXCEPTION 'journal entry % is posted: its lines cannot change', eid
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END;
    """
)


class JournalEntry(models.Model):
    """A journal entry of one legal entity, posted to the ERP under ``external_id``."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        POSTING = "posting", "Posting"
        POSTED = "posted", "Posted"
        FAILED = "failed", "Failed"

    class Kind(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        RECOGNITION = "recognition", "Revenue recognition"
        CREDIT_NOTE = "credit_note", "Credit note"
        PAYMENT = "payment", "Payment"
        REFUND = "refund", "Refund"
        REVERSAL = "reversal", "Reversal"
        DISPUTE = "dispute", "Dispute"
        WRITE_OFF = "write_off", "Write-off"

    legal_entity = models.ForeignKey("sync.LegalEntity", on_delete=models.PROTECT)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.INVOICE)
    journey = models.ForeignKey(
        "sync.Journey",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="journal_entries",
    )
    posting_date = models.DateField()
    currency = models.CharField(max_length=3)
    functional_currency = models.CharField(max_length=3)
    fx_rate = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    memo = models.CharField(max_length=500, blank=True)
    external_id = models.CharField(max_length=200, unique=True)
    document_ref = models.CharField(
        max_length=128,
        blank=True,
        db_index=True,
        help_text="The billing document it settles or adjusts (invoice id): the AR sub-ledger key.",
    )
    erp_system = models.CharField(max_length=32, default="netsuite")
    erp_document_id = models.CharField(max_length=128, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    reverses = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by"
    )
    rule_versions = models.JSONField(
        default=dict, blank=True, help_text="Ids of the posting rules and mappings that built it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    posted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "journal entries"
        triggers = [
            pgtrigger.Protect(
                name="protect_posted_entry",
                operation=pgtrigger.Update | pgtrigger.Delete,
                condition=pgtrigger.Q(old__state="posted"),
            )
        ]

    def __str__(self) -> str:
        return self.external_id


class JournalLine(models.Model):
    """One line: a debit or a credit, in transaction and functional currency minor units."""

    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines")
    line_no = models.PositiveSmallIntegerField()
    account = models.ForeignKey("sync.GLAccount", on_delete=models.PROTECT, related_name="+")
    debit_minor = models.BigIntegerField(default=0)
    credit_minor = models.BigIntegerField(default=0)
    functional_debit_minor = models.BigIntegerField(default=0)
    functional_credit_minor = models.BigIntegerField(default=0)
    memo = models.CharField(max_length=500, blank=True)
    customer_ref = models.CharField(max_length=128, blank=True)
    product_code = models.CharField(max_length=64, blank=True)
    tax_code = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["entry", "line_no"]
        constraints = [
            models.UniqueConstraint(fields=["entry", "line_no"], name="uniq_journal_line_no"),
            models.CheckConstraint(
                condition=models.Q(debit_minor__gte=0, credit_minor__gte=0)
                & models.Q(functional_debit_minor__gte=0, functional_credit_minor__gte=0),
                name="journal_line_non_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(debit_minor=0) | models.Q(credit_minor=0),
                name="journal_line_one_side",
            ),
        ]
        triggers = [
            pgtrigger.Trigger(
                name="journal_entry_balanced",
                level=pgtrigger.Row,
                when=pgtrigger.After,
                operation=pgtrigger.Insert | pgtrigger.Update | pgtrigger.Delete,
                timing=pgtrigger.Deferred,
                func=_BALANCE_CHECK,
            ),
            pgtrigger.Trigger(
                name="posted_lines_frozen",
                level=pgtrigger.Row,
                when=pgtrigger.Before,
                operation=pgtrigger.Insert | pgtrigger.Update | pgtrigger.Delete,
                func=_POSTED_LINES_FROZEN,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entry} #{self.line_no}"
