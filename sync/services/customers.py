"""Customer links: how a billing customer finds its legal entity and its ERP customer record.

Shared by every journey that needs a customer's entity (invoice_to_ledger's link_customer,
customer_sync's link). Each caller says in its own words what to do when there is no link and
no entity hint; everything else (the hint, the automatic link, the checks) lives here.
"""

from __future__ import annotations

from django.db import transaction

from sync.errors import DataDefect
from sync.models import Customer, CustomerLink, ExceptionCase, LegalEntity
from sync.services.audit import audit_record

Cat = ExceptionCase.Category


def customer_link_find(
    billing_customer_id: str, billing_system: str = "stripe"
) -> CustomerLink | None:
    """The customer's link with its legal entity, or ``None``."""
    return (
        CustomerLink.objects.select_related("legal_entity")
        .filter(billing_system=billing_system, billing_customer_id=billing_customer_id)
        .first()
    )


def entity_code_hint(billing_customer_id: str, billing_system: str = "stripe") -> str:
    """The ``legal_entity`` metadata of the newest version of the customer we hold, or ``""``."""
    customer = Customer.objects.filter(
        source_system=billing_system, source_id=billing_customer_id
    ).first()
    if customer and customer.metadata.get("legal_entity"):
        return str(customer.metadata["legal_entity"])
    return ""


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
        raise DataDefect(
            Cat.MISSING_ENTITY_MAPPING,
            f"Customer {billing_customer_id} belongs to legal entity '{entity_code}', which is "
            "not set up. Add the legal entity (or fix the customer link), then replay.",
            context={"customer": billing_customer_id, "entity_code": entity_code},
        )
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


def customer_link_set_erp_id(
    *, link: CustomerLink, erp_customer_id: str, correlation_id: str = ""
) -> bool:
    """Record the ERP's internal id of the customer on its link, audited. Returns whether it
    changed (writing the same id again is a no-op without an audit entry)."""
    with transaction.atomic():
        locked = CustomerLink.objects.select_for_update().get(pk=link.pk)
        if locked.erp_customer_id == erp_customer_id:
            link.erp_customer_id = erp_customer_id
            return False
        before = locked.erp_customer_id
        CustomerLink.objects.filter(pk=link.pk).update(erp_customer_id=erp_customer_id)
        link.erp_customer_id = erp_customer_id
        audit_record(
            actor=None,
            action="customer_link.set_erp_id",
            obj=link,
            before={"erp_customer_id": before},
            after={"erp_customer_id": erp_customer_id},
            correlation_id=correlation_id,
        )
    return True
