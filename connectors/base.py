"""The one contract every connector speaks.

Connectors exchange canonical dataclasses with the domain (``sync``) and raise
``ConnectorError`` subclasses whose class says how the engine must react:

* ``TransientError`` -- timeout, connection failure, 429, 5xx: retry with backoff, honouring
  ``retry_after`` when the remote said so.
* ``PermanentError`` -- validation or business 4xx: a person must fix data; never retried.
* ``AuthError`` -- credentials or configuration: the connector is down until fixed.

Money crosses this boundary as integer minor units plus an ISO-4217 code, never floats.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class ConnectorError(Exception):
    """Base class; ``transient`` tells the engine whether a retry can help."""

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        retry_after: float | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.details = details


class TransientError(ConnectorError):
    transient = True


class PermanentError(ConnectorError):
    transient = False


class AuthError(ConnectorError):
    transient = False


# --- canonical ledger objects (what the domain asks an ERP to post) -------------------------


@dataclass(frozen=True)
class LedgerLine:
    """One journal line. Exactly one of ``debit_minor`` / ``credit_minor`` is non-zero."""

    account: str  # ERP account id/number
    debit_minor: int
    credit_minor: int
    memo: str = ""
    customer_ref: str = ""  # ERP customer id, if known
    product_ref: str = ""
    tax_code: str = ""


@dataclass(frozen=True)
class LedgerEntry:
    """A balanced journal entry to post under ``external_id`` (the idempotency key)."""

    external_id: str
    subsidiary: str  # the legal entity's id in this ERP
    currency: str  # ISO-4217, upper case
    exponent: int  # minor-unit exponent of ``currency`` (2 for USD, 0 for JPY)
    tran_date: dt.date
    memo: str
    lines: tuple[LedgerLine, ...]

    def is_balanced(self) -> bool:
        return sum(ln.debit_minor for ln in self.lines) == sum(ln.credit_minor for ln in self.lines)


@dataclass(frozen=True)
class PostResult:
    """What the ERP answered: its internal document id for our external id."""

    document_id: str
    external_id: str


class ErpConnector(Protocol):
    """What the ledger side of the engine needs from any ERP."""

    system: str
    #: Entries per bulk call (``post_journal_entries`` splits larger lists into calls).
    batch_limit: int

    def post_journal_entry(self, entry: LedgerEntry) -> PostResult:
        """Create or return the entry for ``entry.external_id``; never creates two."""

    def find_journal_entry(self, external_id: str) -> PostResult | None:
        """Read back by external id; ``None`` when the ERP has no such entry."""

    def post_journal_entries(
        self, entries: Sequence[LedgerEntry]
    ) -> list[PostResult | ConnectorError]:
        """``post_journal_entry`` for many, in as few calls as the ERP allows: each entry's
        outcome in order. The entries of a call that failed as a whole share its one
        exception object, so a caller counts one failure per call."""

    def find_journal_entries(self, external_ids: Sequence[str]) -> dict[str, PostResult]:
        """Read back many by external id; absent ones are left out."""


# --- canonical billing objects (what a billing connector parses webhooks into) --------------


@dataclass(frozen=True)
class BillingTax:
    amount_minor: int
    rate_ref: str  # billing system's tax rate id (e.g. txr_...)
    inclusive: bool
    jurisdiction: str = ""
    percentage: str = ""  # decimal as text, e.g. "19" or "8.25"


@dataclass(frozen=True)
class BillingInvoiceLine:
    source_id: str
    description: str
    amount_minor: int  # as billed (tax-inclusive where the tax is inclusive)
    quantity: int
    price_ref: str
    product_ref: str
    period_start: dt.datetime | None
    period_end: dt.datetime | None
    proration: bool
    taxes: tuple[BillingTax, ...] = ()

    @property
    def tax_minor(self) -> int:
        return sum(t.amount_minor for t in self.taxes)

    @property
    def net_minor(self) -> int:
        """Amount excluding tax."""
        return self.amount_minor - sum(t.amount_minor for t in self.taxes if t.inclusive)


@dataclass(frozen=True)
class BillingInvoice:
    source_id: str
    number: str
    customer_ref: str
    subscription_ref: str
    currency: str  # upper case
    status: str
    created: dt.datetime
    finalized_at: dt.datetime | None
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    lines: tuple[BillingInvoiceLine, ...]
    billing_reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BillingCustomer:
    source_id: str
    name: str
    email: str
    country: str
    currency: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BillingSubscription:
    source_id: str
    customer_ref: str
    status: str
    currency: str
    current_period_start: dt.datetime | None
    current_period_end: dt.datetime | None
    items: tuple[tuple[str, str, int], ...]  # (price_ref, product_ref, quantity)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookEnvelope:
    """A verified inbound event: what the inbox stores."""

    event_id: str
    event_type: str
    created: dt.datetime
    api_version: str
    object_type: str
    object_id: str
    payload: dict[str, Any]


# --- canonical payment-side billing objects (credit notes, payments, refunds) ---------------


@dataclass(frozen=True)
class BillingCreditNoteLine:
    source_id: str
    invoice_line_ref: str  # the credited invoice line's id; "" for a custom (free-text) line
    description: str
    net_minor: int  # credited amount excluding tax
    tax_minor: int  # tax credited on this line (inclusive and exclusive)
    taxes: tuple[BillingTax, ...] = ()


@dataclass(frozen=True)
class BillingCreditNote:
    """A credit note against one invoice.

    ``timing`` says what the credit did: ``"pre_payment"`` reduced what the customer still owed
    on the invoice; ``"post_payment"`` came after payment and was settled by a refund
    (``refunded_minor``), a credit to the customer's balance (``credited_to_balance_minor``)
    and/or outside the billing system (``out_of_band_minor``); ``"mixed"`` (newer Stripe API
    versions only) did both -- ``pre_payment_minor`` + ``post_payment_minor`` == ``total_minor``.
    """

    source_id: str
    number: str
    invoice_ref: str
    customer_ref: str
    currency: str  # upper case
    timing: str  # "pre_payment" | "post_payment" | "mixed"
    refunded_minor: int
    credited_to_balance_minor: int
    subtotal_minor: int  # sum of line amounts as credited (incl. inclusive tax, excl. exclusive)
    tax_minor: int
    total_minor: int  # what the credit note is worth, all tax included
    issued_at: dt.datetime
    lines: tuple[BillingCreditNoteLine, ...]
    out_of_band_minor: int = 0
    pre_payment_minor: int = 0
    post_payment_minor: int = 0
    status: str = ""  # "issued" | "void"
    refund_refs: tuple[str, ...] = ()  # the refunds that paid the post-payment part out
    customer_balance_transaction_ref: str = ""
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BillingPayment:
    """Money in (``kind="payment"``) or back out (``kind="refund"``) for a customer.

    All amounts are positive magnitudes for both kinds. ``amount_minor`` is in ``currency`` (what
    the customer paid or got back); ``settlement_amount_minor`` and ``fee_minor`` are in
    ``settlement_currency`` (what moved on the merchant's balance). For a refund ``fee_minor``
    is the fee given back to the merchant (usually 0). The settlement fields are empty
    (``""`` / 0) when the payload did not carry the balance transaction.
    """

    source_id: str
    kind: str  # "payment" | "refund"
    invoice_ref: str  # "" when the payload does not say (see the connector's docs)
    customer_ref: str
    currency: str  # upper case
    amount_minor: int
    fee_minor: int
    settlement_currency: str  # upper case; "" when unknown
    settlement_amount_minor: int
    exchange_rate: str  # decimal text, currency -> settlement_currency, major units; "" for none
    settled_at: dt.datetime | None  # when the funds became (or become) available
    charge_ref: str  # the charge paid (a payment's own id) or refunded
    status: str
    payment_intent_ref: str = ""
    balance_transaction_ref: str = ""
    created: dt.datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def net_settlement_minor(self) -> int:
        """What the merchant's balance gained (payment) or lost (refund), net of fees."""
        return self.settlement_amount_minor - self.fee_minor


@dataclass(frozen=True)
class BillingInvoicePayment:
    """The link between one invoice and one payment (charge or payment intent)."""

    source_id: str  # "" when synthesised from an older invoice's own charge/payment_intent
    invoice_ref: str
    currency: str  # upper case
    amount_requested_minor: int
    amount_paid_minor: int  # 0 until paid
    status: str  # e.g. "open" | "paid" | "canceled"
    payment_intent_ref: str
    charge_ref: str
    paid_at: dt.datetime | None
    is_default: bool = True
    payment_record_ref: str = ""
    created: dt.datetime | None = None


@dataclass(frozen=True)
class BillingPaymentFailure:
    """A collection attempt that failed: no money moved. ``payment`` is the attempt as a
    ``BillingPayment`` (status ``"failed"``, no settlement); the rest is the processor's reason."""

    payment: BillingPayment
    failure_code: str  # e.g. "card_declined"; "" when the processor gave none
    failure_message: str
    decline_code: str = ""  # the issuer's finer reason (Stripe ``outcome.reason``)
    seller_message: str = ""


@dataclass(frozen=True)
class BillingDisputeFunds:
    """One movement of a disputed payment on the merchant's balance.

    ``direction`` is ``"withdrawn"`` (the processor took the disputed amount) or
    ``"reinstated"`` (it gave it back). ``amount_minor`` is a positive magnitude in
    ``currency`` (the settlement currency); ``fee_minor`` is signed: positive for a fee the
    processor kept, negative for a fee it gave back. ``exchange_rate`` (decimal text, "" for
    none) converts the dispute currency into ``currency``, major units.
    """

    source_id: str
    direction: str  # "withdrawn" | "reinstated"
    currency: str  # upper case
    amount_minor: int
    fee_minor: int
    exchange_rate: str
    available_at: dt.datetime | None

    @property
    def net_minor(self) -> int:
        """What the merchant's balance gained (positive) or lost (negative)."""
        signed = self.amount_minor if self.direction == "reinstated" else -self.amount_minor
        return signed - self.fee_minor


@dataclass(frozen=True)
class BillingDispute:
    """A customer's dispute (chargeback or inquiry) of one payment.

    ``amount_minor`` is the disputed amount in ``currency`` (the charge's); ``funds`` the
    balance movements so far, oldest first (none for an inquiry, one withdrawal once funds are
    taken, a reinstatement after a won dispute). ``status`` is the processor's (Stripe:
    ``warning_needs_response``, ``warning_under_review``, ``warning_closed``,
    ``needs_response``, ``under_review``, ``won``, ``lost``, ``prevented``).
    """

    source_id: str
    charge_ref: str
    payment_intent_ref: str
    currency: str  # upper case
    amount_minor: int
    status: str
    reason: str
    created: dt.datetime
    funds: tuple[BillingDisputeFunds, ...] = ()
    is_inquiry: bool = False
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def withdrawal(self) -> BillingDisputeFunds | None:
        return next((f for f in self.funds if f.direction == "withdrawn"), None)

    @property
    def reinstatement(self) -> BillingDisputeFunds | None:
        return next((f for f in self.funds if f.direction == "reinstated"), None)


@dataclass(frozen=True)
class BillingInvoiceBalance:
    """What is still owed on an invoice, as the billing system sees it (all ``currency``)."""

    source_id: str
    customer_ref: str
    currency: str  # upper case
    status: str
    total_minor: int
    amount_due_minor: int
    amount_paid_minor: int
    amount_remaining_minor: int
    marked_uncollectible_at: dt.datetime | None = None
    created: dt.datetime | None = None
