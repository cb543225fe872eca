"""What an exception is really waiting for, as a key many exceptions share: "42 invoices blocked
by the missing product mapping price_X" is one fix, not 42 problems.

``root_cause_of`` turns a case's category and context into a key (``category:subject``),
stored on the case when it opens (indexed, so the queue groups 100,000 open cases quickly);
``describe`` turns a key back into words and names the fix. Pure functions, no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The categories whose fix is a mapping or master-data row, and the context keys naming it.
UNMAPPED_PRODUCT = "unmapped_product"
INVALID_TAX = "invalid_tax_jurisdiction"
MISSING_RULE = "missing_posting_rule"
MISSING_FX = "missing_fx_rate"
CUSTOMER_NOT_LINKED = "customer_not_linked"
CONNECTOR_CATEGORIES = ("connector_unavailable", "connector_auth")
ERP_REJECTED = "erp_rejected"


def _first(value: Any) -> str:
    if isinstance(value, list | tuple):
        return str(sorted(map(str, value))[0]) if value else ""
    return "" if value is None else str(value)


def root_cause_of(category: str, context: dict[str, Any] | None) -> str:
    """The shared key of what blocks a case, at most 200 characters. Cases whose context names
    no subject group under their category alone."""
    ctx = context or {}
    missing = ctx.get("missing") if isinstance(ctx.get("missing"), dict) else {}
    entity = str(ctx.get("entity") or "")
    subject = ""
    if category == UNMAPPED_PRODUCT:
        subject = _first(missing.get(UNMAPPED_PRODUCT)) or _first(ctx.get("price"))
    elif category == INVALID_TAX:
        ref = _first(missing.get(INVALID_TAX)) or _first(ctx.get("tax_rate"))
        subject = f"{entity}/{ref}" if ref else entity
    elif category == MISSING_RULE:
        kind = _first(missing.get(MISSING_RULE))
        subject = f"{entity}/{kind}" if kind else entity
    elif category == MISSING_FX:
        pair, day = str(ctx.get("pair") or ""), str(ctx.get("date") or "")
        subject = f"{pair}@{day}" if pair and day else pair
    elif category == CUSTOMER_NOT_LINKED:
        subject = _first(ctx.get("customer"))
    elif category in CONNECTOR_CATEGORIES or category == ERP_REJECTED:
        subject = _first(ctx.get("code"))
    return f"{category}:{subject}"[:200] if subject else category[:200]


@dataclass(frozen=True)
class Cause:
    """A root cause in words: ``blocked`` completes "N journeys blocked by ...", ``fix`` says
    what to do, and ``fix_kind`` with ``fix_fields`` name the record that fixes it (a mapping
    to create, pre-filled), or ``fix_kind`` "connector" / "" (look at the journey)."""

    key: str
    category: str
    subject: str
    blocked: str
    fix: str
    fix_kind: str = ""
    fix_fields: tuple[tuple[str, str], ...] = ()


def describe(key: str) -> Cause:
    category, _, subject = key.partition(":")
    entity, _, ref = subject.partition("/")
    if category == UNMAPPED_PRODUCT and subject:
        return Cause(
            key,
            category,
            subject,
            f"the missing product mapping for {subject}",
            f"Map {subject} to a product",
            "product_mapping",
            (("source_ref", subject),),
        )
    if category == INVALID_TAX and subject:
        return Cause(
            key,
            category,
            subject,
            f"the missing tax mapping for {ref or '?'} in {entity}",
            f"Map tax rate {ref} in {entity}",
            "tax_mapping",
            (("entity", entity), ("source_rate_ref", ref)),
        )
    if category == MISSING_RULE and subject:
        what = f" for {ref}" if ref else ""
        return Cause(
            key,
            category,
            subject,
            f"the missing posting rule{what} in {entity}",
            f"Add the posting rule{what} in {entity}",
            "posting_rule",
            (("entity", entity), ("revenue_type", ref)),
        )
    if category == MISSING_FX and subject:
        pair, _, day = subject.partition("@")
        base, _, quote = pair.partition("/")
        on = f" on {day}" if day else ""
        return Cause(
            key,
            category,
            subject,
            f"the missing {pair} rate{on}",
            f"Add the {pair} rate{on}",
            "fx_rate",
            (("base_currency", base), ("quote_currency", quote), ("rate_date", day)),
        )
    if category == CUSTOMER_NOT_LINKED and subject:
        return Cause(
            key,
            category,
            subject,
            f"customer {subject} not linked to a legal entity",
            f"Link customer {subject}",
            "customer_link",
            (("billing_customer_id", subject),),
        )
    if category in CONNECTOR_CATEGORIES:
        code = f" ({subject})" if subject else ""
        return Cause(
            key, category, subject, f"the ERP connector{code}", "Check the connector", "connector"
        )
    if category == ERP_REJECTED:
        code = f" {subject}" if subject else ""
        return Cause(
            key, category, subject, f"the ERP's refusal{code}", "Read the refusal on a journey"
        )
    words = category.replace("_", " ")
    return Cause(
        key, category, subject, words + (f" ({subject})" if subject else ""), "Open a journey"
    )
