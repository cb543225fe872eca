"""Where a person fixes a root cause: the form that creates the missing mapping, pre-filled."""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse

from sync.root_causes import Cause

_FORMS = {"product_mapping", "tax_mapping", "posting_rule", "fx_rate", "customer_link"}


def fix_url(cause: Cause, entity_ids: dict[str, int] | None = None) -> str | None:
    """The page that fixes ``cause``, or None when the fix is to read a journey."""
    if cause.fix_kind == "connector":
        return reverse("connector-list")
    if cause.fix_kind not in _FORMS:
        return None
    url = reverse("mapping-new", args=[cause.fix_kind])
    params = []
    for field, value in cause.fix_fields:
        if not value:
            continue
        if field == "entity":
            pk = (entity_ids or {}).get(value)
            if pk is not None:
                params.append(("legal_entity", str(pk)))
            continue
        params.append((field, value))
    return f"{url}?{urlencode(params)}" if params else url
