"""Pure parsers: Stripe objects (plain dicts, as in a webhook's ``data.object``) -> canonical.

Both wire shapes are understood, field by field rather than by API version, so intermediate
versions work too (current = 2025-03-31.basil and later; old = before basil):

* invoice -> subscription: ``parent.subscription_details.subscription`` (current) or
  ``subscription`` (old);
* line price / product: ``pricing.price_details.price`` / ``.product`` (current) or ``price``
  (an id or an expanded object), else ``plan`` (old);
* line proration: ``parent.subscription_item_details.proration`` or
  ``parent.invoice_item_details.proration`` (current) or ``proration`` (old);
* line taxes: ``taxes[]`` with ``amount``, ``tax_behavior`` and ``tax_rate_details.tax_rate``
  (current) or ``tax_amounts[]`` with ``amount``, ``inclusive`` and ``tax_rate`` (an id or an
  expanded object carrying ``jurisdiction`` and ``percentage``) (old);
* invoice tax total: ``total_taxes[]`` (current) or ``tax`` / ``total_tax_amounts[]`` (old),
  else the sum of the line taxes.

Money stays integer minor units; a float where an amount belongs is refused. Percentages become
decimal text ("19", "8.25", "15.0"); a float percentage is rendered through ``repr`` so the JSON
text survives (load JSON with ``parse_float=Decimal`` to keep it exact in all cases).

A payload we cannot map faithfully raises ``PermanentError`` naming the object and field; a list
Stripe truncated (``has_more``) raises ``IncompletePayload`` -- lines are never dropped silently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.base import (
    BillingCustomer,
    BillingInvoice,
    BillingInvoiceLine,
    BillingSubscription,
    BillingTax,
    PermanentError,
)

__all__ = [
    "IncompletePayload",
    "parse_customer",
    "parse_invoice",
    "parse_invoice_line",
    "parse_subscription",
    "parse_tax",
]


class IncompletePayload(PermanentError):
    """A list inside the payload was truncated by Stripe (``has_more: true``).

    The full list has to be fetched from the API before this object can be mapped; mapping what
    was included would silently lose lines.
    """

    def __init__(
        self,
        message: str,
        *,
        object_id: str,
        included: int,
        total_count: int | None = None,
    ) -> None:
        super().__init__(
            message,
            code="incomplete_payload",
            details={"object_id": object_id, "included": included, "total_count": total_count},
        )
        self.object_id = object_id
        self.included = included
        self.total_count = total_count


# --- small helpers ------------------------------------------------------------------------------


def _missing(what: str, field: str) -> PermanentError:
    return PermanentError(f"{what}: missing required field '{field}'", code="missing_field")


def _invalid(what: str, field: str, value: Any, expected: str) -> PermanentError:
    return PermanentError(
        f"{what}: field '{field}' must be {expected}, got {value!r}", code="invalid_field"
    )


def _require_mapping(obj: Any, kind: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise PermanentError(f"expected a Stripe {kind} object (a mapping), got {type(obj)!r}")
    return obj


def _dig(obj: Any, *path: str) -> Any:
    """``obj[p0][p1]...`` or None when any step is missing or not a mapping."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _ref(value: Any) -> str:
    """An expandable field: an id string, an expanded object (its ``id``) or nothing ("")."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        ref = value.get("id")
        return ref if isinstance(ref, str) else ""
    return ""


def _required_str(obj: Mapping[str, Any], field: str, what: str) -> str:
    value = obj.get(field)
    if value is None or value == "":
        raise _missing(what, field)
    if not isinstance(value, str):
        raise _invalid(what, field, value, "a string")
    return value


def _required_ref(obj: Mapping[str, Any], field: str, what: str) -> str:
    value = obj.get(field)
    ref = _ref(value)
    if not ref:
        raise _missing(what, field)
    return ref


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _minor(value: Any, what: str, field: str, *, required: bool = True) -> int:
    """Integer minor units; floats (and bools) are refused rather than rounded."""
    if value is None:
        if required:
            raise _missing(what, field)
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(what, field, value, "an integer amount in minor units")
    return value


def _timestamp(value: Any, what: str, field: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(what, field, value, "unix seconds (an integer) or null")
    try:
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise _invalid(what, field, value, "a representable unix timestamp") from None


def _currency(value: Any, what: str, field: str = "currency", *, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise _missing(what, field)
        return ""
    code = value.strip().upper() if isinstance(value, str) else ""
    if len(code) != 3 or not code.isalpha():
        raise _invalid(what, field, value, "an ISO-4217 code")
    return code


def _metadata(*sources: Any) -> dict[str, str]:
    """Merge metadata dicts left to right (later wins) into ``str -> str``."""
    merged: dict[str, str] = {}
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for key, value in source.items():
            merged[str(key)] = "" if value is None else str(value)
    return merged


def _decimal_text(value: Any, what: str, field: str) -> str:
    """A percentage as decimal text, without ever going through binary floating point maths."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        raise _invalid(what, field, value, "a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # repr() is the shortest text that round-trips, i.e. what the JSON said (15.0 -> "15.0").
        value = Decimal(repr(value))
    if isinstance(value, str):
        try:
            Decimal(value)
        except InvalidOperation:
            raise _invalid(what, field, value, "a decimal number") from None
        return value.strip()
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _invalid(what, field, value, "a finite number")
        return format(value, "f")
    raise _invalid(what, field, value, "a number")


def _check_complete(
    listing: Mapping[str, Any], object_id: str, owner: str, noun: str, included: int
) -> None:
    if listing.get("has_more") is True:
        total = listing.get("total_count")
        total_count = total if isinstance(total, int) and not isinstance(total, bool) else None
        of_total = f" of {total_count}" if total_count is not None else ""
        raise IncompletePayload(
            f"{owner}: payload includes only {included}{of_total} {noun} (has_more is true); "
            f"fetch the full list from the Stripe API before mapping",
            object_id=object_id,
            included=included,
            total_count=total_count,
        )


def _list_data(obj: Mapping[str, Any], field: str, what: str) -> tuple[Mapping[str, Any], list]:
    listing = obj.get(field)
    if listing is None:
        raise _missing(what, field)
    if isinstance(listing, list):  # already unwrapped by someone
        return {}, listing
    if not isinstance(listing, Mapping):
        raise _invalid(what, field, listing, "a Stripe list object")
    data = listing.get("data")
    if data is None:
        raise _missing(what, f"{field}.data")
    if not isinstance(data, list):
        raise _invalid(what, f"{field}.data", data, "a list")
    return listing, data


# --- taxes --------------------------------------------------------------------------------------


def parse_tax(entry: Mapping[str, Any], *, what: str = "tax") -> BillingTax:
    """One tax entry of a line: current ``taxes[]`` item or pre-basil ``tax_amounts[]`` item."""
    entry = _require_mapping(entry, "tax amount")
    amount = _minor(entry.get("amount"), what, "amount")
    if "tax_behavior" in entry or "tax_rate_details" in entry:
        behavior = entry.get("tax_behavior")
        if behavior not in ("inclusive", "exclusive"):
            raise _invalid(what, "tax_behavior", behavior, "'inclusive' or 'exclusive'")
        inclusive = behavior == "inclusive"
        rate = _dig(entry, "tax_rate_details", "tax_rate")
    else:
        flag = entry.get("inclusive")
        if not isinstance(flag, bool):
            raise _invalid(what, "inclusive", flag, "true or false")
        inclusive = flag
        rate = entry.get("tax_rate")
    jurisdiction = ""
    percentage = ""
    if isinstance(rate, Mapping):  # expanded tax rate object
        jurisdiction = _text(rate.get("jurisdiction"))
        percentage = _decimal_text(rate.get("percentage"), what, "tax_rate.percentage")
    return BillingTax(
        amount_minor=amount,
        rate_ref=_ref(rate),
        inclusive=inclusive,
        jurisdiction=jurisdiction,
        percentage=percentage,
    )


# --- invoice lines ------------------------------------------------------------------------------


def _line_parent_details(line: Mapping[str, Any]) -> Mapping[str, Any] | None:
    parent = line.get("parent")
    if not isinstance(parent, Mapping):
        return None
    kind = parent.get("type")
    if isinstance(kind, str) and isinstance(parent.get(kind), Mapping):
        return parent[kind]
    for key in ("subscription_item_details", "invoice_item_details"):
        if isinstance(parent.get(key), Mapping):
            return parent[key]
    return None


def _line_price_product(line: Mapping[str, Any]) -> tuple[str, str]:
    details = _dig(line, "pricing", "price_details")
    if isinstance(details, Mapping):
        price = details.get("price")
        product = _ref(details.get("product"))
        if not product and isinstance(price, Mapping):
            product = _ref(price.get("product"))
        return _ref(price), product
    for key in ("price", "plan"):  # pre-basil: price (id or object), older still: plan
        value = line.get(key)
        if value:
            product = _ref(value.get("product")) if isinstance(value, Mapping) else ""
            return _ref(value), product
    return "", ""


def _line_quantity(line: Mapping[str, Any], what: str) -> int:
    quantity = line.get("quantity")
    if quantity is None:
        raw = line.get("quantity_decimal")
        if raw is None:
            return 1  # a flat-amount line without a unit count
        try:
            dec = Decimal(str(raw))
        except InvalidOperation:
            raise _invalid(what, "quantity_decimal", raw, "a decimal number") from None
        if dec != dec.to_integral_value():
            raise _invalid(what, "quantity_decimal", raw, "a whole number of units")
        return int(dec)
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise _invalid(what, "quantity", quantity, "an integer")
    return quantity


def parse_invoice_line(line: Mapping[str, Any], *, invoice_id: str = "") -> BillingInvoiceLine:
    """One ``line_item`` of an invoice, current or pre-basil shape."""
    line = _require_mapping(line, "invoice line item")
    prefix = f"invoice {invoice_id} " if invoice_id else ""
    line_id = line.get("id")
    if not isinstance(line_id, str) or not line_id:
        raise _missing(f"{prefix}line".strip(), "id")
    what = f"{prefix}line {line_id}"

    details = _line_parent_details(line)
    if details is not None:
        proration = details.get("proration") is True
    else:
        proration = line.get("proration") is True

    taxes_raw = line.get("taxes")
    if taxes_raw is None:
        taxes_raw = line.get("tax_amounts")
    if taxes_raw is None:
        taxes_raw = []
    if not isinstance(taxes_raw, list):
        raise _invalid(what, "taxes", taxes_raw, "a list")
    taxes = tuple(parse_tax(entry, what=f"{what} tax[{i}]") for i, entry in enumerate(taxes_raw))

    price_ref, product_ref = _line_price_product(line)
    period = line.get("period") if isinstance(line.get("period"), Mapping) else {}
    return BillingInvoiceLine(
        source_id=line_id,
        description=_text(line.get("description")),
        amount_minor=_minor(line.get("amount"), what, "amount"),
        quantity=_line_quantity(line, what),
        price_ref=price_ref,
        product_ref=product_ref,
        period_start=_timestamp(period.get("start"), what, "period.start"),
        period_end=_timestamp(period.get("end"), what, "period.end"),
        proration=proration,
        taxes=taxes,
    )


# --- invoices -----------------------------------------------------------------------------------


def _invoice_tax_total(obj: Mapping[str, Any], lines: tuple[BillingInvoiceLine, ...], what: str):
    total_taxes = obj.get("total_taxes")
    if isinstance(total_taxes, list):
        return sum(
            _minor(_dig(t, "amount"), what, f"total_taxes[{i}].amount")
            for i, t in enumerate(total_taxes)
        )
    tax = obj.get("tax")
    if tax is not None:
        return _minor(tax, what, "tax")
    total_tax_amounts = obj.get("total_tax_amounts")
    if isinstance(total_tax_amounts, list):
        return sum(
            _minor(_dig(t, "amount"), what, f"total_tax_amounts[{i}].amount")
            for i, t in enumerate(total_tax_amounts)
        )
    return sum(line.tax_minor for line in lines)


def parse_invoice(obj: Mapping[str, Any]) -> BillingInvoice:
    """A Stripe ``invoice`` (current or pre-basil shape) as a canonical ``BillingInvoice``.

    Raises ``IncompletePayload`` when ``lines.has_more`` is true and ``PermanentError`` naming
    the field when a required one (id, customer, currency, created, subtotal, total, lines) is
    missing or has the wrong type.
    """
    obj = _require_mapping(obj, "invoice")
    invoice_id = obj.get("id")
    if not isinstance(invoice_id, str) or not invoice_id:
        raise _missing("invoice", "id")
    what = f"invoice {invoice_id}"

    customer_ref = _required_ref(obj, "customer", what)
    currency = _currency(obj.get("currency"), what)
    created = _timestamp(obj.get("created"), what, "created")
    if created is None:
        raise _missing(what, "created")

    listing, raw_lines = _list_data(obj, "lines", what)
    _check_complete(listing, invoice_id, what, "lines", len(raw_lines))
    lines = tuple(parse_invoice_line(line, invoice_id=invoice_id) for line in raw_lines)

    subscription_details = _dig(obj, "parent", "subscription_details")
    subscription_ref = _ref(_dig(subscription_details, "subscription")) or _ref(
        obj.get("subscription")
    )

    return BillingInvoice(
        source_id=invoice_id,
        number=_text(obj.get("number")),
        customer_ref=customer_ref,
        subscription_ref=subscription_ref,
        currency=currency,
        status=_text(obj.get("status")),
        created=created,
        finalized_at=_timestamp(
            _dig(obj, "status_transitions", "finalized_at"),
            what,
            "status_transitions.finalized_at",
        ),
        subtotal_minor=_minor(obj.get("subtotal"), what, "subtotal"),
        tax_minor=_invoice_tax_total(obj, lines, what),
        total_minor=_minor(obj.get("total"), what, "total"),
        lines=lines,
        billing_reason=_text(obj.get("billing_reason")),
        metadata=_metadata(_dig(subscription_details, "metadata"), obj.get("metadata")),
    )


# --- customers ----------------------------------------------------------------------------------


def parse_customer(obj: Mapping[str, Any]) -> BillingCustomer:
    """A Stripe ``customer`` as a canonical ``BillingCustomer``.

    ``name`` falls back to ``description`` (older integrations kept the name there) and
    ``country`` to the shipping address; a deleted customer maps with empty fields.
    """
    obj = _require_mapping(obj, "customer")
    customer_id = obj.get("id")
    if not isinstance(customer_id, str) or not customer_id:
        raise _missing("customer", "id")
    what = f"customer {customer_id}"
    country = _text(_dig(obj, "address", "country")) or _text(
        _dig(obj, "shipping", "address", "country")
    )
    return BillingCustomer(
        source_id=customer_id,
        name=_text(obj.get("name")) or _text(obj.get("description")),
        email=_text(obj.get("email")),
        country=country.upper(),
        currency=_currency(obj.get("currency"), what, required=False),
        metadata=_metadata(obj.get("metadata")),
    )


# --- subscriptions ------------------------------------------------------------------------------


def _item_price_product(item: Mapping[str, Any]) -> tuple[str, str, Any]:
    """(price_ref, product_ref, currency) of a subscription item; price first, then plan."""
    for key in ("price", "plan"):
        value = item.get(key)
        if isinstance(value, Mapping) and value.get("id"):
            return _ref(value), _ref(value.get("product")), value.get("currency")
        if isinstance(value, str) and value:
            return value, "", None
    return "", "", None


def parse_subscription(obj: Mapping[str, Any]) -> BillingSubscription:
    """A Stripe ``subscription`` as a canonical ``BillingSubscription``.

    The current period sits on the subscription in older API versions and on each item in the
    current one; with items it is the earliest start and the latest end across them.
    """
    obj = _require_mapping(obj, "subscription")
    sub_id = obj.get("id")
    if not isinstance(sub_id, str) or not sub_id:
        raise _missing("subscription", "id")
    what = f"subscription {sub_id}"
    customer_ref = _required_ref(obj, "customer", what)

    listing, raw_items = _list_data(obj, "items", what)
    _check_complete(listing, sub_id, what, "items", len(raw_items))

    items: list[tuple[str, str, int]] = []
    item_currency: Any = None
    starts: list[dt.datetime] = []
    ends: list[dt.datetime] = []
    for i, item in enumerate(raw_items):
        item = _require_mapping(item, "subscription item")
        item_what = f"{what} item {item.get('id') or i}"
        price_ref, product_ref, currency = _item_price_product(item)
        item_currency = item_currency or currency
        quantity = item.get("quantity", 1)
        if quantity is None:
            quantity = 1  # metered items carry no quantity
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise _invalid(item_what, "quantity", quantity, "an integer")
        items.append((price_ref, product_ref, quantity))
        start = _timestamp(item.get("current_period_start"), item_what, "current_period_start")
        end = _timestamp(item.get("current_period_end"), item_what, "current_period_end")
        if start is not None:
            starts.append(start)
        if end is not None:
            ends.append(end)

    period_start = _timestamp(obj.get("current_period_start"), what, "current_period_start")
    period_end = _timestamp(obj.get("current_period_end"), what, "current_period_end")
    if period_start is None and starts:
        period_start = min(starts)
    if period_end is None and ends:
        period_end = max(ends)

    currency_value = obj.get("currency") or item_currency
    plan = obj.get("plan")
    if not currency_value and isinstance(plan, Mapping):
        currency_value = plan.get("currency")
    return BillingSubscription(
        source_id=sub_id,
        customer_ref=customer_ref,
        status=_text(obj.get("status")),
        currency=_currency(currency_value, what),
        current_period_start=period_start,
        current_period_end=period_end,
        items=tuple(items),
        metadata=_metadata(obj.get("metadata")),
    )


# --- subscription changes (customer.subscription.updated) ---------------------------------------
#
# Stripe puts in ``data.previous_attributes`` only the top-level attributes that changed, with
# their old values; a changed sub-list such as ``items`` is rendered whole (API 2017-05-25 and
# later). Subscriptions from before multi-item subscriptions changed ``plan`` and ``quantity``
# at the top level instead. In the current API every renewal also changes ``items`` (each item
# carries its own ``current_period_*``), so an amendment is a change of price or quantity, not
# the mere presence of ``items``.


@dataclass(frozen=True)
class SubscriptionItemPrice:
    """One subscription item and what it costs per billing interval, as the payload says."""

    item_ref: str
    price_ref: str
    product_ref: str
    quantity: int
    unit_amount_decimal: str  # minor units per unit, exact; "" when the price has none (tiered)
    currency: str
    interval: str  # day | week | month | year; "" for a one-time price
    interval_count: int
    usage_type: str  # licensed | metered
    divide_by: int = 1  # transform_quantity: billed units = quantity / divide_by, rounded
    round_up: bool = True

    @property
    def metered(self) -> bool:
        return self.usage_type == "metered"


@dataclass(frozen=True)
class SubscriptionUpdate:
    """What a ``customer.subscription.updated`` event changed, read from its previous values."""

    subscription_ref: str
    customer_ref: str
    currency: str
    changed: frozenset[str]  # top-level attributes in previous_attributes
    items: tuple[SubscriptionItemPrice, ...]
    previous_items: tuple[SubscriptionItemPrice, ...] | None  # None: price/quantity unchanged
    cancel_at_period_end: bool
    cancel_at: dt.datetime | None
    canceled_at: dt.datetime | None
    current_period_end: dt.datetime | None
    cancellation_changed: bool

    @property
    def amended(self) -> bool:
        """Price or quantity changed (not only periods, metadata or status)."""
        return self.previous_items is not None

    @property
    def scheduled_end(self) -> dt.datetime | None:
        """When the subscription is now set to end: ``cancel_at``, else the period end when it
        cancels at period end, else None (no end scheduled, or the schedule was lifted)."""
        if self.cancel_at is not None:
            return self.cancel_at
        return self.current_period_end if self.cancel_at_period_end else None


def _item_price(item: Mapping[str, Any], what: str, default_currency: str) -> SubscriptionItemPrice:
    price = item.get("price") if isinstance(item.get("price"), Mapping) else item.get("plan")
    price = price if isinstance(price, Mapping) else {}
    recurring = price.get("recurring") if isinstance(price.get("recurring"), Mapping) else None
    if recurring is not None:  # a price object
        interval = _text(recurring.get("interval"))
        count = recurring.get("interval_count") or 1
        usage_type = _text(recurring.get("usage_type")) or "licensed"
        unit = price.get("unit_amount_decimal")
        if unit in (None, "") and price.get("unit_amount") is not None:
            unit = price.get("unit_amount")
        transform = price.get("transform_quantity")
    else:  # a legacy plan object
        interval = _text(price.get("interval"))
        count = price.get("interval_count") or 1
        usage_type = _text(price.get("usage_type")) or "licensed"
        unit = price.get("amount_decimal")
        if unit in (None, "") and price.get("amount") is not None:
            unit = price.get("amount")
        transform = price.get("transform_usage")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise _invalid(what, "interval_count", count, "a positive integer")
    quantity = item.get("quantity")
    if quantity is None:
        quantity = 0 if usage_type == "metered" else 1  # metered items carry no quantity
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise _invalid(what, "quantity", quantity, "an integer")
    divide_by, round_up = 1, True
    if isinstance(transform, Mapping) and transform.get("divide_by"):
        divide_by = transform["divide_by"]
        if isinstance(divide_by, bool) or not isinstance(divide_by, int) or divide_by < 1:
            raise _invalid(what, "transform_quantity.divide_by", divide_by, "a positive integer")
        round_up = transform.get("round") != "down"
    return SubscriptionItemPrice(
        item_ref=_text(item.get("id")),
        price_ref=_ref(price) or _ref(item.get("price")) or _ref(item.get("plan")),
        product_ref=_ref(price.get("product")),
        quantity=quantity,
        unit_amount_decimal=_decimal_text(unit, what, "unit_amount_decimal"),
        currency=_currency(price.get("currency"), what, required=False) or default_currency,
        interval=interval,
        interval_count=count,
        usage_type=usage_type,
        divide_by=divide_by,
        round_up=round_up,
    )


def parse_subscription_items(
    obj: Mapping[str, Any], *, what: str = "subscription", currency: str = ""
) -> tuple[SubscriptionItemPrice, ...]:
    """The priced items of a subscription (or of its ``previous_attributes``)."""
    listing, raw_items = _list_data(obj, "items", what)
    _check_complete(listing, _text(obj.get("id")) or what, what, "items", len(raw_items))
    return tuple(
        _item_price(
            _require_mapping(item, "subscription item"),
            f"{what} item {item.get('id') or i}",
            currency,
        )
        for i, item in enumerate(raw_items)
    )


def _terms(items: tuple[SubscriptionItemPrice, ...]) -> list[tuple[str, int]]:
    return sorted((i.price_ref, i.quantity) for i in items)


def parse_subscription_update(data: Mapping[str, Any]) -> SubscriptionUpdate:
    """The ``data`` of a ``customer.subscription.updated`` event (``object`` and
    ``previous_attributes``) as what changed: prices and quantities (old and new items), and
    the scheduled cancellation (``cancel_at_period_end`` / ``cancel_at``)."""
    data = _require_mapping(data, "event data")
    obj = _require_mapping(data.get("object"), "subscription")
    previous = data.get("previous_attributes")
    previous = previous if isinstance(previous, Mapping) else {}
    sub = parse_subscription(obj)
    what = f"subscription {sub.source_id}"
    currency = sub.currency
    items = parse_subscription_items(obj, what=what, currency=currency)

    previous_items: tuple[SubscriptionItemPrice, ...] | None = None
    if isinstance(previous.get("items"), Mapping | list):
        before = parse_subscription_items(
            {"id": sub.source_id, "items": previous["items"]},
            what=f"{what} previous_attributes",
            currency=currency,
        )
        if _terms(before) != _terms(items):
            previous_items = before
    elif ("plan" in previous or "quantity" in previous) and len(items) == 1:
        # A single-plan subscription of the old API: plan and quantity at the top level.
        legacy = {
            "id": items[0].item_ref,
            "plan": previous.get("plan", obj.get("plan")),
            "quantity": previous.get("quantity", obj.get("quantity")),
        }
        before = (_item_price(legacy, f"{what} previous_attributes", currency),)
        if _terms(before) != _terms(items):
            previous_items = before

    cancel_at_period_end = obj.get("cancel_at_period_end") is True
    cancel_at = _timestamp(obj.get("cancel_at"), what, "cancel_at")
    cancellation_changed = (
        "cancel_at_period_end" in previous
        and (previous.get("cancel_at_period_end") is True) != cancel_at_period_end
    ) or (
        "cancel_at" in previous
        and _timestamp(previous.get("cancel_at"), what, "previous cancel_at") != cancel_at
    )
    return SubscriptionUpdate(
        subscription_ref=sub.source_id,
        customer_ref=sub.customer_ref,
        currency=currency,
        changed=frozenset(str(k) for k in previous),
        items=items,
        previous_items=previous_items,
        cancel_at_period_end=cancel_at_period_end,
        cancel_at=cancel_at,
        canceled_at=_timestamp(obj.get("canceled_at"), what, "canceled_at"),
        current_period_end=sub.current_period_end,
        cancellation_changed=cancellation_changed,
    )


__all__ += [
    "SubscriptionItemPrice",
    "SubscriptionUpdate",
    "parse_subscription_items",
    "parse_subscription_update",
]
