"""A realistic month of Stripe traffic for the demo: customers, subscriptions and finalized
invoices in the current API shape, deterministic for a given seed.

Most invoices map cleanly; a few are built to fail the way real data fails, so the exception
queue has real work in it: an add-on price nobody mapped, a customer in an entity that is not
set up, a French VAT rate with no tax mapping, and a customer with no entity at all.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from connectors.stripe import emulator as se

MONTH_START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class DemoCustomer:
    id: str
    name: str
    country: str
    currency: str
    entity: str  # legal_entity metadata ('' = none)
    tax_rate: str | None
    tax_percent: str


CUSTOMERS = [
    DemoCustomer(
        "cus_demo_northwind", "Northwind Traders", "US", "usd", "us-inc", "txr_us_ca_725", "7.25"
    ),
    DemoCustomer(
        "cus_demo_contoso", "Contoso Ltd", "US", "usd", "us-inc", "txr_us_ny_8875", "8.875"
    ),
    DemoCustomer("cus_demo_fabrikam", "Fabrikam Inc", "US", "usd", "us-inc", None, "0"),
    DemoCustomer(
        "cus_demo_tailspin", "Tailspin Toys", "US", "usd", "us-inc", "txr_us_ca_725", "7.25"
    ),
    DemoCustomer("cus_demo_wingtip", "Wingtip Partners", "US", "usd", "us-inc", None, "0"),
    DemoCustomer("cus_demo_adatum", "Adatum B.V.", "NL", "eur", "eu-bv", "txr_nl_vat_21", "21"),
    DemoCustomer("cus_demo_litware", "Litware GmbH", "DE", "eur", "eu-bv", "txr_de_vat_19", "19"),
    DemoCustomer("cus_demo_proseware", "Proseware SE", "NL", "eur", "eu-bv", "txr_nl_vat_21", "21"),
    # Built to fail:
    DemoCustomer(
        "cus_demo_margie", "Margie's Travel SAS", "FR", "eur", "eu-bv", "txr_fr_vat_20", "20"
    ),  # tax rate not mapped
    DemoCustomer(
        "cus_demo_blueyonder", "Blue Yonder Ltd", "GB", "gbp", "uk-ltd", None, "0"
    ),  # entity not set up
    DemoCustomer(
        "cus_demo_orphan", "Graphic Design Institute", "US", "usd", "", None, "0"
    ),  # no entity at all
]

PLANS = {  # price -> (monthly amount in minor units, description)
    "price_platform_monthly": (1_500_00, "Platform (monthly)"),
    "price_platform_annual": (18_000_00, "Platform (annual)"),
    "price_seats": (40_00, "Additional seats"),
}


def demo_events(seed: int = 2026) -> list[dict[str, Any]]:
    """Customer, subscription and invoice events in delivery order (a few dozen)."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    t0 = int(MONTH_START.timestamp())
    for n, c in enumerate(CUSTOMERS):
        created = t0 + n * 600
        customer = se.make_customer(
            customer_id=c.id,
            name=c.name,
            email=f"ap@{c.id.removeprefix('cus_demo_')}.example",
            country=c.country,
            currency=c.currency,
            metadata={"legal_entity": c.entity} if c.entity else {},
            created=created,
            rng=rng,
        )
        events.append(se.make_event("customer.created", customer, created=created, rng=rng))
        annual = n % 3 == 0
        price = "price_platform_annual" if annual else "price_platform_monthly"
        seats = 5 + rng.randrange(20)
        sub = se.make_subscription(
            c.id,
            [
                se.ItemSpec(
                    price_id=price,
                    product_id="prod_platform",
                    unit_amount=PLANS[price][0],
                    interval="year" if annual else "month",
                ),
                se.ItemSpec(
                    price_id="price_seats",
                    product_id="prod_seats",
                    quantity=seats,
                    unit_amount=PLANS["price_seats"][0],
                ),
            ],
            currency=c.currency,
            created=created + 60,
            rng=rng,
        )
        events.append(
            se.make_event("customer.subscription.created", sub, created=created + 60, rng=rng)
        )
        period_end = created + (365 if annual else 30) * 86400
        taxes = (se.TaxSpec(rate_id=c.tax_rate, percentage=c.tax_percent),) if c.tax_rate else ()
        lines = [
            se.LineSpec(
                amount_minor=PLANS[price][0],
                price_id=price,
                product_id="prod_platform",
                description=PLANS[price][1],
                period_start=created + 120,
                period_end=period_end,
                taxes=taxes,
            ),
            se.LineSpec(
                amount_minor=PLANS["price_seats"][0] * seats,
                quantity=seats,
                price_id="price_seats",
                product_id="prod_seats",
                description=f"{seats} additional seats",
                period_start=created + 120,
                period_end=period_end,
                taxes=taxes,
            ),
        ]
        if n in (1, 6):  # usage billed in arrears
            lines.append(
                se.LineSpec(
                    amount_minor=rng.randrange(50_00, 900_00),
                    price_id="price_api_overage",
                    product_id="prod_api",
                    description="API calls over plan",
                    taxes=taxes,
                )
            )
        if n in (2, 7):  # an add-on nobody mapped yet
            lines.append(
                se.LineSpec(
                    amount_minor=250_00,
                    price_id="price_ai_assistant",
                    product_id="prod_ai",
                    description="AI assistant add-on",
                    taxes=taxes,
                )
            )
        invoice = se.make_invoice(
            c.id,
            lines,
            currency=c.currency,
            subscription_id=sub["id"],
            number=f"DEMO-{1001 + n}",
            created=created + 120,
            finalized_at=created + 180,
            billing_reason="subscription_create",
            rng=rng,
        )
        events.append(se.make_event("invoice.finalized", invoice, created=created + 180, rng=rng))
        if not annual and c.entity in ("us-inc", "eu-bv") and n % 2 == 0:
            # a second month for the monthly plans
            t2 = created + 30 * 86400
            inv2 = se.make_invoice(
                c.id,
                [
                    se.LineSpec(
                        amount_minor=PLANS[price][0],
                        price_id=price,
                        product_id="prod_platform",
                        description=PLANS[price][1],
                        period_start=t2,
                        period_end=t2 + 30 * 86400,
                        taxes=taxes,
                    ),
                ],
                currency=c.currency,
                subscription_id=sub["id"],
                number=f"DEMO-{2001 + n}",
                created=t2,
                finalized_at=t2 + 60,
                billing_reason="subscription_cycle",
                rng=rng,
            )
            events.append(se.make_event("invoice.finalized", inv2, created=t2 + 60, rng=rng))
    return events
