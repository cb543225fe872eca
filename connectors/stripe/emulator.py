"""A Stripe-side emulator for the demo and the tests.

Builders return plain dicts shaped like the objects Stripe sends in webhooks, in the CURRENT API
shape (invoice subscription under ``parent.subscription_details``, line price/product under
``pricing.price_details``, line taxes in ``taxes[]``), plus ``make_invoice_pre_basil`` for the
older shape an endpoint pinned to an old API version still receives. Totals are computed the way
Stripe computes them:

* a line's ``amount`` is what is billed for it -- it includes inclusive tax, excludes exclusive;
* ``subtotal`` = sum of line amounts; ``total`` = ``subtotal`` + exclusive tax;
* ``total_excluding_tax`` = ``total`` - all tax.

Ids look like Stripe's (``cus_``, ``sub_``, ``in_``, ``il_``, ``price_``, ``prod_``, ``txr_``,
``evt_`` ...). Pass ``rng=random.Random(seed)`` to any builder for reproducible ids; without it ids
come from ``secrets``.

``deliver`` is the only function that does I/O: it POSTs one signed event to a URL (our own local
webhook endpoint), serializing once and sending exactly the bytes it signed.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import random
import secrets
import string
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

import httpx
import simplejson
import stripe

from connectors.currency import exponent as currency_exponent

__all__ = [
    "CURRENT_API_VERSION",
    "PRE_BASIL_API_VERSION",
    "ItemSpec",
    "LineSpec",
    "TaxSpec",
    "close_dispute",
    "convert_minor",
    "default_fee",
    "deliver",
    "make_balance_transaction",
    "make_charge",
    "make_credit_note",
    "make_customer",
    "make_dispute",
    "make_event",
    "make_failed_charge",
    "make_invoice",
    "make_invoice_payment",
    "make_invoice_pre_basil",
    "make_refund",
    "make_subscription",
    "make_tax_rate",
    "new_id",
    "refunded_charge",
    "serialize",
    "sign_payload",
    "uncollectible_invoice",
]

CURRENT_API_VERSION: str = stripe.api_version  # the version the installed SDK is pinned to
PRE_BASIL_API_VERSION = "2024-06-20"  # before 2025-03-31.basil moved invoice/line fields

_ID_ALPHABET = string.ascii_letters + string.digits
_MONTH = 30 * 24 * 3600
_INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")

Timestamp = int | dt.datetime


# --- ids, times, money ----------------------------------------------------------------------------


def new_id(prefix: str, rng: random.Random | None = None, *, length: int = 24) -> str:
    """A Stripe-looking id such as ``in_4fTq...``; deterministic when ``rng`` is seeded."""
    if rng is None:
        body = "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))
    else:
        body = "".join(rng.choice(_ID_ALPHABET) for _ in range(length))
    return f"{prefix}_{body}"


def _unix(value: Timestamp | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the Stripe emulator; use an aware one")
        return int(value.timestamp())
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"timestamp must be unix seconds or an aware datetime, got {value!r}")
    return value


def _now() -> int:
    return int(time.time())


def _percentage(value: Decimal | str | int | float | None) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value) if not isinstance(value, Decimal) else value


def _round_half_up(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def _unit_amount_decimal(amount: int, quantity: int) -> str:
    if quantity == 0:
        return "0"
    with localcontext() as ctx:
        ctx.prec = 60
        unit = (Decimal(amount) / Decimal(quantity)).quantize(Decimal("1e-12"))
    text = format(unit.normalize(), "f")
    return text


def _metadata(value: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


# --- specs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaxSpec:
    """One tax on a line. Give ``amount_minor``, or ``percentage`` to have it computed.

    Computed amounts round half up: exclusive ``amount * p / 100``, inclusive
    ``amount * p / (100 + p)`` (the tax contained in an inclusive amount).
    """

    amount_minor: int | None = None
    inclusive: bool = False
    rate_id: str | None = None
    percentage: Decimal | str | int | None = None
    jurisdiction: str = ""
    display_name: str = "VAT"


@dataclass(frozen=True)
class LineSpec:
    """One invoice line. ``amount_minor`` is what the line bills (incl. inclusive tax)."""

    amount_minor: int
    price_id: str | None = None
    product_id: str | None = None
    quantity: int = 1
    description: str = ""
    period_start: Timestamp | None = None
    period_end: Timestamp | None = None
    proration: bool = False
    taxes: tuple[TaxSpec, ...] = ()
    metadata: Mapping[str, str] | None = None
    subscription_item_id: str | None = None


@dataclass(frozen=True)
class ItemSpec:
    """One subscription item."""

    price_id: str | None = None
    product_id: str | None = None
    quantity: int = 1
    unit_amount: int = 1000
    interval: str = "month"
    item_id: str | None = None
    metadata: Mapping[str, str] | None = field(default=None)


def _tax_spec(value: TaxSpec | Mapping[str, Any]) -> TaxSpec:
    if isinstance(value, TaxSpec):
        return value
    data = dict(value)
    if "amount" in data and "amount_minor" not in data:
        data["amount_minor"] = data.pop("amount")
    return TaxSpec(**data)


def _line_spec(value: LineSpec | Mapping[str, Any]) -> LineSpec:
    if isinstance(value, LineSpec):
        spec = value
    else:
        data = dict(value)
        taxes = list(data.pop("taxes", ()) or ())
        if data.get("tax") is not None:
            taxes.append(data.pop("tax"))
        data.pop("tax", None)
        if "amount" in data and "amount_minor" not in data:
            data["amount_minor"] = data.pop("amount")
        spec = LineSpec(**data, taxes=tuple(_tax_spec(t) for t in taxes))
    if not all(isinstance(t, TaxSpec) for t in spec.taxes):
        spec = LineSpec(
            **{**spec.__dict__, "taxes": tuple(_tax_spec(t) for t in spec.taxes)},
        )
    return spec


def _item_spec(value: ItemSpec | Mapping[str, Any] | Sequence[Any]) -> ItemSpec:
    if isinstance(value, ItemSpec):
        return value
    if isinstance(value, Mapping):
        return ItemSpec(**value)
    return ItemSpec(*value)


@dataclass(frozen=True)
class _BuiltTax:
    amount: int
    inclusive: bool
    rate_id: str
    spec: TaxSpec

    def taxable_amount(self, line_amount: int) -> int:
        return line_amount - self.amount if self.inclusive else line_amount


@dataclass
class _BuiltLine:
    spec: LineSpec
    line_id: str
    price_id: str
    product_id: str
    period_start: int
    period_end: int
    taxes: list[_BuiltTax]


def _build_taxes(spec: LineSpec, rng: random.Random | None) -> list[_BuiltTax]:
    built = []
    for tax in spec.taxes:
        amount = tax.amount_minor
        if amount is None:
            pct = _percentage(tax.percentage)
            if pct is None:
                raise ValueError("a TaxSpec needs amount_minor or percentage")
            base = Decimal(spec.amount_minor)
            with localcontext() as ctx:
                ctx.prec = 60
                raw = base * pct / (100 + pct) if tax.inclusive else base * pct / 100
            amount = _round_half_up(raw)
        built.append(
            _BuiltTax(
                amount=amount,
                inclusive=tax.inclusive,
                rate_id=tax.rate_id or new_id("txr", rng),
                spec=tax,
            )
        )
    return built


def _build_lines(
    lines: Iterable[LineSpec | Mapping[str, Any]],
    *,
    default_start: int,
    default_end: int,
    rng: random.Random | None,
) -> list[_BuiltLine]:
    built = []
    for raw in lines:
        spec = _line_spec(raw)
        if isinstance(spec.amount_minor, bool) or not isinstance(spec.amount_minor, int):
            raise TypeError(f"amount_minor must be an int (minor units), got {spec.amount_minor!r}")
        built.append(
            _BuiltLine(
                spec=spec,
                line_id=new_id("il", rng),
                price_id=spec.price_id or new_id("price", rng),
                product_id=spec.product_id or new_id("prod", rng),
                period_start=_unix(spec.period_start, default_start),
                period_end=_unix(spec.period_end, default_end),
                taxes=_build_taxes(spec, rng),
            )
        )
    return built


def _aggregate_taxes(lines: list[_BuiltLine]) -> list[tuple[str, bool, int, int]]:
    """(rate_id, inclusive, amount, taxable_amount) per rate and behaviour, in first-seen order."""
    totals: dict[tuple[str, bool], list[int]] = {}
    for line in lines:
        for tax in line.taxes:
            acc = totals.setdefault((tax.rate_id, tax.inclusive), [0, 0])
            acc[0] += tax.amount
            acc[1] += tax.taxable_amount(line.spec.amount_minor)
    return [(rate, incl, amt, taxable) for (rate, incl), (amt, taxable) in totals.items()]


def _totals(lines: list[_BuiltLine]) -> dict[str, int]:
    subtotal = sum(line.spec.amount_minor for line in lines)
    inclusive = sum(t.amount for line in lines for t in line.taxes if t.inclusive)
    exclusive = sum(t.amount for line in lines for t in line.taxes if not t.inclusive)
    total = subtotal + exclusive
    return {
        "subtotal": subtotal,
        "subtotal_excluding_tax": subtotal - inclusive,
        "tax": inclusive + exclusive,
        "total": total,
        "total_excluding_tax": total - inclusive - exclusive,
    }


def _status_transitions(status: str, finalized_at: int | None) -> dict[str, int | None]:
    return {
        "finalized_at": finalized_at,
        "marked_uncollectible_at": finalized_at if status == "uncollectible" else None,
        "paid_at": finalized_at if status == "paid" else None,
        "voided_at": finalized_at if status == "void" else None,
    }


def _invoice_common(
    *,
    status: str,
    number: str | None,
    created: Timestamp | None,
    finalized_at: Timestamp | None,
    rng: random.Random | None,
) -> tuple[int, int | None, str | None]:
    if status not in _INVOICE_STATUSES:
        raise ValueError(f"invoice status must be one of {_INVOICE_STATUSES}, got {status!r}")
    created_ts = _unix(created, _now())
    finalized_ts = None if status == "draft" else _unix(finalized_at, created_ts)
    if number is None and status != "draft":
        prefix = new_id("x", rng, length=8)[2:].upper()
        number = f"{prefix}-0001"
    return created_ts, finalized_ts, number


# --- customers, tax rates, subscriptions ----------------------------------------------------------


def make_customer(
    *,
    name: str | None = "Acme GmbH",
    email: str | None = "billing@acme.example",
    country: str | None = "DE",
    currency: str | None = "eur",
    description: str | None = None,
    metadata: Mapping[str, str] | None = None,
    customer_id: str | None = None,
    created: Timestamp | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A ``customer`` object."""
    return {
        "id": customer_id or new_id("cus", rng, length=14),
        "object": "customer",
        "address": {
            "city": None,
            "country": country,
            "line1": None,
            "line2": None,
            "postal_code": None,
            "state": None,
        },
        "balance": 0,
        "created": _unix(created, _now()),
        "currency": currency.lower() if currency else None,
        "default_source": None,
        "delinquent": False,
        "description": description,
        "discount": None,
        "email": email,
        "invoice_prefix": new_id("x", rng, length=8)[2:].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": _metadata(metadata),
        "name": name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def make_tax_rate(
    percentage: Decimal | str | int,
    *,
    inclusive: bool = False,
    jurisdiction: str = "",
    display_name: str = "VAT",
    country: str | None = None,
    rate_id: str | None = None,
    created: Timestamp | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A ``tax_rate`` object; ``percentage`` is kept as a ``Decimal`` (see ``serialize``)."""
    pct = _percentage(percentage)
    return {
        "id": rate_id or new_id("txr", rng),
        "object": "tax_rate",
        "active": True,
        "country": country,
        "created": _unix(created, _now()),
        "description": None,
        "display_name": display_name,
        "effective_percentage": pct,
        "flat_amount": None,
        "inclusive": inclusive,
        "jurisdiction": jurisdiction or None,
        "jurisdiction_level": None,
        "livemode": False,
        "metadata": {},
        "percentage": pct,
        "rate_type": "percentage",
        "state": None,
        "tax_type": "vat",
    }


def _price_object(
    *,
    price_id: str,
    product_id: str,
    currency: str,
    unit_amount: int | None,
    unit_amount_decimal: str,
    recurring_interval: str | None,
    created: int,
    tax_behavior: str = "unspecified",
) -> dict[str, Any]:
    return {
        "id": price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": product_id,
        "recurring": (
            {
                "interval": recurring_interval,
                "interval_count": 1,
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
            if recurring_interval
            else None
        ),
        "tax_behavior": tax_behavior,
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring_interval else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": unit_amount_decimal,
    }


def make_subscription(
    customer_id: str,
    items: Sequence[ItemSpec | Mapping[str, Any] | Sequence[Any]],
    *,
    currency: str = "eur",
    status: str = "active",
    current_period_start: Timestamp | None = None,
    current_period_end: Timestamp | None = None,
    metadata: Mapping[str, str] | None = None,
    subscription_id: str | None = None,
    created: Timestamp | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A ``subscription`` object (current shape: the period lives on each item)."""
    created_ts = _unix(created, _now())
    start = _unix(current_period_start, created_ts)
    end = _unix(current_period_end, start + _MONTH)
    sub_id = subscription_id or new_id("sub", rng)
    cur = currency.lower()
    data = []
    for raw in items:
        spec = _item_spec(raw)
        data.append(
            {
                "id": spec.item_id or new_id("si", rng, length=14),
                "object": "subscription_item",
                "billing_thresholds": None,
                "created": created_ts,
                "current_period_end": end,
                "current_period_start": start,
                "discounts": [],
                "metadata": _metadata(spec.metadata),
                "price": _price_object(
                    price_id=spec.price_id or new_id("price", rng),
                    product_id=spec.product_id or new_id("prod", rng, length=14),
                    currency=cur,
                    unit_amount=spec.unit_amount,
                    unit_amount_decimal=str(spec.unit_amount),
                    recurring_interval=spec.interval,
                    created=created_ts,
                ),
                "quantity": spec.quantity,
                "subscription": sub_id,
                "tax_rates": [],
            }
        )
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": start,
        "billing_mode": {"type": "classic"},
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": created_ts,
        "currency": cur,
        "customer": customer_id,
        "days_until_due": None,
        "default_payment_method": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "items": {
            "object": "list",
            "data": data,
            "has_more": False,
            "total_count": len(data),
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": None,
        "livemode": False,
        "metadata": _metadata(metadata),
        "pending_update": None,
        "schedule": None,
        "start_date": created_ts,
        "status": status,
        "test_clock": None,
        "trial_end": None,
        "trial_start": None,
    }


# --- invoices (current shape) ---------------------------------------------------------------------


def make_invoice(
    customer_id: str,
    lines: Sequence[LineSpec | Mapping[str, Any]],
    currency: str = "eur",
    number: str | None = None,
    subscription_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    status: str = "open",
    *,
    subscription_metadata: Mapping[str, str] | None = None,
    billing_reason: str | None = None,
    invoice_id: str | None = None,
    created: Timestamp | None = None,
    finalized_at: Timestamp | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """An ``invoice`` object in the current API shape, with consistent totals.

    ``lines`` are ``LineSpec`` (or dicts with the same keys; ``tax`` may name a single tax).
    With ``subscription_id`` the lines come from subscription items, otherwise from invoice items.
    """
    created_ts, finalized_ts, number = _invoice_common(
        status=status, number=number, created=created, finalized_at=finalized_at, rng=rng
    )
    inv_id = invoice_id or new_id("in", rng)
    cur = currency.lower()
    built = _build_lines(lines, default_start=created_ts, default_end=created_ts + _MONTH, rng=rng)
    totals = _totals(built)

    line_objects = []
    for line in built:
        spec = line.spec
        if subscription_id:
            parent = {
                "type": "subscription_item_details",
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": new_id("ii", rng) if spec.proration else None,
                    "proration": spec.proration,
                    "proration_details": {"credited_items": None},
                    "subscription": subscription_id,
                    "subscription_item": spec.subscription_item_id or new_id("si", rng, length=14),
                },
            }
        else:
            parent = {
                "type": "invoice_item_details",
                "invoice_item_details": {
                    "invoice_item": new_id("ii", rng),
                    "proration": spec.proration,
                    "proration_details": {"credited_items": None},
                    "subscription": None,
                },
                "subscription_item_details": None,
            }
        line_objects.append(
            {
                "id": line.line_id,
                "object": "line_item",
                "amount": spec.amount_minor,
                "currency": cur,
                "description": spec.description or None,
                "discount_amounts": [],
                "discountable": not spec.proration,
                "discounts": [],
                "invoice": inv_id,
                "livemode": False,
                "metadata": _metadata(spec.metadata),
                "parent": parent,
                "period": {"end": line.period_end, "start": line.period_start},
                "pretax_credit_amounts": [],
                "pricing": {
                    "price_details": {"price": line.price_id, "product": line.product_id},
                    "type": "price_details",
                    "unit_amount_decimal": _unit_amount_decimal(spec.amount_minor, spec.quantity),
                },
                "quantity": spec.quantity,
                "quantity_decimal": str(spec.quantity),
                "subscription": subscription_id,
                "subtotal": spec.amount_minor,
                "taxes": [
                    {
                        "amount": tax.amount,
                        "tax_behavior": "inclusive" if tax.inclusive else "exclusive",
                        "tax_rate_details": {"tax_rate": tax.rate_id},
                        "taxability_reason": "standard_rated",
                        "taxable_amount": tax.taxable_amount(spec.amount_minor),
                        "type": "tax_rate_details",
                    }
                    for tax in line.taxes
                ],
            }
        )

    total = totals["total"]
    paid = total if status == "paid" else 0
    parent = None
    if subscription_id:
        parent = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {
                "metadata": _metadata(subscription_metadata),
                "subscription": subscription_id,
            },
        }
    return {
        "id": inv_id,
        "object": "invoice",
        "account_country": "DE",
        "account_name": "Revenue Control Tower demo",
        "account_tax_ids": None,
        "amount_due": total,
        "amount_overpaid": 0,
        "amount_paid": paid,
        "amount_remaining": total - paid,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 1 if status == "paid" else 0,
        "attempted": status == "paid",
        "auto_advance": status in ("draft", "open"),
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason or ("subscription_cycle" if subscription_id else "manual"),
        "collection_method": "charge_automatically",
        "confirmation_secret": None,
        "created": created_ts,
        "currency": cur,
        "custom_fields": None,
        "customer": customer_id,
        "customer_address": None,
        "customer_email": None,
        "customer_name": None,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": finalized_ts,
        "ending_balance": 0 if finalized_ts is not None else None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": line_objects,
            "has_more": False,
            "total_count": len(line_objects),
            "url": f"/v1/invoices/{inv_id}/lines",
        },
        "livemode": False,
        "metadata": _metadata(metadata),
        "next_payment_attempt": None,
        "number": number,
        "on_behalf_of": None,
        "parent": parent,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": created_ts,
        "period_start": created_ts,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": status,
        "status_transitions": _status_transitions(status, finalized_ts),
        "subtotal": totals["subtotal"],
        "subtotal_excluding_tax": totals["subtotal_excluding_tax"],
        "test_clock": None,
        "total": total,
        "total_discount_amounts": [],
        "total_excluding_tax": totals["total_excluding_tax"],
        "total_pretax_credit_amounts": [],
        "total_taxes": [
            {
                "amount": amount,
                "tax_behavior": "inclusive" if inclusive else "exclusive",
                "tax_rate_details": {"tax_rate": rate_id},
                "taxability_reason": "standard_rated",
                "taxable_amount": taxable,
                "type": "tax_rate_details",
            }
            for rate_id, inclusive, amount, taxable in _aggregate_taxes(built)
        ],
        "webhooks_delivered_at": None,
    }


# --- invoices (pre-basil shape) -------------------------------------------------------------------


def make_invoice_pre_basil(
    customer_id: str,
    lines: Sequence[LineSpec | Mapping[str, Any]],
    currency: str = "usd",
    number: str | None = None,
    subscription_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    status: str = "open",
    *,
    billing_reason: str | None = None,
    invoice_id: str | None = None,
    created: Timestamp | None = None,
    finalized_at: Timestamp | None = None,
    expand_tax_rates: bool = False,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """An ``invoice`` in the older shape: ``subscription``/``charge``/``paid`` on the invoice,
    ``price``/``plan``/``proration``/``tax_amounts`` on each line, ``tax`` and
    ``total_tax_amounts`` at the top. ``expand_tax_rates`` embeds full tax rate objects (with
    ``percentage`` and ``jurisdiction``) where Stripe would otherwise send only the id.
    """
    created_ts, finalized_ts, number = _invoice_common(
        status=status, number=number, created=created, finalized_at=finalized_at, rng=rng
    )
    inv_id = invoice_id or new_id("in", rng)
    cur = currency.lower()
    built = _build_lines(lines, default_start=created_ts, default_end=created_ts + _MONTH, rng=rng)
    totals = _totals(built)
    rate_objects: dict[str, dict[str, Any]] = {}

    def tax_rate_ref(tax: _BuiltTax) -> str | dict[str, Any]:
        if not expand_tax_rates:
            return tax.rate_id
        if tax.rate_id not in rate_objects:
            rate_objects[tax.rate_id] = make_tax_rate(
                tax.spec.percentage if tax.spec.percentage is not None else 0,
                inclusive=tax.inclusive,
                jurisdiction=tax.spec.jurisdiction,
                display_name=tax.spec.display_name,
                rate_id=tax.rate_id,
                created=created_ts,
            )
        return rate_objects[tax.rate_id]

    line_objects = []
    for line in built:
        spec = line.spec
        inclusive_tax = sum(t.amount for t in line.taxes if t.inclusive)
        unit_decimal = _unit_amount_decimal(spec.amount_minor, spec.quantity)
        unit_amount = (
            spec.amount_minor // spec.quantity
            if spec.quantity and spec.amount_minor % spec.quantity == 0
            else None
        )
        behaviours = {t.inclusive for t in line.taxes}
        price = _price_object(
            price_id=line.price_id,
            product_id=line.product_id,
            currency=cur,
            unit_amount=unit_amount,
            unit_amount_decimal=unit_decimal,
            recurring_interval="month" if subscription_id else None,
            created=created_ts,
            tax_behavior=(
                ("inclusive" if behaviours == {True} else "exclusive")
                if len(behaviours) == 1
                else "unspecified"
            ),
        )
        plan = None
        if subscription_id:
            plan = {
                "id": line.price_id,
                "object": "plan",
                "active": True,
                "aggregate_usage": None,
                "amount": unit_amount,
                "amount_decimal": unit_decimal,
                "billing_scheme": "per_unit",
                "created": created_ts,
                "currency": cur,
                "interval": "month",
                "interval_count": 1,
                "livemode": False,
                "metadata": {},
                "nickname": None,
                "product": line.product_id,
                "tiers_mode": None,
                "transform_usage": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
        from_subscription = bool(subscription_id) and not spec.proration
        line_objects.append(
            {
                "id": line.line_id,
                "object": "line_item",
                "amount": spec.amount_minor,
                "amount_excluding_tax": spec.amount_minor - inclusive_tax,
                "currency": cur,
                "description": spec.description or None,
                "discount_amounts": [],
                "discountable": not spec.proration,
                "discounts": [],
                "invoice": inv_id,
                "invoice_item": None if from_subscription else new_id("ii", rng),
                "livemode": False,
                "metadata": _metadata(spec.metadata),
                "period": {"end": line.period_end, "start": line.period_start},
                "plan": plan,
                "price": price,
                "proration": spec.proration,
                "proration_details": {"credited_items": None},
                "quantity": spec.quantity,
                "subscription": subscription_id,
                "subscription_item": (
                    spec.subscription_item_id or new_id("si", rng, length=14)
                    if subscription_id
                    else None
                ),
                "tax_amounts": [
                    {
                        "amount": tax.amount,
                        "inclusive": tax.inclusive,
                        "tax_rate": tax_rate_ref(tax),
                        "taxability_reason": "standard_rated",
                        "taxable_amount": tax.taxable_amount(spec.amount_minor),
                    }
                    for tax in line.taxes
                ],
                "tax_rates": [],
                "type": "subscription" if from_subscription else "invoiceitem",
                "unit_amount_excluding_tax": _unit_amount_decimal(
                    spec.amount_minor - inclusive_tax, spec.quantity
                ),
            }
        )

    total = totals["total"]
    paid = status == "paid"
    has_tax = any(line.taxes for line in built)
    return {
        "id": inv_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Revenue Control Tower demo",
        "account_tax_ids": None,
        "amount_due": total,
        "amount_paid": total if paid else 0,
        "amount_remaining": 0 if paid else total,
        "application_fee_amount": None,
        "attempt_count": 1 if paid else 0,
        "attempted": paid,
        "auto_advance": status in ("draft", "open"),
        "billing_reason": billing_reason or ("subscription_cycle" if subscription_id else "manual"),
        "charge": new_id("ch", rng) if paid else None,
        "collection_method": "charge_automatically",
        "created": created_ts,
        "currency": cur,
        "custom_fields": None,
        "customer": customer_id,
        "customer_address": None,
        "customer_email": None,
        "customer_name": None,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discount": None,
        "discounts": [],
        "due_date": None,
        "ending_balance": 0 if finalized_ts is not None else None,
        "footer": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "lines": {
            "object": "list",
            "data": line_objects,
            "has_more": False,
            "total_count": len(line_objects),
            "url": f"/v1/invoices/{inv_id}/lines",
        },
        "livemode": False,
        "metadata": _metadata(metadata),
        "next_payment_attempt": None,
        "number": number,
        "paid": paid,
        "payment_intent": new_id("pi", rng) if status in ("open", "paid") else None,
        "period_end": created_ts,
        "period_start": created_ts,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": status,
        "status_transitions": _status_transitions(status, finalized_ts),
        "subscription": subscription_id,
        "subtotal": totals["subtotal"],
        "subtotal_excluding_tax": totals["subtotal_excluding_tax"],
        "tax": totals["tax"] if has_tax else None,
        "total": total,
        "total_discount_amounts": [],
        "total_excluding_tax": totals["total_excluding_tax"],
        "total_tax_amounts": [
            {
                "amount": amount,
                "inclusive": inclusive,
                "tax_rate": rate_id,
                "taxability_reason": "standard_rated",
                "taxable_amount": taxable,
            }
            for rate_id, inclusive, amount, taxable in _aggregate_taxes(built)
        ],
        "transfer_data": None,
        "webhooks_delivered_at": None,
    }


# --- events, signing, delivery --------------------------------------------------------------------


def make_event(
    event_type: str,
    obj: Mapping[str, Any],
    created: Timestamp | None = None,
    *,
    api_version: str | None = CURRENT_API_VERSION,
    previous_attributes: Mapping[str, Any] | None = None,
    event_id: str | None = None,
    request_id: str | None = None,
    pending_webhooks: int = 1,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A full event envelope around ``obj`` (``data.object``)."""
    data: dict[str, Any] = {"object": dict(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = dict(previous_attributes)
    return {
        "id": event_id or new_id("evt", rng),
        "object": "event",
        "api_version": api_version,
        "created": _unix(created, _now()),
        "data": data,
        "livemode": False,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": None},
        "type": event_type,
    }


def serialize(event: Mapping[str, Any]) -> bytes:
    """The body Stripe would send: pretty-printed UTF-8 JSON, ``Decimal`` kept exact."""
    return simplejson.dumps(event, indent=2, use_decimal=True, ensure_ascii=False).encode("utf-8")


def sign_payload(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header value for ``body``: ``t=<ts>,v1=<hex hmac>``."""
    ts = _now() if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode("utf-8"), b"%d." % ts + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def deliver(
    url: str,
    event: Mapping[str, Any],
    secret: str,
    *,
    timestamp: int | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """POST ``event`` to ``url`` as Stripe does: serialized once, signed, those exact bytes sent."""
    body = serialize(event)
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": sign_payload(body, secret, timestamp),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Accept": "*/*; q=0.5, application/xml",
    }
    return httpx.post(url, content=body, headers=headers, timeout=timeout)


# --- payments: balance transactions, charges, refunds, invoice payments, credit notes -------------
#
# Amounts follow Stripe's conventions: a charge's ``amount`` is in the invoice currency; its
# balance transaction is in the settlement currency (``amount`` converted at ``exchange_rate``,
# which converts MAJOR units, e.g. 10.00 EUR * 1.234 = 12.34 USD) and carries the fee; a refund's
# balance transaction carries negative amounts. These builders never mutate their inputs: use
# ``refunded_charge`` for the charge as it looks after refunds.

_DAY = 24 * 3600


def _exchange_rate(value: Decimal | str | int | float | None) -> Decimal | None:
    rate = _percentage(value)  # same exact conversion as a tax percentage
    if rate is not None and rate <= 0:
        raise ValueError(f"exchange_rate must be positive, got {value!r}")
    return rate


def _int_amount(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (minor units), got {value!r}")
    return value


def convert_minor(amount: int, currency: str, rate: Decimal | str | int, to_currency: str) -> int:
    """``amount`` minor units of ``currency`` in minor units of ``to_currency`` at ``rate``.

    ``rate`` converts major units (Stripe's ``exchange_rate``); the minor-unit exponents of both
    currencies are applied (5000 JPY at 0.0067 -> 3350 USD cents). Rounds half away from zero.
    """
    dec_rate = _exchange_rate(rate)
    if dec_rate is None:
        raise ValueError("convert_minor needs a rate")
    shift = currency_exponent(to_currency) - currency_exponent(currency)
    with localcontext() as ctx:
        ctx.prec = 60
        value = Decimal(_int_amount(amount, "amount")) * dec_rate * (Decimal(10) ** shift)
    return _round_half_up(value)


def default_fee(amount_minor: int, currency: str) -> int:
    """An emulator stand-in for Stripe's card fee: 2.9 % + 0.30 (3.6 % for zero-decimal ones)."""
    exp = currency_exponent(currency)
    pct = Decimal("3.6") if exp == 0 else Decimal("2.9")
    fixed = 30 * 10 ** (exp - 2) if exp >= 2 else 0
    with localcontext() as ctx:
        ctx.prec = 60
        return _round_half_up(Decimal(amount_minor) * pct / 100) + fixed


def make_balance_transaction(
    amount: int,
    currency: str,
    fee: int = 0,
    exchange_rate: Decimal | str | int | float | None = None,
    settlement_currency: str | None = None,
    *,
    settlement_amount: int | None = None,
    source: str | None = None,
    txn_type: str = "charge",
    description: str | None = None,
    created: Timestamp | None = None,
    available_on: Timestamp | None = None,
    status: str = "available",
    txn_id: str | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A ``balance_transaction`` for ``amount`` minor units of ``currency``.

    With a ``settlement_currency`` other than ``currency`` the amount is converted at
    ``exchange_rate`` (required then, refused otherwise) unless ``settlement_amount`` is given;
    ``fee`` is in the settlement currency. ``net = amount - fee`` in the settlement currency.
    ``available_on`` defaults to two days after ``created``.
    """
    _int_amount(amount, "amount")
    _int_amount(fee, "fee")
    cur = currency.lower()
    settle = (settlement_currency or currency).lower()
    rate = _exchange_rate(exchange_rate)
    if settle != cur:
        if rate is None:
            raise ValueError(f"settling {cur} in {settle} needs an exchange_rate")
        settled = (
            convert_minor(amount, cur, rate, settle)
            if settlement_amount is None
            else _int_amount(settlement_amount, "settlement_amount")
        )
    else:
        if rate is not None:
            raise ValueError("exchange_rate given but nothing is converted (same currency)")
        settled = amount if settlement_amount is None else settlement_amount
    created_ts = _unix(created, _now())
    category = {"charge": "charge", "payment": "charge", "refund": "refund"}.get(txn_type, txn_type)
    return {
        "id": txn_id or new_id("txn", rng),
        "object": "balance_transaction",
        "amount": settled,
        "available_on": _unix(available_on, created_ts + 2 * _DAY),
        "balance_type": "payments",
        "created": created_ts,
        "currency": settle,
        "description": description,
        "exchange_rate": rate,
        "fee": fee,
        "fee_details": (
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": settle,
                    "description": "Stripe processing fees",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else []
        ),
        "net": settled - fee,
        "reporting_category": category,
        "source": source,
        "status": status,
        "type": txn_type,
    }


def _is_pre_basil_invoice(invoice: Mapping[str, Any]) -> bool:
    return "charge" in invoice or "paid" in invoice  # keys basil removed from the invoice


def make_charge(
    invoice: Mapping[str, Any],
    amount: int | None = None,
    fee: int | None = None,
    exchange_rate: Decimal | str | int | float | None = None,
    settlement_currency: str | None = None,
    *,
    charge_id: str | None = None,
    payment_intent_id: str | None = None,
    status: str = "succeeded",
    captured: bool = True,
    created: Timestamp | None = None,
    available_on: Timestamp | None = None,
    description: str | None = None,
    metadata: Mapping[str, str] | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A ``charge`` paying ``invoice``, with its ``balance_transaction`` expanded.

    The shape follows the invoice's: for a pre-basil invoice the charge names it in ``invoice``
    and reuses the invoice's ``charge`` / ``payment_intent`` ids; for a current one the charge
    carries only ``payment_intent`` (build the link with ``make_invoice_payment``). ``amount``
    defaults to what the invoice asks for; ``fee`` (settlement currency) to ``default_fee``.
    Uncaptured or failed charges have no balance transaction.
    """
    pre_basil = _is_pre_basil_invoice(invoice)
    cur = str(invoice["currency"]).lower()
    if amount is None:
        amount = invoice.get("amount_paid") or invoice.get("amount_due") or invoice["total"]
    amount = _int_amount(amount, "amount")
    if pre_basil:
        ch_id = charge_id or invoice.get("charge") or new_id("ch", rng)
        pi_id = payment_intent_id or invoice.get("payment_intent") or new_id("pi", rng)
    else:
        ch_id = charge_id or new_id("ch", rng)
        pi_id = payment_intent_id or new_id("pi", rng)
    paid_at = _dig_int(invoice, "status_transitions", "paid_at")
    created_ts = _unix(created, paid_at if paid_at is not None else _now())

    txn: dict[str, Any] | None = None
    if captured and status == "succeeded":
        settle = (settlement_currency or cur).lower()
        settled = amount if settle == cur else convert_minor(amount, cur, exchange_rate, settle)
        txn = make_balance_transaction(
            amount,
            cur,
            default_fee(settled, settle) if fee is None else fee,
            exchange_rate,
            settle,
            settlement_amount=settled,
            source=ch_id,
            txn_type="charge",
            description=description or "Payment for Invoice",
            created=created_ts,
            available_on=available_on,
            rng=rng,
        )
    charge: dict[str, Any] = {
        "id": ch_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if captured and status == "succeeded" else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": txn,
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
        },
        "calculated_statement_descriptor": "RCT DEMO",
        "captured": bool(captured),
        "created": created_ts,
        "currency": cur,
        "customer": invoice.get("customer"),
        "description": description or "Payment for Invoice",
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None if status != "failed" else "card_declined",
        "failure_message": None if status != "failed" else "Your card was declined.",
        "fraud_details": {},
        "livemode": False,
        "metadata": _metadata(metadata),
        "on_behalf_of": None,
        "outcome": {
            "network_status": "approved_by_network"
            if status != "failed"
            else "declined_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete." if status != "failed" else "Declined.",
            "type": "authorized" if status != "failed" else "issuer_declined",
        },
        "paid": status == "succeeded",
        "payment_intent": pi_id,
        "payment_method": new_id("pm", rng),
        "payment_method_details": {
            "card": {"brand": "visa", "country": "US", "funding": "credit", "last4": "4242"},
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "refunds": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": f"/v1/charges/{ch_id}/refunds",
        },
        "review": None,
        "shipping": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }
    if pre_basil:
        charge["invoice"] = invoice["id"]
    else:
        charge["presentment_details"] = None
    return charge


def _dig_int(obj: Mapping[str, Any], *path: str) -> int | None:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)  # type: ignore[assignment]
    return obj if isinstance(obj, int) and not isinstance(obj, bool) else None


def make_refund(
    charge: Mapping[str, Any],
    amount: int | None = None,
    *,
    fee_refunded: int = 0,
    exchange_rate: Decimal | str | int | float | None = None,
    reason: str | None = "requested_by_customer",
    status: str = "succeeded",
    refund_id: str | None = None,
    created: Timestamp | None = None,
    metadata: Mapping[str, str] | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A ``refund`` of ``amount`` (default: all not yet refunded) of ``charge``.

    Its balance transaction (expanded) is in the charge's settlement currency, negative, converted
    at ``exchange_rate`` -- by default the charge's own rate (real refunds may use the rate of the
    day). ``fee_refunded`` is the part of the fee Stripe gives back (usually 0).
    """
    captured = charge.get("amount_captured") or charge["amount"]
    remaining = captured - (charge.get("amount_refunded") or 0)
    amount = remaining if amount is None else _int_amount(amount, "amount")
    if not 0 < amount <= remaining:
        raise ValueError(
            f"refund amount must be in 1..{remaining} for {charge['id']}, got {amount}"
        )
    cur = str(charge["currency"]).lower()
    charge_txn = charge.get("balance_transaction")
    settle = cur
    rate = _exchange_rate(exchange_rate)
    if isinstance(charge_txn, Mapping):
        settle = str(charge_txn["currency"]).lower()
        if rate is None and settle != cur:
            rate = _exchange_rate(charge_txn.get("exchange_rate"))
    re_id = refund_id or new_id("re", rng)
    created_ts = _unix(created, _now())
    txn = make_balance_transaction(
        -amount,
        cur,
        -_int_amount(fee_refunded, "fee_refunded"),
        rate if settle != cur else None,
        settle,
        source=re_id,
        txn_type="refund",
        description="REFUND FOR CHARGE",
        created=created_ts,
        available_on=created_ts,
        rng=rng,
    )
    refund: dict[str, Any] = {
        "id": re_id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": txn,
        "charge": charge["id"],
        "created": created_ts,
        "currency": cur,
        "description": None,
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "failure_balance_transaction": None,
        "metadata": _metadata(metadata),
        "payment_intent": charge.get("payment_intent"),
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }
    if "invoice" not in charge:  # current shape: refunds name the customer too
        refund["customer"] = charge.get("customer")
        refund["customer_account"] = None
        refund["payment_method"] = charge.get("payment_method")
        refund["presentment_details"] = None
    return refund


def refunded_charge(charge: Mapping[str, Any], *refunds: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``charge`` as Stripe shows it after ``refunds`` (``charge.refunded`` events)."""
    out = dict(charge)
    refunded = (charge.get("amount_refunded") or 0) + sum(r["amount"] for r in refunds)
    out["amount_refunded"] = refunded
    out["refunded"] = refunded >= (charge.get("amount_captured") or charge["amount"])
    listing = dict(charge.get("refunds") or {"object": "list", "has_more": False})
    data = [*refunds, *(listing.get("data") or [])]  # newest first, as Stripe lists them
    listing.update(data=data, total_count=len(data))
    out["refunds"] = listing
    return out


def make_invoice_payment(
    invoice: Mapping[str, Any],
    charge: Mapping[str, Any] | None = None,
    *,
    amount: int | None = None,
    status: str = "paid",
    invoice_payment_id: str | None = None,
    created: Timestamp | None = None,
    paid_at: Timestamp | None = None,
    is_default: bool = True,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """An ``invoice_payment`` (basil and later) linking ``invoice`` to ``charge``'s payment.

    Stripe names the payment intent, or the charge when it has none.
    """
    if charge is not None and charge.get("payment_intent"):
        payment = {"type": "payment_intent", "payment_intent": charge["payment_intent"]}
    elif charge is not None:
        payment = {"type": "charge", "charge": charge["id"]}
    else:
        payment = {"type": "payment_intent", "payment_intent": new_id("pi", rng)}
    requested = invoice.get("amount_due") or invoice["total"]
    if amount is None:
        amount = charge["amount"] if charge is not None else requested
    created_ts = _unix(created, _now())
    paid_ts = _unix(paid_at, created_ts) if status == "paid" else None
    return {
        "id": invoice_payment_id or new_id("inpay", rng),
        "object": "invoice_payment",
        "amount_paid": _int_amount(amount, "amount") if status == "paid" else None,
        "amount_requested": requested,
        "created": created_ts,
        "currency": str(invoice["currency"]).lower(),
        "invoice": invoice["id"],
        "is_default": is_default,
        "livemode": False,
        "payment": payment,
        "status": status,
        "status_transitions": {
            "canceled_at": created_ts if status == "canceled" else None,
            "paid_at": paid_ts,
        },
    }


@dataclass(frozen=True)
class _CreditLine:
    invoice_line_id: str | None
    amount: int
    description: str | None
    quantity: int
    taxes: list[_BuiltTax]


def _invoice_line_taxes(line: Mapping[str, Any]) -> list[tuple[int, bool, str]]:
    """(amount, inclusive, rate id) per tax of an invoice line, current or pre-basil shape."""
    out = []
    if line.get("taxes") is not None:
        for tax in line["taxes"]:
            rate = (tax.get("tax_rate_details") or {}).get("tax_rate")
            out.append((tax["amount"], tax["tax_behavior"] == "inclusive", rate))
    else:
        for tax in line.get("tax_amounts") or []:
            rate = tax.get("tax_rate")
            rate = rate.get("id") if isinstance(rate, Mapping) else rate
            out.append((tax["amount"], bool(tax["inclusive"]), rate))
    return out


def _credit_lines(
    invoice: Mapping[str, Any],
    lines: Sequence[int | Mapping[str, Any]] | None,
    rng: random.Random | None,
) -> list[_CreditLine]:
    inv_lines = list(invoice["lines"]["data"])
    by_id = {line["id"]: line for line in inv_lines}
    if lines is None:
        lines = [line["amount"] for line in inv_lines]
    out = []
    for i, raw in enumerate(lines):
        tax_specs: list[Any] | None = None
        description = None
        quantity = 1
        if isinstance(raw, int) and not isinstance(raw, bool):
            if i >= len(inv_lines):
                raise ValueError(
                    f"credit line {i} given as an amount but the invoice has no line {i}"
                )
            inv_line: Mapping[str, Any] | None = inv_lines[i]
            amount = raw
        elif isinstance(raw, Mapping):
            data = dict(raw)
            line_id = data.pop("invoice_line_id", None) or data.pop("invoice_line_item", None)
            amount = data.pop("amount_minor", None)
            if amount is None:
                amount = data.pop("amount", None)
            if "taxes" in data or "tax" in data:
                tax_specs = list(data.pop("taxes", None) or ())
                if data.get("tax") is not None:
                    tax_specs.append(data["tax"])
                data.pop("tax", None)
            description = data.pop("description", None)
            quantity = data.pop("quantity", 1)
            if data:
                raise TypeError(f"unknown credit line keys: {sorted(data)}")
            inv_line = None
            if line_id is not None:
                if line_id not in by_id:
                    raise ValueError(f"invoice {invoice['id']} has no line {line_id!r}")
                inv_line = by_id[line_id]
            if amount is None:
                if inv_line is None:
                    raise ValueError("a custom credit line needs amount_minor")
                amount = inv_line["amount"]
        else:
            raise TypeError(f"a credit line is an amount or a mapping, got {raw!r}")
        amount = _int_amount(amount, "amount_minor")
        if amount <= 0:
            raise ValueError(f"credit line amount must be positive, got {amount}")
        if inv_line is not None and amount > inv_line["amount"]:
            raise ValueError(
                f"cannot credit {amount} on invoice line {inv_line['id']} of {inv_line['amount']}"
            )
        if tax_specs is not None:
            taxes = _build_taxes(
                LineSpec(amount_minor=amount, taxes=tuple(_tax_spec(t) for t in tax_specs)), rng
            )
        elif inv_line is not None:
            taxes = []
            for tax_amount, inclusive, rate_id in _invoice_line_taxes(inv_line):
                with localcontext() as ctx:
                    ctx.prec = 60
                    share = (
                        Decimal(tax_amount) * amount / inv_line["amount"]
                        if inv_line["amount"]
                        else 0
                    )
                taxes.append(
                    _BuiltTax(
                        amount=_round_half_up(Decimal(share)),
                        inclusive=inclusive,
                        rate_id=rate_id or new_id("txr", rng),
                        spec=TaxSpec(inclusive=inclusive, rate_id=rate_id),
                    )
                )
        else:
            taxes = []
        if description is None and inv_line is not None:
            description = inv_line.get("description")
        out.append(
            _CreditLine(
                invoice_line_id=inv_line["id"] if inv_line is not None else None,
                amount=amount,
                description=description,
                quantity=quantity,
                taxes=taxes,
            )
        )
    return out


def make_credit_note(
    invoice: Mapping[str, Any],
    lines: Sequence[int | Mapping[str, Any]] | None = None,
    *,
    timing: str | None = None,
    refund_amount: int = 0,
    credit_amount: int = 0,
    out_of_band_amount: int = 0,
    refund: Mapping[str, Any] | None = None,
    expand_refund: bool = False,
    expand_customer_balance_transaction: bool = False,
    reason: str | None = None,
    memo: str | None = None,
    number: str | None = None,
    credit_note_id: str | None = None,
    created: Timestamp | None = None,
    effective_at: Timestamp | None = None,
    metadata: Mapping[str, str] | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A ``credit_note`` against ``invoice``, in the invoice's API shape, with Stripe's arithmetic.

    ``lines``: ``None`` credits every invoice line in full; an ``int`` at position *i* credits that
    amount of invoice line *i*; a mapping credits ``amount_minor`` of ``invoice_line_id`` (or, with
    no ``invoice_line_id``, is a custom line with ``description``). Taxes are the invoice line's
    taxes pro rata (half up) unless ``taxes`` / ``tax`` (``TaxSpec`` or dicts) are given. A line's
    ``amount`` includes inclusive tax and excludes exclusive tax; ``subtotal`` = sum of line
    amounts; ``total`` = ``amount`` = subtotal + exclusive tax.

    ``timing`` defaults to what Stripe would decide: the part up to the invoice's
    ``amount_remaining`` (current shape) -- or everything unless the invoice is paid (old shape) --
    is pre-payment, the rest post-payment (``mixed`` when both, current shape only). The
    post-payment part must be settled exactly by ``refund_amount`` (or ``refund``, an object from
    ``make_refund``), ``credit_amount`` (customer balance) and ``out_of_band_amount``; when all
    three are 0 it all goes to the customer's balance.
    """
    if invoice.get("status") in ("draft", None):
        raise ValueError("credit notes are issued on finalized invoices only")
    pre_basil = _is_pre_basil_invoice(invoice)
    cur = str(invoice["currency"]).lower()
    cn_id = credit_note_id or new_id("cn", rng)
    credit_lines = _credit_lines(invoice, lines, rng)
    built = [
        _BuiltLine(
            spec=LineSpec(amount_minor=cl.amount),
            line_id=new_id("cnli", rng),
            price_id="",
            product_id="",
            period_start=0,
            period_end=0,
            taxes=cl.taxes,
        )
        for cl in credit_lines
    ]
    totals = _totals(built)
    total = totals["total"]

    if timing is None:
        remaining = invoice.get("amount_remaining")
        if not pre_basil and isinstance(remaining, int):
            pre = min(total, max(remaining, 0))
        else:
            paid = invoice.get("paid") is True or invoice.get("status") == "paid"
            pre = 0 if paid else total
        post = total - pre
        timing = "pre_payment" if post == 0 else "post_payment" if pre == 0 else "mixed"
    elif timing == "pre_payment":
        pre, post = total, 0
    elif timing == "post_payment":
        pre, post = 0, total
    else:
        raise ValueError(f"timing must be None, 'pre_payment' or 'post_payment', got {timing!r}")
    if pre_basil and timing == "mixed":
        raise ValueError("pre-basil credit notes are either pre_payment or post_payment")

    if refund is not None and not refund_amount:
        refund_amount = refund["amount"]
    if pre_basil and refund is not None and refund_amount != refund["amount"]:
        raise ValueError("a pre-basil credit note links a whole refund: refund_amount must match")
    for name, value in (
        ("refund_amount", refund_amount),
        ("credit_amount", credit_amount),
        ("out_of_band_amount", out_of_band_amount),
    ):
        if _int_amount(value, name) < 0:
            raise ValueError(f"{name} must not be negative")
    settled = refund_amount + credit_amount + out_of_band_amount
    if post == 0 and settled:
        raise ValueError("a pre-payment credit note cannot refund or credit anything")
    if post and not settled:
        credit_amount = settled = post
    if settled != post:
        raise ValueError(
            f"refund_amount + credit_amount + out_of_band_amount = {settled} must equal the "
            f"post-payment amount {post}"
        )

    created_ts = _unix(created, _now())
    refund_ref: str | dict[str, Any] | None = None
    if refund_amount:
        refund_id = refund["id"] if refund is not None else new_id("re", rng)
        refund_ref = dict(refund) if (expand_refund and refund is not None) else refund_id
    cbt_ref: str | dict[str, Any] | None = None
    if credit_amount:
        cbt_id = new_id("cbtxn", rng)
        cbt_ref = cbt_id
        if expand_customer_balance_transaction:
            cbt_ref = {
                "id": cbt_id,
                "object": "customer_balance_transaction",
                "amount": -credit_amount,
                "created": created_ts,
                "credit_note": cn_id,
                "currency": cur,
                "customer": invoice["customer"],
                "description": None,
                "ending_balance": -credit_amount,
                "invoice": None,
                "livemode": False,
                "metadata": None,
                "type": "credit_note",
            }

    line_objects = []
    for cl, line in zip(credit_lines, built, strict=True):
        inclusive_tax = sum(t.amount for t in cl.taxes if t.inclusive)
        obj: dict[str, Any] = {
            "id": line.line_id,
            "object": "credit_note_line_item",
            "amount": cl.amount,
            "description": cl.description,
            "discount_amount": 0,
            "discount_amounts": [],
            "livemode": False,
            "metadata": {},
            "pretax_credit_amounts": [],
            "quantity": cl.quantity,
            "tax_rates": [],
            "type": "invoice_line_item" if cl.invoice_line_id else "custom_line_item",
            "unit_amount": None if cl.invoice_line_id else cl.amount,
            "unit_amount_decimal": None if cl.invoice_line_id else str(cl.amount),
        }
        if cl.invoice_line_id:
            obj["invoice_line_item"] = cl.invoice_line_id
        if pre_basil:
            obj["amount_excluding_tax"] = cl.amount - inclusive_tax
            obj["tax_amounts"] = [
                {
                    "amount": t.amount,
                    "inclusive": t.inclusive,
                    "tax_rate": t.rate_id,
                    "taxability_reason": "standard_rated",
                    "taxable_amount": t.taxable_amount(cl.amount),
                }
                for t in cl.taxes
            ]
            obj["unit_amount_excluding_tax"] = _unit_amount_decimal(
                cl.amount - inclusive_tax, cl.quantity or 1
            )
        else:
            obj["taxes"] = [
                {
                    "amount": t.amount,
                    "tax_behavior": "inclusive" if t.inclusive else "exclusive",
                    "tax_rate_details": {"tax_rate": t.rate_id},
                    "taxability_reason": "standard_rated",
                    "taxable_amount": t.taxable_amount(cl.amount),
                    "type": "tax_rate_details",
                }
                for t in cl.taxes
            ]
        line_objects.append(obj)

    aggregated = _aggregate_taxes(built)
    note: dict[str, Any] = {
        "id": cn_id,
        "object": "credit_note",
        "amount": total,
        "amount_shipping": 0,
        "created": created_ts,
        "currency": cur,
        "customer": invoice["customer"],
        "customer_balance_transaction": cbt_ref,
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": _unix(effective_at, created_ts),
        "invoice": invoice["id"],
        "lines": {
            "object": "list",
            "data": line_objects,
            "has_more": False,
            "total_count": len(line_objects),
            "url": f"/v1/credit_notes/{cn_id}/lines",
        },
        "livemode": False,
        "memo": memo,
        "metadata": _metadata(metadata),
        "number": number or f"{invoice.get('number') or 'DRAFT'}-CN-01",
        "out_of_band_amount": out_of_band_amount or None,
        "pdf": f"https://pay.stripe.com/credit_notes/{cn_id}/pdf",
        "pretax_credit_amounts": [],
        "reason": reason,
        "shipping_cost": None,
        "status": "issued",
        "subtotal": totals["subtotal"],
        "subtotal_excluding_tax": totals["subtotal_excluding_tax"],
        "total": total,
        "total_excluding_tax": totals["total_excluding_tax"],
        "type": timing,
        "voided_at": None,
    }
    if pre_basil:
        note["refund"] = refund_ref
        note["tax_amounts"] = [
            {
                "amount": amount,
                "inclusive": inclusive,
                "tax_rate": rate_id,
                "taxability_reason": "standard_rated",
                "taxable_amount": taxable,
            }
            for rate_id, inclusive, amount, taxable in aggregated
        ]
    else:
        note["customer_account"] = None
        note["post_payment_amount"] = post
        note["pre_payment_amount"] = pre
        note["refunds"] = (
            [
                {
                    "amount_refunded": refund_amount,
                    "payment_record_refund": None,
                    "refund": refund_ref,
                    "type": "refund",
                }
            ]
            if refund_amount
            else []
        )
        note["total_taxes"] = [
            {
                "amount": amount,
                "tax_behavior": "inclusive" if inclusive else "exclusive",
                "tax_rate_details": {"tax_rate": rate_id},
                "taxability_reason": "standard_rated",
                "taxable_amount": taxable,
                "type": "tax_rate_details",
            }
            for rate_id, inclusive, amount, taxable in aggregated
        ]
    return note


# --- failed charges, disputes, uncollectible invoices ---------------------------------------------

DISPUTE_FEE_USD = 1500  # Stripe's dispute fee in the US (15.00 USD), taken with the withdrawal


def make_failed_charge(
    invoice: Mapping[str, Any],
    amount: int | None = None,
    *,
    failure_code: str = "card_declined",
    failure_message: str = "Your card was declined.",
    decline_code: str = "generic_decline",
    charge_id: str | None = None,
    payment_intent_id: str | None = None,
    created: Timestamp | None = None,
    metadata: Mapping[str, str] | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A declined ``charge`` on ``invoice`` (``charge.failed``): not captured, no balance
    transaction, ``failure_code`` / ``failure_message`` set and the issuer's reason in
    ``outcome.reason``."""
    charge = make_charge(
        invoice,
        amount,
        charge_id=charge_id,
        payment_intent_id=payment_intent_id,
        status="failed",
        captured=False,
        created=created,
        metadata=metadata,
        rng=rng,
    )
    charge["failure_code"] = failure_code
    charge["failure_message"] = failure_message
    charge["outcome"] = {
        **charge["outcome"],
        "network_status": "declined_by_network",
        "reason": decline_code,
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    }
    return charge


def _dispute_txn(
    dispute_id: str,
    charge: Mapping[str, Any],
    amount: int,
    fee: int,
    rate: Decimal | None,
    settle: str,
    *,
    created: int,
    available_on: Timestamp | None,
    reinstated: bool,
    rng: random.Random | None,
) -> dict[str, Any]:
    cur = str(charge["currency"]).lower()
    verb = "reversal" if reinstated else "withdrawal"
    txn = make_balance_transaction(
        amount if reinstated else -amount,
        cur,
        fee,
        rate if settle != cur else None,
        settle,
        source=dispute_id,
        txn_type="adjustment",
        description=f"Chargeback {verb} for {charge['id']}",
        created=created,
        available_on=available_on,
        status="pending",
        rng=rng,
    )
    txn["reporting_category"] = "dispute_reversal" if reinstated else "dispute"
    for detail in txn["fee_details"]:
        detail["description"] = "Dispute fee"
    return txn


def make_dispute(
    charge: Mapping[str, Any],
    amount: int | None = None,
    fee: int = DISPUTE_FEE_USD,
    exchange_rate: Decimal | str | int | float | None = None,
    *,
    status: str = "needs_response",
    reason: str = "fraudulent",
    dispute_id: str | None = None,
    created: Timestamp | None = None,
    available_on: Timestamp | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A ``dispute`` of ``charge`` (``charge.dispute.created``), shaped like Stripe's.

    A chargeback (``needs_response`` and the like) carries the withdrawal in
    ``balance_transactions``: ``-amount`` and the dispute ``fee`` (both in the charge's
    settlement currency, converted at ``exchange_rate``, by default the charge's own rate), net
    ``-(amount + fee)``. An inquiry (``warning_*`` status) moves no funds and has none.
    ``amount`` defaults to the captured amount.
    """
    if status in ("won", "lost", "warning_closed"):
        raise ValueError("a new dispute is open; close it with close_dispute")
    cur = str(charge["currency"]).lower()
    captured = charge.get("amount_captured") or charge["amount"]
    amount = captured if amount is None else _int_amount(amount, "amount")
    if not 0 < amount <= captured:
        raise ValueError(f"dispute amount must be in 1..{captured} for {charge['id']}")
    dp_id = dispute_id or new_id("dp", rng)
    created_ts = _unix(created, _now())
    settle, rate = cur, _exchange_rate(exchange_rate)
    charge_txn = charge.get("balance_transaction")
    if isinstance(charge_txn, Mapping):
        settle = str(charge_txn["currency"]).lower()
        if rate is None and settle != cur:
            rate = _exchange_rate(charge_txn.get("exchange_rate"))
    inquiry = status.startswith("warning_")
    txns = (
        []
        if inquiry
        else [
            _dispute_txn(
                dp_id,
                charge,
                amount,
                _int_amount(fee, "fee"),
                rate,
                settle,
                created=created_ts,
                available_on=available_on,
                reinstated=False,
                rng=rng,
            )
        ]
    )
    return {
        "id": dp_id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": txns,
        "charge": charge["id"],
        "created": created_ts,
        "currency": cur,
        "enhanced_eligibility_types": [],
        "evidence": {
            "cancellation_policy": None,
            "customer_email_address": None,
            "customer_name": None,
            "product_description": None,
            "receipt": None,
            "refund_policy": None,
            "service_date": None,
            "uncategorized_text": None,
        },
        "evidence_details": {
            "due_by": created_ts + 14 * _DAY,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": charge.get("payment_intent"),
        "payment_method_details": {
            "card": {
                "brand": "visa",
                "case_type": "inquiry" if inquiry else "chargeback",
                "network_reason_code": "10.4",
            },
            "type": "card",
        },
        "reason": reason,
        "status": status,
    }


def close_dispute(
    dispute: Mapping[str, Any],
    outcome: str,
    *,
    charge: Mapping[str, Any] | None = None,
    fee_returned: int = 0,
    exchange_rate: Decimal | str | int | float | None = None,
    closed_at: Timestamp | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A copy of ``dispute`` as Stripe shows it when it closes (``charge.dispute.closed``).

    ``won``: the disputed amount comes back as a second balance transaction (same settlement
    currency, at ``exchange_rate`` or the withdrawal's rate); ``fee_returned`` is the part of
    the dispute fee Stripe gives back with it (shown as a negative fee; 0 by default, as Stripe
    keeps the dispute fee in most regions). ``lost``: nothing moves. ``warning_closed``: an
    inquiry closed without a chargeback.
    """
    if outcome not in ("won", "lost", "warning_closed"):
        raise ValueError(f"outcome must be won, lost or warning_closed, got {outcome!r}")
    inquiry = str(dispute["status"]).startswith("warning_")
    if (outcome == "warning_closed") != inquiry:
        raise ValueError("only an inquiry closes as warning_closed, and it closes no other way")
    out = dict(dispute)
    out["status"] = outcome
    txns = list(dispute.get("balance_transactions") or [])
    if outcome == "won":
        if not txns:
            raise ValueError(f"dispute {dispute['id']} has no withdrawal to reinstate")
        withdrawal = txns[0]
        settle = str(withdrawal["currency"]).lower()
        rate = _exchange_rate(exchange_rate) or _exchange_rate(withdrawal.get("exchange_rate"))
        txns.append(
            _dispute_txn(
                str(dispute["id"]),
                charge or {"id": dispute["charge"], "currency": dispute["currency"]},
                int(dispute["amount"]),
                -_int_amount(fee_returned, "fee_returned"),
                rate,
                settle,
                created=_unix(closed_at, _now()),
                available_on=None,
                reinstated=True,
                rng=rng,
            )
        )
    out["balance_transactions"] = txns
    out["evidence_details"] = {**dispute.get("evidence_details", {}), "has_evidence": True}
    return out


def uncollectible_invoice(
    invoice: Mapping[str, Any],
    *,
    amount_paid: int | None = None,
    marked_at: Timestamp | None = None,
) -> dict[str, Any]:
    """A copy of ``invoice`` as Stripe shows it once marked uncollectible
    (``invoice.marked_uncollectible``): ``status: uncollectible``, the time in
    ``status_transitions.marked_uncollectible_at`` and, with ``amount_paid``, what was paid
    before (``amount_remaining`` = ``amount_due`` - ``amount_paid``)."""
    out = dict(invoice)
    out["status"] = "uncollectible"
    if amount_paid is not None:
        due = int(invoice["amount_due"])
        if not 0 <= _int_amount(amount_paid, "amount_paid") < due:
            raise ValueError(f"amount_paid must be in 0..{due - 1} for an uncollectible invoice")
        out["amount_paid"] = amount_paid
        out["amount_remaining"] = due - amount_paid
    transitions = dict(invoice.get("status_transitions") or {})
    transitions["marked_uncollectible_at"] = _unix(marked_at, _now())
    out["status_transitions"] = transitions
    return out


# --- subscription changes: amendments, scheduled and actual cancellations ------------------------
#
# ``customer.subscription.updated`` carries the subscription as it is now and, in
# ``data.previous_attributes``, the old value of every top-level attribute that changed (a changed
# sub-list such as ``items`` whole). ``make_subscription_updated_event`` computes that diff the
# same way from two versions of a subscription object.

_KEEP: Any = object()


def _first_item_period(subscription: Mapping[str, Any]) -> tuple[int | None, int | None]:
    data = (subscription.get("items") or {}).get("data") or [{}]
    first = data[0]
    start = first.get("current_period_start", subscription.get("current_period_start"))
    end = first.get("current_period_end", subscription.get("current_period_end"))
    return start, end


def subscription_changed(
    subscription: Mapping[str, Any],
    *,
    items: Sequence[ItemSpec | Mapping[str, Any] | Sequence[Any]] | None = None,
    cancel_at_period_end: bool | None = None,
    cancel_at: Timestamp | None = _KEEP,
    metadata: Mapping[str, str] | None = None,
    status: str | None = None,
    at: Timestamp | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """A copy of ``subscription`` after an update request made at ``at``; the input is untouched.

    ``items`` replaces the items (same period; pass ``item_id`` to keep an item's id).
    ``cancel_at_period_end=True`` schedules the end at the current period end (Stripe sets
    ``cancel_at`` to it and ``canceled_at`` to the time of the request); ``False`` lifts the
    schedule (all three cleared). ``cancel_at`` schedules the end at a given time instead.
    """
    new = copy.deepcopy(dict(subscription))
    at_ts = _unix(at, _now())
    if items is not None:
        start, end = _first_item_period(subscription)
        rebuilt = make_subscription(
            str(subscription["customer"]),
            items,
            currency=str(subscription.get("currency") or "eur"),
            current_period_start=start,
            current_period_end=end,
            subscription_id=str(subscription["id"]),
            created=subscription.get("created"),
            rng=rng,
        )
        new["items"] = rebuilt["items"]
    if cancel_at_period_end is True:
        _, end = _first_item_period(new)
        new.update(cancel_at_period_end=True, cancel_at=end, canceled_at=at_ts)
    elif cancel_at_period_end is False:
        new.update(cancel_at_period_end=False, cancel_at=None, canceled_at=None)
    if cancel_at is not _KEEP:
        if cancel_at is None:
            new.update(cancel_at=None, canceled_at=None)
        else:
            new.update(
                cancel_at_period_end=False, cancel_at=_unix(cancel_at, at_ts), canceled_at=at_ts
            )
    if metadata is not None:
        new["metadata"] = _metadata(metadata)
    if status is not None:
        new["status"] = status
    return new


def metered(subscription: Mapping[str, Any], *price_ids: str) -> dict[str, Any]:
    """A copy of ``subscription`` whose items with these prices are metered (usage-based):
    ``usage_type`` ``metered`` and no ``quantity``, as Stripe shows them."""
    new = copy.deepcopy(dict(subscription))
    for item in new["items"]["data"]:
        if item["price"]["id"] in price_ids:
            item["price"]["recurring"]["usage_type"] = "metered"
            item.pop("quantity", None)
    return new


def subscription_ended(
    subscription: Mapping[str, Any], *, at: Timestamp | None = None
) -> dict[str, Any]:
    """The subscription as ``customer.subscription.deleted`` carries it, ended at ``at`` (default:
    its scheduled ``cancel_at``, else now). An immediate cancellation has ``canceled_at`` = the
    end; one scheduled earlier keeps the time it was requested."""
    new = copy.deepcopy(dict(subscription))
    default = subscription.get("cancel_at")
    end_ts = _unix(at, default if isinstance(default, int) else _now())
    new.update(
        status="canceled",
        ended_at=end_ts,
        canceled_at=subscription.get("canceled_at") or end_ts,
        cancellation_details={
            "comment": None,
            "feedback": None,
            "reason": "cancellation_requested",
        },
    )
    return new


def make_subscription_updated_event(
    previous: Mapping[str, Any],
    current: Mapping[str, Any],
    created: Timestamp | None = None,
    *,
    event_id: str | None = None,
    api_version: str | None = CURRENT_API_VERSION,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """``customer.subscription.updated`` from ``previous`` to ``current``: ``previous_attributes``
    holds the old value of each top-level attribute that differs."""
    changed = {
        key: previous.get(key)
        for key in sorted(set(previous) | set(current))
        if previous.get(key) != current.get(key)
    }
    return make_event(
        "customer.subscription.updated",
        current,
        created,
        api_version=api_version,
        previous_attributes=changed,
        event_id=event_id,
        rng=rng,
    )


__all__ += [
    "make_subscription_updated_event",
    "metered",
    "subscription_changed",
    "subscription_ended",
]
