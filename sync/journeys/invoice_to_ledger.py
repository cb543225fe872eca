"""invoice_to_ledger: a finalized billing invoice becomes one balanced entry in the ERP.

validate -> link customer and legal entity -> map products and tax to accounts -> build the
journal entry -> post it to the ERP under its external id -> confirm the ERP holds it.
Every step is idempotent: re-running one after success changes nothing.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction

from connectors.base import BillingInvoice, PermanentError, WebhookEnvelope
from connectors.stripe import mapping as stripe_mapping
from sync.accounting.entries import (
    InvoicePlan,
    MissingRoundingAccount,
    RevenuePart,
    TaxPart,
    UnbalancedPlan,
    build_invoice_lines,
)
from sync.errors import DataDefect, DependencyPending
from sync.journeys import JourneyType, StepContext, StepDef
from sync.journeys.common import POSTING_STEPS, journeys_set_entity
from sync.models import (
    EntityAccounts,
    ExceptionCase,
    FxRate,
    Invoice,
    InvoiceLine,
    JournalEntry,
    LegalEntity,
    PostingRule,
    ProductMapping,
    RevenueType,
    TaxMapping,
)
from sync.services.customers import customer_links_for, entity_require_subsidiary
from sync.services.ledger import EntrySpec, journal_entries_create, journal_entry_check
from sync.services.memo import memoized
from sync.services.schedules import InvoiceSchedules, schedules_create_for_invoices

Cat = ExceptionCase.Category


def _invoice_from_event(ctx: StepContext) -> BillingInvoice:
    payload = ctx.journey.source_event.payload
    try:
        return stripe_mapping.parse_invoice(payload["data"]["object"])
    except PermanentError as exc:
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"The billing invoice could not be read: {exc.message}",
            context={"event_id": ctx.journey.source_event.source_event_id},
        ) from exc


def validate(ctx: StepContext) -> dict[str, Any]:
    """Parse the invoice, check that it adds up, and store it."""
    outcome = validate_many([ctx])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _checked_invoice(ctx: StepContext) -> BillingInvoice:
    inv = _invoice_from_event(ctx)
    if inv.status not in {"open", "paid", "uncollectible"}:
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"Invoice {inv.number or inv.source_id} is '{inv.status}', not finalized; "
            "only finalized invoices are posted.",
            context={"invoice": inv.source_id, "status": inv.status},
        )
    lines_total = sum(ln.net_minor + ln.tax_minor for ln in inv.lines)
    if lines_total != inv.total_minor:
        raise DataDefect(
            Cat.AMOUNT_MISMATCH,
            f"Invoice {inv.number or inv.source_id} lines add up to {lines_total} but its total "
            f"is {inv.total_minor} ({inv.currency} minor units); check discounts or credits.",
            context={
                "invoice": inv.source_id,
                "lines_total": lines_total,
                "total": inv.total_minor,
            },
        )
    return inv


_INVOICE_FIELDS = (
    "number",
    "customer_ref",
    "subscription_ref",
    "currency",
    "status",
    "issued_at",
    "subtotal_minor",
    "tax_minor",
    "total_minor",
    "source_updated_at",
)


def validate_many(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``validate`` for many journeys: each invoice parsed and checked on its own (a defect is
    that journey's outcome), then in one transaction the invoices we hold read in one query,
    updated in one and the new ones inserted in one, their old lines deleted and all lines
    inserted in one each. The only implementation: one journey's step is this with one
    context."""
    outcomes: list[dict[str, Any] | Exception] = [{} for _ in ctxs]
    checked: dict[int, BillingInvoice] = {}
    for i, ctx in enumerate(ctxs):
        try:
            checked[i] = _checked_invoice(ctx)
        except Exception as exc:
            outcomes[i] = exc
    if not checked:
        return outcomes
    with transaction.atomic():
        held = {
            row.source_id: row
            for row in Invoice.objects.select_for_update().filter(
                source_system="stripe", source_id__in={inv.source_id for inv in checked.values()}
            )
        }
        existing = set(held)
        rows: dict[int, Invoice] = {}
        for i, inv in checked.items():
            row = held.get(inv.source_id)
            if row is None:
                row = held[inv.source_id] = Invoice(source_system="stripe", source_id=inv.source_id)
            _invoice_fill(row, inv, ctxs[i].journey.business_at)
            rows[i] = row
        updated = [row for source_id, row in held.items() if source_id in existing]
        if updated:
            Invoice.objects.bulk_update(updated, list(_INVOICE_FIELDS))
            InvoiceLine.objects.filter(invoice__in=updated).delete()
        Invoice.objects.bulk_create(
            [row for source_id, row in held.items() if source_id not in existing]
        )
        InvoiceLine.objects.bulk_create(
            InvoiceLine(
                invoice=rows[i],
                position=n,
                source_id=ln.source_id,
                description=ln.description[:500],
                price_ref=ln.price_ref,
                product_ref=ln.product_ref,
                quantity=ln.quantity,
                amount_minor=ln.amount_minor,
                net_minor=ln.net_minor,
                tax_minor=ln.tax_minor,
                period_start=ln.period_start,
                period_end=ln.period_end,
                proration=ln.proration,
                taxes=[
                    {
                        "rate_ref": t.rate_ref,
                        "amount_minor": t.amount_minor,
                        "inclusive": t.inclusive,
                        "jurisdiction": t.jurisdiction,
                        "percentage": t.percentage,
                    }
                    for t in ln.taxes
                ],
            )
            for i, inv in _last_per_invoice(checked).items()
            for n, ln in enumerate(inv.lines, start=1)
        )
    for i, inv in checked.items():
        issued_at = inv.finalized_at or inv.created
        outcomes[i] = {
            "invoice_id": rows[i].pk,
            "invoice_number": inv.number,
            "invoice_date": issued_at.date().isoformat(),
            "currency": inv.currency,
            "total_minor": inv.total_minor,
            "customer_ref": inv.customer_ref,
        }
    return outcomes


def _invoice_fill(row: Invoice, inv: BillingInvoice, business_at: dt.datetime) -> None:
    row.number, row.customer_ref, row.subscription_ref = (
        inv.number,
        inv.customer_ref,
        inv.subscription_ref,
    )
    row.currency, row.status = inv.currency, inv.status
    row.issued_at = inv.finalized_at or inv.created
    row.subtotal_minor, row.tax_minor, row.total_minor = (
        inv.subtotal_minor,
        inv.tax_minor,
        inv.total_minor,
    )
    row.source_updated_at = business_at


def _last_per_invoice(checked: dict[int, BillingInvoice]) -> dict[int, BillingInvoice]:
    """One parsed version per invoice (the last, as storing them one by one would leave)."""
    last: dict[str, int] = {}
    for i, inv in checked.items():
        last[inv.source_id] = i
    return {i: checked[i] for i in last.values()}


def link_customer(ctx: StepContext) -> dict[str, Any]:
    """Find the customer's legal entity through its CustomerLink, creating the link from the
    customer's ``legal_entity`` metadata when that names a known entity."""
    outcome = link_customers([ctx])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def link_customers(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``link_customer`` for many journeys: the invoices read in one query, the customers'
    links found or made in a few for all (``customer_links_for``), the journeys' entity set in
    one update per entity. The only implementation."""
    outcomes: list[dict[str, Any] | Exception] = [{} for _ in ctxs]
    invoices = Invoice.objects.order_by().in_bulk([ctx.data["invoice_id"] for ctx in ctxs])
    wanted: dict[str, tuple[dict[str, Any], str]] = {}
    for ctx in ctxs:
        invoice = invoices.get(ctx.data["invoice_id"])
        if invoice is not None:
            wanted.setdefault(
                invoice.customer_ref,
                (
                    ctx.journey.source_event.payload["data"]["object"].get("metadata", {}),
                    str(ctx.journey.correlation_id),
                ),
            )

    links, known = customer_links_for(wanted)
    assigned = []
    for i, ctx in enumerate(ctxs):
        try:
            invoice = invoices[ctx.data["invoice_id"]]
            link = links.get(invoice.customer_ref) or _not_linked(invoice, known)
            if isinstance(link, Exception):
                raise link
            entity = link.legal_entity
            entity_require_subsidiary(entity)
        except Exception as exc:
            outcomes[i] = exc
            continue
        assigned.append((ctx, entity))
        outcomes[i] = {
            "legal_entity_id": entity.pk,
            "legal_entity": entity.code,
            "erp_customer_id": link.erp_customer_id,
        }
    journeys_set_entity(assigned)
    return outcomes


def _not_linked(invoice: Invoice, known: set[str]) -> Exception:
    # Stripe delivers in no guaranteed order: the customer event may still be coming.
    return (DataDefect if invoice.customer_ref in known else DependencyPending)(
        Cat.CUSTOMER_NOT_LINKED,
        f"Customer {invoice.customer_ref} on invoice {invoice} is not linked to a legal "
        "entity. Add a customer link, then replay.",
        context={"customer": invoice.customer_ref, "invoice": invoice.source_id},
    )


def _effective_in(versions: list, day: dt.date):
    """The version in effect on ``day`` of ``versions`` (newest ``effective_from`` first)."""
    return next((v for v in versions if v.effective_from <= day), None)


def _product_mapping(line: InvoiceLine, day: dt.date) -> ProductMapping | None:
    for ref in (line.price_ref, line.product_ref):
        if ref:
            versions = memoized(
                ("product_mappings", ref),
                lambda ref=ref: list(
                    ProductMapping.objects.filter(source_system="stripe", source_ref=ref).order_by(
                        "-effective_from"
                    )
                ),
            )
            pm = _effective_in(versions, day)
            if pm:
                return pm
    return None


def _posting_rule(
    entity: LegalEntity, revenue_type: str, family: str, day: dt.date
) -> PostingRule | None:
    """The rule for the family if there is one in effect, else the entity's default rule."""
    versions = memoized(
        ("posting_rules", entity.pk, revenue_type),
        lambda: list(
            PostingRule.objects.filter(legal_entity=entity, revenue_type=revenue_type).order_by(
                "-effective_from"
            )
        ),
    )
    if family:
        specific = _effective_in([r for r in versions if r.product_family == family], day)
        if specific:
            return specific
    return _effective_in([r for r in versions if r.product_family == ""], day)


def _entity(pk: int) -> LegalEntity:
    return memoized(("legal_entity", pk), lambda: LegalEntity.objects.get(pk=pk))


def _tax_mapping(entity: LegalEntity, rate_ref: str) -> TaxMapping | None:
    return memoized(
        ("tax_mapping", entity.pk, rate_ref),
        lambda: TaxMapping.objects.filter(
            legal_entity=entity, source_system="stripe", source_rate_ref=rate_ref
        ).first(),
    )


def _fx_rate(currency: str, functional: str, day: dt.date) -> Decimal | None:
    return memoized(
        ("fx_rate", currency, functional, day), lambda: _fx_rate_read(currency, functional, day)
    )


def _fx_rate_read(currency: str, functional: str, day: dt.date) -> Decimal | None:
    direct = FxRate.objects.filter(
        rate_date=day, base_currency=currency, quote_currency=functional
    ).first()
    if direct:
        return direct.rate
    inverse = FxRate.objects.filter(
        rate_date=day, base_currency=functional, quote_currency=currency
    ).first()
    return (Decimal(1) / inverse.rate) if inverse else None


def map_accounts(ctx: StepContext) -> dict[str, Any]:
    """Map every line's product and every tax to the entity's accounts, or say all that is
    missing at once."""
    return _map_accounts(ctx, Invoice.objects.get(pk=ctx.data["invoice_id"]))


def map_accounts_many(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``map_accounts`` for many journeys, the invoices and their lines read in two queries
    (the mappings once per batch, through the reference memo)."""
    invoices = (
        Invoice.objects.prefetch_related("lines")
        .order_by()
        .in_bulk([ctx.data["invoice_id"] for ctx in ctxs])
    )
    outcomes: list[dict[str, Any] | Exception] = []
    for ctx in ctxs:
        try:
            outcomes.append(_map_accounts(ctx, invoices[ctx.data["invoice_id"]]))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


def _map_accounts(ctx: StepContext, invoice: Invoice) -> dict[str, Any]:
    entity = _entity(ctx.data["legal_entity_id"])
    day = dt.date.fromisoformat(ctx.data["invoice_date"])
    missing: dict[str, list[str]] = {}
    revenue: list[dict[str, Any]] = []
    taxes: dict[str, dict[str, Any]] = {}
    rule_ids: set[int] = set()
    ar_rule: PostingRule | None = None
    for line in invoice.lines.all():
        pm = _product_mapping(line, day)
        if pm is None:
            missing.setdefault(Cat.UNMAPPED_PRODUCT, []).append(
                line.price_ref or line.product_ref or line.source_id
            )
            continue
        rule = _posting_rule(entity, pm.revenue_type, pm.product_family, day)
        if rule is None:
            missing.setdefault(Cat.MISSING_POSTING_RULE, []).append(
                f"{pm.get_revenue_type_display()} / {pm.product_family or 'any family'}"
            )
            continue
        rule_ids.add(rule.pk)
        ar_rule = ar_rule or rule
        account = (
            rule.deferred_revenue_account_id
            if pm.revenue_type in (RevenueType.RATABLE, RevenueType.ON_DELIVERY)
            else rule.revenue_account_id
        )
        revenue.append(
            {
                "invoice_line_id": line.pk,
                "net_minor": line.net_minor,
                "account_id": account,
                "deferred_account_id": rule.deferred_revenue_account_id,
                "revenue_account_id": rule.revenue_account_id,
                "memo": line.description[:200],
                "product_code": pm.product_code,
                "product_mapping_id": pm.pk,
                "revenue_type": pm.revenue_type,
            }
        )
        for t in line.taxes:
            tm = _tax_mapping(entity, t["rate_ref"])
            if tm is None:
                known = " ".join(
                    x
                    for x in (t.get("jurisdiction"), t.get("percentage") and f"{t['percentage']}%")
                    if x
                )
                missing.setdefault(Cat.INVALID_TAX_JURISDICTION, []).append(
                    f"{t['rate_ref']} ({known})" if known else t["rate_ref"]
                )
                continue
            agg = taxes.setdefault(
                tm.erp_tax_code,
                {
                    "amount_minor": 0,
                    "account_id": tm.tax_account_id,
                    "tax_code": tm.erp_tax_code,
                    "memo": f"Tax {tm.erp_tax_code}",
                    "tax_mapping_id": tm.pk,
                },
            )
            agg["amount_minor"] += t["amount_minor"]
    if missing:
        order = [Cat.UNMAPPED_PRODUCT, Cat.INVALID_TAX_JURISDICTION, Cat.MISSING_POSTING_RULE]
        category = next(c for c in order if c in missing)
        parts = []
        if Cat.UNMAPPED_PRODUCT in missing:
            parts.append(
                "no product mapping for " + ", ".join(sorted(set(missing[Cat.UNMAPPED_PRODUCT])))
            )
        if Cat.INVALID_TAX_JURISDICTION in missing:
            parts.append(
                f"no tax mapping in {entity.code} for "
                + ", ".join(sorted(set(missing[Cat.INVALID_TAX_JURISDICTION])))
            )
        if Cat.MISSING_POSTING_RULE in missing:
            parts.append(
                f"no posting rule in {entity.code} for "
                + ", ".join(sorted(set(missing[Cat.MISSING_POSTING_RULE])))
            )
        raise DataDefect(
            category,
            f"Invoice {invoice} cannot be posted: "
            + "; ".join(parts)
            + ". Add the mapping, then replay.",
            context={
                "invoice": invoice.source_id,
                "entity": entity.code,
                "missing": {k: sorted(set(v)) for k, v in missing.items()},
            },
        )
    if ar_rule is None:
        raise DataDefect(
            Cat.INVALID_PAYLOAD,
            f"Invoice {invoice} has no lines to post.",
            context={"invoice": invoice.source_id},
        )
    fx_rate = None
    if invoice.currency != entity.functional_currency:
        fx_rate = _fx_rate(invoice.currency, entity.functional_currency, day)
        if fx_rate is None:
            raise DataDefect(
                Cat.MISSING_FX_RATE,
                f"No {invoice.currency}/{entity.functional_currency} rate for {day}: invoice "
                f"{invoice} cannot be converted to {entity.code}'s functional currency. Add the "
                "rate, then replay.",
                context={
                    "pair": f"{invoice.currency}/{entity.functional_currency}",
                    "date": day.isoformat(),
                },
            )
    return {
        "plan": {
            "ar_account_id": ar_rule.ar_account_id,
            "rounding_account_id": ar_rule.fx_rounding_account_id,
            "fx_rate": str(fx_rate) if fx_rate is not None else None,
            "revenue": revenue,
            "taxes": list(taxes.values()),
            "rule_ids": sorted(rule_ids),
        }
    }


def entity_accounts(entity: LegalEntity) -> EntityAccounts | None:
    """The entity's accounts row (read once per batch)."""
    return memoized(
        ("entity_accounts", entity.pk),
        lambda: EntityAccounts.objects.filter(legal_entity=entity).first(),
    )


def external_id_for(journey) -> str:
    return f"RCT-{journey.source_system.upper()}-{journey.business_key}"


def build_entry(ctx: StepContext) -> dict[str, Any]:
    """Create the draft journal entry once; a re-run finds the existing one."""
    outcome = build_entries([ctx])[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def build_entries(ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
    """``build_entry`` for many journeys: the entries that already exist and the invoices read
    in one query each; each entry planned on its own (a defect is that journey's outcome);
    then in one transaction one insert of the entries, one of their lines, one of the revenue
    schedules and one of the schedule lines. The only implementation: one journey's step is
    this with one context."""
    outcomes: list[dict[str, Any] | Exception] = [{} for _ in ctxs]
    external = [external_id_for(ctx.journey) for ctx in ctxs]
    existing = dict(
        JournalEntry.objects.filter(external_id__in=external).values_list("external_id", "pk")
    )
    invoices = Invoice.objects.order_by().in_bulk(
        [
            ctx.data["invoice_id"]
            for ctx, ext in zip(ctxs, external, strict=True)
            if ext not in existing
        ]
    )
    planned: list[tuple[int, EntrySpec, dict[str, Any]]] = []
    for i, ctx in enumerate(ctxs):
        if external[i] in existing:
            outcomes[i] = {"entry_id": existing[external[i]], "external_id": external[i]}
            continue
        try:
            spec, schedules = _plan_entry(ctx, invoices[ctx.data["invoice_id"]], external[i])
            journal_entry_check(spec)
        except Exception as exc:
            outcomes[i] = exc
            continue
        planned.append((i, spec, schedules))
    if not planned:
        return outcomes
    with transaction.atomic():
        entries = journal_entries_create([spec for _, spec, _ in planned])
        schedules_create_for_invoices(
            [
                InvoiceSchedules(entry=entry, **schedules)
                for entry, (_, _, schedules) in zip(entries, planned, strict=True)
            ]
        )
    for entry, (i, _, _) in zip(entries, planned, strict=True):
        outcomes[i] = {"entry_id": entry.pk, "external_id": external[i]}
    return outcomes


def _plan_entry(
    ctx: StepContext, invoice: Invoice, external_id: str
) -> tuple[EntrySpec, dict[str, Any]]:
    """The entry to create for the invoice and the schedules to make with it, or the data
    defect that stops the journey."""
    entity = _entity(ctx.data["legal_entity_id"])
    plan = ctx.data["plan"]
    fx_rate = Decimal(plan["fx_rate"]) if plan["fx_rate"] else None
    customer_ref = ctx.data.get("erp_customer_id") or invoice.customer_ref
    credit_account_id = None
    if invoice.total_minor < 0:  # a net credit (downgrade proration) is owed to the customer
        accounts = entity_accounts(entity)
        if accounts is None:
            raise DataDefect(
                Cat.MISSING_POSTING_RULE,
                f"Invoice {invoice} is a net credit of {-invoice.total_minor} "
                f"({invoice.currency} minor units) owed to the customer, but {entity.code} has "
                "no customer credit account. Set the entity's accounts, then replay.",
                context={"entity": entity.code, "invoice": invoice.source_id},
            )
        credit_account_id = accounts.customer_credit_account_id
    try:
        drafts = build_invoice_lines(
            InvoicePlan(
                total_minor=invoice.total_minor,
                currency=invoice.currency,
                functional_currency=entity.functional_currency,
                fx_rate=fx_rate,
                ar_account_id=plan["ar_account_id"],
                rounding_account_id=plan["rounding_account_id"],
                customer_ref=customer_ref,
                customer_credit_account_id=credit_account_id,
                memo=f"Invoice {invoice}",
                revenue=tuple(
                    RevenuePart(r["net_minor"], r["account_id"], r["memo"], r["product_code"])
                    for r in plan["revenue"]
                ),
                taxes=tuple(
                    TaxPart(t["amount_minor"], t["account_id"], t["tax_code"], t["memo"])
                    for t in plan["taxes"]
                ),
            )
        )
    except UnbalancedPlan as exc:
        raise DataDefect(Cat.AMOUNT_MISMATCH, f"Invoice {invoice}: {exc}.") from exc
    except MissingRoundingAccount as exc:
        raise DataDefect(
            Cat.MISSING_POSTING_RULE,
            f"Invoice {invoice}: {exc}; set an FX rounding account on {entity.code}'s "
            "posting rule.",
        ) from exc
    posting_date = dt.date.fromisoformat(ctx.data["invoice_date"])
    spec = EntrySpec(
        entity=entity,
        kind=JournalEntry.Kind.INVOICE,
        journey=ctx.journey,
        posting_date=posting_date,
        currency=invoice.currency,
        fx_rate=fx_rate,
        memo=f"Invoice {invoice} ({invoice.customer_ref})",
        external_id=external_id,
        document_ref=invoice.source_id,
        lines=drafts,
        rule_versions={
            "posting_rules": plan["rule_ids"],
            "product_mappings": sorted({r["product_mapping_id"] for r in plan["revenue"]}),
            "tax_mappings": sorted({t["tax_mapping_id"] for t in plan["taxes"]}),
        },
    )
    schedules = {
        "entity": entity,
        "revenue_parts": plan["revenue"],
        "invoice_day": posting_date,
        "currency": invoice.currency,
        "customer_ref": invoice.customer_ref,
        "fx_rate": fx_rate,
    }
    return spec, schedules


def _business_key(env: WebhookEnvelope) -> str:
    return env.object_id


def _aggregate_key(env: WebhookEnvelope) -> str:
    return f"stripe:{env.object_id}"


JOURNEY = JourneyType(
    name="invoice_to_ledger",
    source_system="stripe",
    event_types=frozenset({"invoice.finalized"}),
    steps=(
        StepDef(
            "validate",
            validate,
            "Read the invoice and check it adds up",
            batch=validate_many,
        ),
        StepDef(
            "link_customer",
            link_customer,
            "Find the customer's legal entity",
            batch=link_customers,
        ),
        StepDef(
            "map_accounts",
            map_accounts,
            "Map products and tax to GL accounts",
            batch=map_accounts_many,
        ),
        StepDef(
            "build_entry",
            build_entry,
            "Build the balanced entry and revenue schedules",
            batch=build_entries,
        ),
        *POSTING_STEPS,
    ),
    business_key=_business_key,
    aggregate_key=_aggregate_key,
    default_sla_minutes=60,
)
