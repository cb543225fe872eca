"""customer_sync: a billing customer becomes (and stays) one customer record in the ERP.

link -> upsert the ERP customer under ``RCT-CUS-<customer id>``.

Each ``customer.created`` / ``customer.updated`` event is its own journey (business key
``<customer id>:<event id>``). The ERP write is an upsert by external id, so a re-run, a
replay or a duplicate event can never create a second ERP customer.

Ordering. Dispatch keeps the ``Customer`` row at the newest source version (an older event
does not overwrite it) and, in the same transaction, starts this journey. So the upsert step
does not send the event's payload: it sends the row. It locks the row first; if the row is
newer than this event, a newer event's journey exists and will write it, so this one skips
with the reason recorded. Otherwise it upserts the row's data while still holding the lock, so
dispatch cannot move the row on between our read and our write: ERP writes follow the source
versions, and an update delivered late never overwrites a newer one.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from connectors.base import WebhookEnvelope
from connectors.netsuite.client import CustomerRecord
from sync.errors import DataDefect, StepSkipped
from sync.journeys import JourneyType, StepContext, StepDef
from sync.journeys.common import journeys_set_entity, send_in_bulk
from sync.models import Customer, CustomerLink, ExceptionCase
from sync.services.connectors import erp_customer_connector
from sync.services.customers import (
    customer_links_for,
    customer_links_set_erp_ids,
    entity_require_subsidiary,
)

Cat = ExceptionCase.Category


def erp_external_id(customer_ref: str) -> str:
    return f"RCT-CUS-{customer_ref}"


def _customer_ref(ctx: StepContext) -> str:
    return str(ctx.journey.source_event.payload["data"]["object"]["id"])


def link(ctx: StepContext) -> dict[str, Any]:
    """Find the customer's link to its legal entity, creating it from the customer's
    ``legal_entity`` metadata (the same rule as invoice_to_ledger's link_customer)."""
    outcome = link_many([ctx])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def link_many(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``link`` for many journeys: the customers' links found or made in a few queries for
    all (``customer_links_for``), the journeys' entity set in one update per entity. The only
    implementation."""
    outcomes: list[dict[str, Any] | Exception] = [{} for _ in ctxs]
    refs: dict[int, str] = {}
    wanted: dict[str, tuple[dict[str, Any], str]] = {}
    for i, ctx in enumerate(ctxs):
        try:
            refs[i] = _customer_ref(ctx)
        except Exception as exc:
            outcomes[i] = exc
            continue
        metadata = ctx.journey.source_event.payload["data"]["object"].get("metadata") or {}
        wanted.setdefault(refs[i], (metadata, str(ctx.journey.correlation_id)))

    links, _known = customer_links_for(wanted)
    assigned = []
    for i, ref in refs.items():
        try:
            found = links.get(ref) or DataDefect(
                Cat.CUSTOMER_NOT_LINKED,
                f"Customer {ref} is not linked to a legal entity. Add a customer link, then "
                "replay.",
                context={"customer": ref},
            )
            if isinstance(found, Exception):
                raise found
            entity = found.legal_entity
            entity_require_subsidiary(entity)
        except Exception as exc:
            outcomes[i] = exc
            continue
        assigned.append((ctxs[i], entity))
        outcomes[i] = {
            "customer_ref": ref,
            "link_id": found.pk,
            "legal_entity_id": entity.pk,
            "legal_entity": entity.code,
        }
    journeys_set_entity(assigned)
    return outcomes


def upsert_erp_customer(ctx: StepContext) -> dict[str, Any]:
    """Upsert the newest version of the customer we hold into the ERP customer master and
    keep its internal id on the link; skip when a newer event has superseded this one."""
    outcome = upsert_erp_customers([ctx])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def upsert_erp_customers(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``upsert_erp_customer`` for many journeys: their links read in one query, their
    customer rows locked in one (in id order) and held across the ERP's bulk upsert, so
    dispatch cannot apply a newer version between our read and our write; the ERP ids kept
    on the links in one audited update. The only implementation."""
    outcomes: list[dict[str, Any] | Exception] = [{} for _ in ctxs]
    links = (
        CustomerLink.objects.select_related("legal_entity")
        .order_by()
        .in_bulk([ctx.data["link_id"] for ctx in ctxs])
    )
    refs = [ctx.data["customer_ref"] for ctx in ctxs]
    sending: list[tuple[int, CustomerRecord]] = []
    with transaction.atomic():
        customers = {
            c.source_id: c
            for c in Customer.objects.select_for_update()
            .filter(source_system="stripe", source_id__in=refs)
            .order_by("pk")
        }
        for i, ctx in enumerate(ctxs):
            try:
                sending.append((i, _customer_record(ctx, links, customers)))
            except Exception as exc:
                outcomes[i] = exc
        if sending:
            erp = erp_customer_connector()
            results = send_in_bulk(ctxs, sending, erp.upsert_customers, erp.batch_limit)
            written = []
            for (i, record), result in zip(sending, results, strict=True):
                if isinstance(result, Exception):
                    outcomes[i] = result
                    continue
                ctx = ctxs[i]
                customer = customers[ctx.data["customer_ref"]]
                written.append(
                    (
                        links[ctx.data["link_id"]],
                        result.document_id,
                        str(ctx.journey.correlation_id),
                    )
                )
                version = customer.source_updated_at
                outcomes[i] = {
                    "external_id": record.external_id,
                    "erp_customer_id": result.document_id,
                    "synced_at": version.isoformat() if version else None,
                    "name": customer.name,
                }
            customer_links_set_erp_ids(written)
    return outcomes


def _customer_record(
    ctx: StepContext, links: dict[int, CustomerLink], customers: dict[str, Customer]
) -> CustomerRecord:
    """What to upsert for this journey, or the defect or skip that stops it."""
    customer_ref = ctx.data["customer_ref"]
    event_at = ctx.journey.business_at
    external_id = erp_external_id(customer_ref)
    found = links[ctx.data["link_id"]]
    subsidiary = entity_require_subsidiary(found.legal_entity)
    customer = customers.get(customer_ref)
    if customer is None:
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"Customer {customer_ref} is not in our customer records; the billing event "
            "could not be read. Check the event, then replay.",
            context={"customer": customer_ref},
        )
    version = customer.source_updated_at
    if version is not None and version > event_at:
        raise StepSkipped(
            f"superseded: this event is from {event_at:%Y-%m-%d %H:%M:%S}, we hold "
            f"the version of {version:%Y-%m-%d %H:%M:%S}, which its own journey writes",
            result={"external_id": external_id, "erp_customer_id": found.erp_customer_id},
        )
    if not customer.name:
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"Customer {customer_ref} has no name in billing, and the ERP needs one. Add "
            "the name in billing (the update syncs by itself), or replay after fixing it.",
            context={"customer": customer_ref},
        )
    return CustomerRecord(
        external_id, name=customer.name, subsidiary=subsidiary, email=customer.email
    )


def _business_key(env: WebhookEnvelope) -> str:
    return f"{env.object_id}:{env.event_id}"


def _aggregate_key(env: WebhookEnvelope) -> str:
    return f"stripe:{env.object_id}"


JOURNEY = JourneyType(
    name="customer_sync",
    source_system="stripe",
    event_types=frozenset({"customer.created", "customer.updated"}),
    steps=(
        StepDef(
            "link",
            link,
            "Find or create the customer's link to its legal entity",
            batch=link_many,
        ),
        StepDef(
            "upsert_erp_customer",
            upsert_erp_customer,
            "Create or update the ERP customer under its external id",
            connector="netsuite",
            batch=upsert_erp_customers,
        ),
    ),
    business_key=_business_key,
    aggregate_key=_aggregate_key,
    default_sla_minutes=60,
)
