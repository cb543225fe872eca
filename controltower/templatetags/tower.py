"""Small presentation helpers for the Control Tower screens. No queries here."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def age(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """A compact age for queues: ``<1m``, ``42m``, ``5h 12m``, ``3d 4h``."""
    if value is None:
        return ""
    seconds = int(((now or timezone.now()) - value).total_seconds())
    if seconds < 60:
        return "<1m"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes}m"
    if days < 1:
        return f"{hours}h {minutes % 60}m"
    return f"{days}d {hours % 24}h"


@register.filter
def pairs(value: Any) -> str:
    """A JSON object (audit before/after, context) as ``key: value; key: value``."""
    if value in (None, "", {}):
        return ""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_scalar(v)}" for k, v in value.items())
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_scalar(v) for v in value)
    if isinstance(value, dict):
        return "{" + pairs(value) + "}"
    return "" if value is None else str(value)


@register.simple_tag
def entry_totals(entry: Any) -> dict[str, int]:
    """Debit and credit totals of a journal entry, in transaction and functional currency.

    Sums the prefetched ``entry.lines`` (the selector loads them), so it adds no query.
    """
    totals = {"debit": 0, "credit": 0, "functional_debit": 0, "functional_credit": 0}
    for line in entry.lines.all():
        totals["debit"] += line.debit_minor
        totals["credit"] += line.credit_minor
        totals["functional_debit"] += line.functional_debit_minor
        totals["functional_credit"] += line.functional_credit_minor
    totals["balanced"] = (
        totals["debit"] == totals["credit"]
        and totals["functional_debit"] == totals["functional_credit"]
    )
    return totals


@register.filter
def words(value: str) -> str:
    """``finance_ops`` -> ``finance ops``."""
    return str(value).replace("_", " ")


@register.filter
def plain_decimal(value: Any) -> str:
    """An FX rate without trailing zeros or exponent: ``1.0850000000`` -> ``1.085``."""
    if value is None or value == "":
        return ""
    return format(Decimal(value).normalize(), "f")


@register.filter
def duration(seconds: float | None) -> str:
    """Seconds as a short human duration: 42 s, 3.5 min, 2.1 h, 1.4 d; "—" for none."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@register.filter
def percent(value: float | None) -> str:
    """A percentage with one decimal, "—" when there is nothing to divide."""
    return "—" if value is None else f"{value:.1f}%"


@register.filter
def get_item(mapping: dict | None, key: Any) -> Any:
    """``mapping|get_item:key``: a dict lookup in a template (None when missing)."""
    return (mapping or {}).get(key)


@register.filter
def redacted_json(value: Any) -> str:
    """A payload as indented JSON with secrets and card/bank numbers masked."""
    import json

    from sync.redaction import redact

    if value in (None, "", {}):
        return ""
    return json.dumps(redact(value), indent=2, sort_keys=True, default=str, ensure_ascii=False)


_STRIPE_PATHS = {
    "in_": "invoices",
    "cus_": "customers",
    "ch_": "payments",
    "py_": "payments",
    "pi_": "payments",
    "re_": "refunds",
    "sub_": "subscriptions",
    "cn_": "credit_notes",
    "dp_": "disputes",
    "du_": "disputes",
    "evt_": "events",
}


@register.simple_tag
def source_url(source_system: str, record_id: str) -> str:
    """The record in the billing system's own screens, when its address is configured."""
    from django.conf import settings

    base = getattr(settings, "STRIPE_DASHBOARD_URL", "")
    if source_system != "stripe" or not base or not record_id:
        return ""
    path = next((p for prefix, p in _STRIPE_PATHS.items() if record_id.startswith(prefix)), "")
    return f"{base}/{path}/{record_id}" if path else ""


@register.simple_tag
def erp_url(erp_system: str, document_id: str) -> str:
    """The journal entry in the ERP's own screens, when its address is configured."""
    from django.conf import settings

    base = getattr(settings, "NETSUITE_UI_URL", "")
    if erp_system != "netsuite" or not base or not document_id:
        return ""
    return f"{base}/app/accounting/transactions/journal.nl?id={document_id}"
