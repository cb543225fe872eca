"""Customer links: how a billing customer finds its legal entity and its ERP customer record.

Shared by every journey that needs a customer's entity (invoice_to_ledger's link_customer,
customer_sync's link). Each caller says in its own words what to do when there is no link and
no entity hint; everything else (the hint, the automatic link, the checks) lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from sync.errors import DataDefect
from sync.models import AuditEntry, Customer, CustomerLink, ExceptionCase, LegalEntity
from sync.services.audit import audit_entry_build, audit_record
from sync.services.bulk import objs_insert, rows_update

Cat = ExceptionCase.Category


def entity_code_hints(
    billing_customer_ids: set[str], billing_system: str = "stripe"
) -> tuple[dict[str, str], set[str]]:
    """The ``legal_entity`` metadata of the newest version of each customer we hold, in one
    query: (the hint of each that has one, the ids of the customers we hold at all)."""
    hints: dict[str, str] = {}
    known: set[str] = set()
    for source_id, metadata in Customer.objects.filter(
        source_system=billing_system, source_id__in=billing_customer_ids
    ).values_list("source_id", "metadata"):
        known.add(source_id)
        if metadata and metadata.get("legal_entity"):
            hints[source_id] = str(metadata["legal_entity"])
    return hints, known


def customer_link_create_from_metadata(
    *,
    billing_customer_id: str,
    entity_code: str,
    correlation_id: str = "",
    billing_system: str = "stripe",
) -> CustomerLink:
    """Link the customer to the active legal entity ``entity_code`` (its ``legal_entity``
    metadata), audited; an existing link is returned unchanged.

    Raises ``DataDefect(missing_entity_mapping)`` when no active entity has that code."""
    entity = LegalEntity.objects.filter(code=entity_code, is_active=True).first()
    if entity is None:
        raise _entity_not_set_up(billing_customer_id, entity_code)
    with transaction.atomic():
        link, created = CustomerLink.objects.get_or_create(
            billing_system=billing_system,
            billing_customer_id=billing_customer_id,
            defaults={
                "legal_entity": entity,
                "customer": Customer.objects.filter(
                    source_system=billing_system, source_id=billing_customer_id
                ).first(),
            },
        )
        if created:
            audit_record(
                actor=None,
                action="customer_link.create",
                obj=link,
                after={"legal_entity": entity.code, "source": "customer metadata"},
                correlation_id=correlation_id,
            )
    return link


def entity_require_subsidiary(entity: LegalEntity) -> str:
    """The entity's NetSuite subsidiary id; ``DataDefect(missing_entity_mapping)`` if unset."""
    if not entity.netsuite_subsidiary_id:
        raise DataDefect(
            Cat.MISSING_ENTITY_MAPPING,
            f"Legal entity {entity.code} has no NetSuite subsidiary id. Set it, then replay.",
            context={"entity": entity.code},
        )
    return entity.netsuite_subsidiary_id


@dataclass(frozen=True)
class LinkRequest:
    """One customer to link from its ``legal_entity`` metadata (``entity_code``)."""

    billing_customer_id: str
    entity_code: str
    correlation_id: str = ""


def customer_links_create_from_metadata(
    requests: list[LinkRequest], billing_system: str = "stripe"
) -> dict[str, CustomerLink | Exception]:
    """``customer_link_create_from_metadata`` for many customers, by customer id: the link,
    or the ``DataDefect`` for an entity that is not set up. The entities, the customers and
    the links already there are read in one query each, the new links inserted in one, with
    their audit entries in one. If another worker links one of them at the same moment, the
    insert is given up and each is linked one by one, as the one-customer function does."""
    codes = {r.entity_code for r in requests}
    entities = {e.code: e for e in LegalEntity.objects.filter(code__in=codes, is_active=True)}
    out: dict[str, CustomerLink | Exception] = {}
    wanted: dict[str, LinkRequest] = {}
    for r in requests:
        if r.entity_code not in entities:
            out[r.billing_customer_id] = _entity_not_set_up(r.billing_customer_id, r.entity_code)
        else:
            wanted.setdefault(r.billing_customer_id, r)
    if not wanted:
        return out
    for link in CustomerLink.objects.select_related("legal_entity").filter(
        billing_system=billing_system, billing_customer_id__in=list(wanted)
    ):
        out[link.billing_customer_id] = link
    missing = [r for ref, r in wanted.items() if ref not in out]
    if not missing:
        return out
    customers = {
        c.source_id: c
        for c in Customer.objects.filter(
            source_system=billing_system, source_id__in=[r.billing_customer_id for r in missing]
        )
    }
    links = [
        CustomerLink(
            billing_system=billing_system,
            billing_customer_id=r.billing_customer_id,
            legal_entity=entities[r.entity_code],
            customer=customers.get(r.billing_customer_id),
        )
        for r in missing
    ]
    try:
        with transaction.atomic():
            CustomerLink.objects.bulk_create(links)
            AuditEntry.objects.bulk_create(
                audit_entry_build(
                    actor=None,
                    action="customer_link.create",
                    obj=link,
                    after={"legal_entity": r.entity_code, "source": "customer metadata"},
                    correlation_id=r.correlation_id,
                )
                for link, r in zip(links, missing, strict=True)
            )
    except IntegrityError:
        for r in missing:
            out[r.billing_customer_id] = customer_link_create_from_metadata(
                billing_customer_id=r.billing_customer_id,
                entity_code=r.entity_code,
                correlation_id=r.correlation_id,
                billing_system=billing_system,
            )
        return out
    for link in links:
        out[link.billing_customer_id] = link
    return out


def customer_links_for(
    wanted: dict[str, tuple[dict[str, Any], str]], billing_system: str = "stripe"
) -> tuple[dict[str, CustomerLink | Exception], set[str]]:
    """The link of each customer, by customer id, in a few queries for all: the links that
    exist, and for the others one made from the ``legal_entity`` hint (the customer we hold,
    else the ``metadata`` given with it: ``wanted[id] = (metadata, correlation id)``), or the
    ``DataDefect`` of an entity that is not set up. A customer with no hint at all is left
    out; with it comes the set of customers we hold, for the caller to say why. The rule both
    invoice_to_ledger's and customer_sync's link steps follow."""
    links: dict[str, CustomerLink | Exception] = {
        link.billing_customer_id: link
        for link in CustomerLink.objects.select_related("legal_entity").filter(
            billing_system=billing_system, billing_customer_id__in=list(wanted)
        )
    }
    missing = {ref: wanted[ref] for ref in wanted if ref not in links}
    if not missing:
        return links, set()
    hints, known = entity_code_hints(set(missing), billing_system)
    requests = []
    for ref, (metadata, correlation_id) in missing.items():
        code = hints.get(ref) or (metadata or {}).get("legal_entity", "")
        if code:
            requests.append(LinkRequest(ref, str(code), correlation_id))
    links.update(customer_links_create_from_metadata(requests, billing_system))
    return links, known


def _entity_not_set_up(billing_customer_id: str, entity_code: str) -> DataDefect:
    return DataDefect(
        Cat.MISSING_ENTITY_MAPPING,
        f"Customer {billing_customer_id} belongs to legal entity '{entity_code}', which is "
        "not set up. Add the legal entity (or fix the customer link), then replay.",
        context={"customer": billing_customer_id, "entity_code": entity_code},
    )


def customer_links_set_erp_ids(changes: list[tuple[CustomerLink, str, str]]) -> set[int]:
    """Record the ERP's internal id of each customer on its link, audited, for many
    ``(link, erp id, correlation id)``: the links locked in one query (in id order), those
    whose id changes updated in one statement and audited in one insert (writing the same id
    again is a no-op without an audit entry). Returns the ids of the links that changed."""
    if not changes:
        return set()
    with transaction.atomic():
        locked = {
            row.pk: row
            for row in CustomerLink.objects.select_for_update()
            .filter(pk__in=[link.pk for link, _, _ in changes])
            .order_by("pk")
            .only("pk", "erp_customer_id")
        }
        changed: dict[int, tuple[CustomerLink, str, str, str]] = {}
        for link, erp_customer_id, correlation_id in changes:
            current = locked[link.pk].erp_customer_id
            link.erp_customer_id = erp_customer_id
            if current != erp_customer_id:
                changed[link.pk] = (link, current, erp_customer_id, correlation_id)
                locked[link.pk].erp_customer_id = erp_customer_id
        if not changed:
            return set()
        rows_update(
            CustomerLink,
            ["erp_customer_id"],
            ((pk, [locked[pk].erp_customer_id]) for pk in changed),
        )
        objs_insert(
            [
                audit_entry_build(
                    actor=None,
                    action="customer_link.set_erp_id",
                    obj=link,
                    before={"erp_customer_id": before},
                    after={"erp_customer_id": after},
                    correlation_id=correlation_id,
                )
                for link, before, after, correlation_id in changed.values()
            ]
        )
    return set(changed)
