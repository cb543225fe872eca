"""The mapping kinds people edit on screen and through the API, by a short name."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import models
from django.db.models import Q

from sync.models import (
    CustomerLink,
    FxRate,
    GLAccount,
    LegalEntity,
    PostingRule,
    ProductMapping,
    SlaPolicy,
    TaxMapping,
)

KINDS: dict[str, type[models.Model]] = {
    "legal_entity": LegalEntity,
    "gl_account": GLAccount,
    "posting_rule": PostingRule,
    "product_mapping": ProductMapping,
    "tax_mapping": TaxMapping,
    "customer_link": CustomerLink,
    "fx_rate": FxRate,
    "sla_policy": SlaPolicy,
}
# Changes to these decide how entries post: a second integration admin approves them.
NEEDS_APPROVAL = frozenset({"posting_rule", "product_mapping"})
# Kinds that belong to one legal entity (the rest are shared by every entity).
ENTITY_KINDS = frozenset({"gl_account", "posting_rule", "tax_mapping", "customer_link"})


def kind_of(obj: models.Model | type[models.Model]) -> str | None:
    model = obj if isinstance(obj, type) else type(obj)
    return next((k for k, m in KINDS.items() if m is model), None)


def needs_approval(obj: models.Model | type[models.Model]) -> bool:
    return kind_of(obj) in NEEDS_APPROVAL


def editable_fields(model: type[models.Model]) -> list[models.Field]:
    return [
        f
        for f in model._meta.concrete_fields
        if not f.primary_key and f.editable and not getattr(f, "auto_now", False)
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def values_of(instance: models.Model) -> dict[str, Any]:
    """The editable values of a row, JSON-safe, foreign keys as ids (``<field>_id``)."""
    return {
        f.attname: _plain(getattr(instance, f.attname)) for f in editable_fields(type(instance))
    }


def apply_values(instance: models.Model, values: dict[str, Any]) -> models.Model:
    """Set ``values`` (as from ``values_of``) on ``instance``."""
    for f in editable_fields(type(instance)):
        if f.attname in values:
            raw = values[f.attname]
            setattr(instance, f.attname, None if raw is None else f.to_python(raw))
    return instance


def unblocks(instance: models.Model) -> Q | None:
    """Which open exceptions a saved mapping may unblock, as a condition on their root cause
    (``sync.root_causes``); None when none can be named."""
    kind = kind_of(instance)
    entity = getattr(getattr(instance, "legal_entity", None), "code", "")
    if kind == "product_mapping":
        return Q(root_cause=f"unmapped_product:{instance.source_ref}")
    if kind == "tax_mapping":
        return Q(root_cause=f"invalid_tax_jurisdiction:{entity}/{instance.source_rate_ref}")
    if kind == "posting_rule":
        return Q(root_cause=f"missing_posting_rule:{entity}") | Q(
            root_cause__startswith=f"missing_posting_rule:{entity}/"
        )
    if kind == "customer_link":
        return Q(root_cause=f"customer_not_linked:{instance.billing_customer_id}")
    if kind == "fx_rate":
        pair = f"{instance.base_currency}/{instance.quote_currency}"
        # A rate serves its date and, until a newer one, the dates after it.
        return Q(root_cause__startswith=f"missing_fx_rate:{pair}@") & Q(
            root_cause__gte=f"missing_fx_rate:{pair}@{instance.rate_date}"
        )
    return None
