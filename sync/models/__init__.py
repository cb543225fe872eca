"""The canonical model. One module per concern; everything is re-exported here."""

from sync.models.audit import AuditEntry
from sync.models.commercial import Customer, Invoice, InvoiceLine, Subscription
from sync.models.inbox import InboundEvent, WebhookRejection
from sync.models.journeys import ExceptionCase, Journey, Step
from sync.models.ledger import JournalEntry, JournalLine
from sync.models.mappings import (
    CustomerLink,
    FxRate,
    GLAccount,
    LegalEntity,
    PostingRule,
    ProductMapping,
    RevenueType,
    SlaPolicy,
    TaxMapping,
)

__all__ = [
    "AuditEntry",
    "Customer",
    "CustomerLink",
    "ExceptionCase",
    "FxRate",
    "GLAccount",
    "InboundEvent",
    "Invoice",
    "InvoiceLine",
    "JournalEntry",
    "JournalLine",
    "Journey",
    "LegalEntity",
    "PostingRule",
    "ProductMapping",
    "RevenueType",
    "SlaPolicy",
    "Step",
    "Subscription",
    "TaxMapping",
    "WebhookRejection",
]
