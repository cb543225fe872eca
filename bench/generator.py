"""A deterministic, streamed quarter of Stripe traffic for the burst benchmark.

Customers are generated in cohorts of up to ``COHORT_CUSTOMERS``; each cohort's events (customer,
subscription, finalized invoices, charges with their links, refunds, credit notes, voids,
cancellations) are put in business order, then a share is moved out of order, and one delivery
in eight is a redelivery of a recent event. Only one cohort and a small ring of recent events
are held at a time, so the generator's memory does not grow with N.

Object dates (invoice periods, settlement days) lie in one calendar quarter, so the seeded FX
table covers them; each event's ``created`` (the business time the SLA timers run from) is
stamped when its cohort is built, a few seconds before it is delivered, as in a live burst.
Ids and objects depend only on the seed; the ``created`` stamps depend on the wall clock.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connectors.stripe import emulator as se

QUARTER_START = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
QUARTER_DAYS = 92
COHORT_CUSTOMERS = 100  # at most; fewer for small N, so a small run still gets the whole mix
DUPLICATE_SHARE = 1 / 8  # of deliveries
OUT_OF_ORDER_SHARE = 0.05  # of unique events
DEFECTIVE_INVOICE_SHARE = 0.016  # of invoices: about 0.5 % of events
UNMAPPED_PRICE = "price_bench_unmapped_addon"
DEFECT_CATEGORY = "unmapped_product"

# Per entity: functional currency, (invoice currency, weight), tax rates seeded by the demo.
ENTITIES = {
    "us-inc": (
        "usd",
        (("usd", 0.8), ("eur", 0.1), ("gbp", 0.1)),
        (("txr_us_ca_725", "7.25"), ("txr_us_ny_8875", "8.875"), None),
    ),
    "eu-bv": (
        "eur",
        (("eur", 0.85), ("usd", 0.1), ("gbp", 0.05)),
        (("txr_nl_vat_21", "21"), ("txr_de_vat_19", "19")),
    ),
}
# Stripe's exchange_rate (charge currency -> settlement currency) and the FX table's rate.
RATES = {
    ("eur", "usd"): "1.0850",
    ("gbp", "usd"): "1.2700",
    ("usd", "eur"): "0.9200",
    ("gbp", "eur"): "1.1700",
}
PLANS = {  # price -> (amount in minor units, description)
    "price_platform_monthly": (1_500_00, "Platform (monthly)"),
    "price_platform_annual": (18_000_00, "Platform (annual)"),
    "price_seats": (40_00, "Additional seats"),
}
DAY = 86_400


@dataclass
class Expected:
    """What the delivered stream should produce, counted as it is generated."""

    deliveries: int = 0
    unique: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    by_type: Counter = field(default_factory=Counter)
    customers: int = 0
    clean_invoices: int = 0
    charges: int = 0
    refunds: int = 0
    credit_notes: int = 0
    defective_invoices: list[str] = field(default_factory=list)
    voided_invoices: list[str] = field(default_factory=list)

    @property
    def defects(self) -> int:
        return len(self.defective_invoices)

    @property
    def journal_entries(self) -> int:
        """Entries the ERP should hold if every voided invoice posted before its void ran
        (invoice + reversal); a void that finds its invoice unposted cancels it: two fewer."""
        return (
            self.clean_invoices
            + self.charges
            + self.refunds
            + self.credit_notes
            + len(self.voided_invoices)
        )


@dataclass
class _Item:
    event: dict[str, Any]
    at: int  # business time of the object (unix seconds), for ordering
    seq: int
    kind: str = ""  # "invoice", "charge", "link", "customer" for out-of-order moves
    ref: str = ""  # invoice id for invoices/charges/links, customer id for customers
    clean_paid: bool = False


class _Cohort:
    def __init__(self, rng: random.Random, defects_owed: list[float]) -> None:
        self.rng = rng
        self.defects_owed = defects_owed  # shared across cohorts: evenly spaced defects
        self.items: list[_Item] = []
        self._seq = 0

    def add(self, event_type: str, obj: dict[str, Any], at: int, **kw: Any) -> _Item:
        self._seq += 1
        event = se.make_event(event_type, obj, created=at, rng=self.rng)
        item = _Item(event=event, at=at, seq=self._seq, **kw)
        self.items.append(item)
        return item


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    r, acc = rng.random(), 0.0
    for value, weight in weighted:
        acc += weight
        if r < acc:
            return value
    return weighted[-1][0]


def _customer_lifecycle(c: _Cohort, number: int) -> None:
    rng = c.rng
    q0 = int(QUARTER_START.timestamp())
    q_end = q0 + QUARTER_DAYS * DAY
    entity = "us-inc" if rng.random() < 0.7 else "eu-bv"
    functional, currencies, taxes = ENTITIES[entity]
    currency = _pick(rng, currencies)
    tax = rng.choice(taxes)
    customer_id = f"cus_bench{number:09d}"
    t = q0 + rng.randrange(20 * DAY)
    customer = se.make_customer(
        customer_id=customer_id,
        name=f"Bench Customer {number}",
        email=f"ap{number}@bench.example",
        country="US" if entity == "us-inc" else "NL",
        currency=currency,
        metadata={"legal_entity": entity},
        created=t,
        rng=rng,
    )
    c.add("customer.created", customer, t, kind="customer", ref=customer_id)
    annual = rng.random() < 0.25
    price = "price_platform_annual" if annual else "price_platform_monthly"
    seats = 1 + rng.randrange(30)
    sub = se.make_subscription(
        customer_id,
        [
            se.ItemSpec(price_id=price, product_id="prod_platform", unit_amount=PLANS[price][0]),
            se.ItemSpec(
                price_id="price_seats",
                product_id="prod_seats",
                quantity=seats,
                unit_amount=PLANS["price_seats"][0],
            ),
        ],
        currency=currency,
        created=t + 60,
        rng=rng,
    )
    c.add("customer.subscription.created", sub, t + 60)
    taxspec = (se.TaxSpec(rate_id=tax[0], percentage=tax[1]),) if tax else ()
    months = 1 if annual else 3
    for m in range(months):
        start = t + 120 + m * 30 * DAY
        end = start + (365 if annual else 30) * DAY
        lines = [
            se.LineSpec(
                amount_minor=PLANS[price][0],
                price_id=price,
                product_id="prod_platform",
                description=PLANS[price][1],
                period_start=start,
                period_end=end,
                taxes=taxspec,
            ),
            se.LineSpec(
                amount_minor=PLANS["price_seats"][0] * seats,
                quantity=seats,
                price_id="price_seats",
                product_id="prod_seats",
                description=f"{seats} additional seats",
                period_start=start,
                period_end=end,
                taxes=taxspec,
            ),
        ]
        if rng.random() < 0.2:  # usage billed in arrears: recognized at once
            lines.append(
                se.LineSpec(
                    amount_minor=rng.randrange(10_00, 900_00),
                    price_id="price_api_overage",
                    product_id="prod_api",
                    description="API calls over plan",
                    taxes=taxspec,
                )
            )
        c.defects_owed[0] += DEFECTIVE_INVOICE_SHARE
        defective = c.defects_owed[0] >= 1
        if defective:
            c.defects_owed[0] -= 1  # an add-on price nobody mapped
            lines.append(
                se.LineSpec(
                    amount_minor=90_00,
                    price_id=UNMAPPED_PRICE,
                    product_id="prod_bench_addon",
                    description="Bench add-on (unmapped)",
                    taxes=taxspec,
                )
            )
        invoice = se.make_invoice(
            customer_id,
            lines,
            currency=currency,
            subscription_id=sub["id"],
            number=f"B{number:09d}-{m + 1}",
            created=start,
            finalized_at=start + 60,
            billing_reason="subscription_create" if m == 0 else "subscription_cycle",
            rng=rng,
        )
        inv_at = start + 60
        c.add("invoice.finalized", invoice, inv_at, kind="invoice", ref=invoice["id"])
        if defective:
            continue  # never paid, credited or voided: it stays in the exception queue
        _invoice_outcome(c, invoice, inv_at, functional)
    if rng.random() < 0.01:
        ended = q_end - DAY
        cancelled = copy.deepcopy(sub)
        cancelled.update(status="canceled", canceled_at=ended, ended_at=ended)
        c.add("customer.subscription.deleted", cancelled, ended)


def _invoice_outcome(c: _Cohort, invoice: dict[str, Any], at: int, functional: str) -> None:
    rng = c.rng
    r = rng.random()
    if r < 0.02:  # voided while open
        void_at = at + rng.randrange(5 * DAY, 15 * DAY)
        voided = copy.deepcopy(invoice)
        voided["status"] = "void"
        voided["auto_advance"] = False
        voided["status_transitions"]["voided_at"] = void_at
        c.add("invoice.voided", voided, void_at, ref=invoice["id"])
        return
    if r < 0.10:  # left open; some get a credit note before payment
        if rng.random() < 0.3:
            line = invoice["lines"]["data"][0]
            note = se.make_credit_note(
                invoice,
                [max(1, line["amount"] // 4)],
                timing="pre_payment",
                reason="product_unsatisfactory",
                created=at + rng.randrange(3 * DAY, 10 * DAY),
                rng=rng,
            )
            c.add("credit_note.created", note, note["created"])
        return
    currency = invoice["currency"]
    paid_at = at + rng.randrange(60, 3 * DAY)
    via_link = rng.random() < 0.5
    kwargs: dict[str, Any] = {}
    if currency != functional:
        kwargs = {
            "exchange_rate": RATES[(currency, functional)],
            "settlement_currency": functional,
        }
    charge = se.make_charge(
        invoice,
        created=paid_at,
        metadata=None if via_link else {"invoice_id": invoice["id"]},
        rng=rng,
        **kwargs,
    )
    if via_link:  # the basil way: an invoice_payment names the payment intent
        link = se.make_invoice_payment(invoice, charge, created=paid_at, rng=rng)
        c.add("invoice_payment.paid", link, paid_at, kind="link", ref=invoice["id"])
    c.add("charge.succeeded", charge, paid_at, kind="charge", ref=invoice["id"], clean_paid=True)
    r = rng.random()
    if r < 0.04:
        # A refund issued with a credit note that pays it out (how an invoice is refunded
        # in Stripe's dashboard): the note is delivered first, the refund a second later.
        # (A refund no credit note covers waits for one: see bench/README.md.)
        line = invoice["lines"]["data"][0]
        refund_at = paid_at + rng.randrange(5 * DAY, 20 * DAY)
        draft = se.make_credit_note(
            invoice, [max(1, line["amount"] // 3)], timing="post_payment", rng=rng
        )
        refund = se.make_refund(charge, draft["total"], created=refund_at, rng=rng)
        note = se.make_credit_note(
            invoice,
            [max(1, line["amount"] // 3)],
            timing="post_payment",
            refund=refund,
            reason="product_unsatisfactory",
            credit_note_id=draft["id"],
            created=refund_at - 1,
            rng=rng,
        )
        c.add("credit_note.created", note, refund_at - 1)
        c.add("refund.created", refund, refund_at)
    elif r < 0.07:
        line = invoice["lines"]["data"][0]
        note = se.make_credit_note(
            invoice,
            [max(1, line["amount"] // 5)],
            timing="post_payment",
            reason="order_change",
            created=paid_at + rng.randrange(5 * DAY, 20 * DAY),
            rng=rng,
        )
        c.add("credit_note.created", note, note["created"])


def _reorder(items: list[_Item], moves: int, rng: random.Random) -> tuple[list[_Item], int]:
    """Deliver ``moves`` events out of order: a charge (with its link) just before its
    invoice, or a customer just after its first invoice."""
    invoices = {it.ref: it for it in items if it.kind == "invoice"}
    first_invoice: dict[str, _Item] = {}
    for it in items:
        if it.kind == "invoice":
            first_invoice.setdefault(it.event["data"]["object"]["customer"], it)
    candidates = [
        it
        for it in items
        if (it.kind == "charge" and it.ref in invoices)
        or (it.kind == "customer" and it.ref in first_invoice)
    ]
    chosen = rng.sample(candidates, min(moves, len(candidates)))
    before: dict[int, list[_Item]] = {}
    after: dict[int, list[_Item]] = {}
    moved: set[int] = set()
    links = {it.ref: it for it in items if it.kind == "link"}
    for it in chosen:
        if it.kind == "charge":
            group = [links[it.ref], it] if it.ref in links else [it]
            before.setdefault(invoices[it.ref].seq, []).extend(group)
            moved.update(g.seq for g in group)
        else:
            after.setdefault(first_invoice[it.ref].seq, []).append(it)
            moved.add(it.seq)
    out: list[_Item] = []
    for it in items:
        if it.seq in moved:
            continue
        out.extend(before.get(it.seq, ()))
        out.append(it)
        out.extend(after.get(it.seq, ()))
    return out, len(chosen)


def _count(expected: Expected, item: _Item) -> None:
    event_type = item.event["type"]
    expected.by_type[event_type] += 1
    obj = item.event["data"]["object"]
    if event_type == "customer.created":
        expected.customers += 1
    elif event_type == "invoice.finalized":
        prices = {ln["pricing"]["price_details"]["price"] for ln in obj["lines"]["data"]}
        if UNMAPPED_PRICE in prices:
            expected.defective_invoices.append(obj["id"])
        else:
            expected.clean_invoices += 1
    elif event_type == "charge.succeeded":
        expected.charges += 1
    elif event_type == "refund.created":
        expected.refunds += 1
    elif event_type == "credit_note.created":
        expected.credit_notes += 1
    elif event_type == "invoice.voided":
        expected.voided_invoices.append(obj["id"])


def deliveries(
    total: int,
    *,
    seed: int = 2026,
    expected: Expected | None = None,
    clock: Callable[[], float] = time.time,
) -> Iterator[dict]:
    """Yield exactly ``total`` Stripe events (dicts) in delivery order, counting what they
    should produce into ``expected`` as they are yielded. ``clock`` is read once per cohort
    for the ``created`` stamps (the bench's spool passes one that numbers the cohorts)."""
    expected = expected if expected is not None else Expected()
    rng = random.Random(seed)
    dup_total = int(total * DUPLICATE_SHARE)
    unique_total = total - dup_total
    ring: deque[dict] = deque(maxlen=512)
    customer_number = 0
    moves_owed = 0.0
    defects_owed = [0.5]  # rounded, not floored: a small run still gets its defect
    cohort_size = min(COHORT_CUSTOMERS, max(5, total // 200))
    while expected.unique < unique_total:
        cohort = _Cohort(rng, defects_owed)
        for _ in range(cohort_size):
            customer_number += 1
            _customer_lifecycle(cohort, customer_number)
        items = sorted(cohort.items, key=lambda it: (it.at, it.seq))
        del items[unique_total - expected.unique :]  # a prefix in business order
        now = int(clock())
        for i, it in enumerate(items):  # business time: spread over the last 10 s, in order
            it.event["created"] = now - 10 + (10 * i) // max(1, len(items))
        moves_owed += OUT_OF_ORDER_SHARE * len(items)
        items, moved = _reorder(items, int(moves_owed), rng)
        moves_owed -= moved
        expected.out_of_order += moved
        for it in items:
            expected.unique += 1
            expected.deliveries += 1
            _count(expected, it)
            ring.append(it.event)
            yield it.event
            # duplicates evenly spread: after unique i, floor(i*D/U) redeliveries so far
            owed = expected.unique * dup_total // unique_total - expected.duplicates
            for _ in range(owed):
                expected.duplicates += 1
                expected.deliveries += 1
                yield rng.choice(ring)
