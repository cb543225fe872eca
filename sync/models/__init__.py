"""The canonical model. One module per concern; everything is re-exported here."""

from sync.models.access import EntityAccess
from sync.models.audit import AuditEntry
from sync.models.changes import MappingChange
from sync.models.commercial import (
    CreditNote,
    CreditNoteLine,
    Customer,
    Invoice,
    InvoiceLine,
    Payment,
    Subscription,
)
from sync.models.connectors import ConnectorHealth
from sync.models.inbox import InboundEvent, WebhookRejection
from sync.models.journeys import ExceptionCase, Journey, Step, Tag
from sync.models.ledger import JournalEntry, JournalLine
from sync.models.mappings import (
    AccountingPeriod,
    CustomerLink,
    EntityAccounts,
    FxRate,
    GLAccount,
    LegalEntity,
    PostingRule,
    ProductMapping,
    RevenueType,
    SlaPolicy,
    TaxMapping,
)
from sync.models.notifications import Notification
from sync.models.revenue import RevenueSchedule, RevenueScheduleLine
from sync.models.stats import (
    ExceptionOpenStats,
    ExceptionStatDelta,
    JourneyDayStats,
    JourneyGauge,
    JourneyStatDelta,
)

__all__ = [
    "AccountingPeriod",
    "AuditEntry",
    "ConnectorHealth",
    "CreditNote",
    "CreditNoteLine",
    "Customer",
    "CustomerLink",
    "EntityAccess",
    "EntityAccounts",
    "ExceptionCase",
    "ExceptionOpenStats",
    "ExceptionStatDelta",
    "FxRate",
    "GLAccount",
    "InboundEvent",
    "Invoice",
    "InvoiceLine",
    "JournalEntry",
    "JournalLine",
    "Journey",
    "JourneyDayStats",
    "JourneyGauge",
    "JourneyStatDelta",
    "LegalEntity",
    "MappingChange",
    "Notification",
    "Payment",
    "PostingRule",
    "ProductMapping",
    "RevenueSchedule",
    "RevenueScheduleLine",
    "RevenueType",
    "SlaPolicy",
    "Step",
    "Subscription",
    "Tag",
    "TaxMapping",
    "WebhookRejection",
]
