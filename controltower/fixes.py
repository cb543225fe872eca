"""Where a person fixes a root cause: the form that creates the missing mapping, pre-filled."""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse

from sync.root_causes import Cause

_ADMIN_ADD = {
    "product_mapping": "admin:sync_productmapping_add",
    "tax_mapping": "admin:sync_taxmapping_add",
    "posting_rule": "admin:sync_postingrule_add",
    "fx_rate": "admin:sync_fxrate_add",
    "customer_link": "admin:sync_customerlink_add",
}


def fix_url(cause: Cause, entity_ids: dict[str, int] | None = None) -> str | None:
    """The page that fixes ``cause``, or None when the fix is to read a journey."""
    if cause.fix_kind == "connector":
        return reverse("connector-list")
    name = _ADMIN_ADD.get(cause.fix_kind)
    if name is None:
        return None
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
    return f"{reverse(name)}?{urlencode(params)}" if params else reverse(name)
