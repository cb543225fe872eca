"""The Stripe emulator: realistic objects whose totals add up, and signed deliveries."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import random
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.stripe import emulator
from connectors.stripe.emulator import (
    LineSpec,
    TaxSpec,
    deliver,
    make_customer,
    make_event,
    make_invoice,
    make_invoice_pre_basil,
    make_subscription,
    make_tax_rate,
    new_id,
    serialize,
    sign_payload,
)
from connectors.stripe.mapping import parse_customer, parse_invoice, parse_subscription
from connectors.stripe.webhooks import verify_event

SECRET = "whsec_emulator_test_secret"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z

LINES = [
    LineSpec(
        amount_minor=10_000,
        price_id="price_seat",
        product_id="prod_seat",
        quantity=5,
        description="5 seats",
        period_start=T0,
        period_end=T0 + 31 * 86400,
        taxes=(TaxSpec(amount_minor=1_900, inclusive=False, rate_id="txr_de19"),),
    ),
    LineSpec(
        amount_minor=2_380,
        price_id="price_addon",
        product_id="prod_addon",
        taxes=(TaxSpec(percentage="19", inclusive=True, rate_id="txr_de19_incl"),),
    ),
    LineSpec(amount_minor=-1_500, price_id="price_seat", product_id="prod_seat", proration=True),
]


def _sum_exclusive(invoice) -> int:
    return sum(t.amount_minor for ln in invoice.lines for t in ln.taxes if not t.inclusive)


# --- ids and determinism --------------------------------------------------------------------------


def test_ids_have_stripe_prefixes_and_seeded_rng_is_deterministic():
    assert new_id("cus").startswith("cus_") and len(new_id("cus")) == 28
    assert new_id("in") != new_id("in")
    assert new_id("evt", random.Random(7)) == new_id("evt", random.Random(7))
    a = make_invoice("cus_1", LINES, created=T0, rng=random.Random(42))
    b = make_invoice("cus_1", LINES, created=T0, rng=random.Random(42))
    assert a == b
    assert a["id"].startswith("in_")
    assert all(line["id"].startswith("il_") for line in a["lines"]["data"])


# --- current-shape invoices -----------------------------------------------------------------------


def test_make_invoice_round_trips_through_parse_invoice():
    raw = make_invoice(
        "cus_ACME",
        LINES,
        "eur",
        "ACME-0042",
        subscription_id="sub_ACME",
        metadata={"deal": "D-17"},
        status="paid",
        subscription_metadata={"deal": "ignored", "tier": "gold"},
        created=T0,
        finalized_at=T0 + 60,
    )
    assert raw["parent"]["subscription_details"]["subscription"] == "sub_ACME"
    assert "subscription" not in raw  # current shape
    inv = parse_invoice(raw)
    assert inv.customer_ref == "cus_ACME"
    assert inv.subscription_ref == "sub_ACME"
    assert inv.currency == "EUR"
    assert inv.number == "ACME-0042"
    assert inv.status == "paid"
    assert inv.created == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert inv.finalized_at == dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
    assert inv.billing_reason == "subscription_cycle"
    assert inv.metadata == {"deal": "D-17", "tier": "gold"}

    seat, addon, credit = inv.lines
    assert (seat.amount_minor, seat.quantity, seat.price_ref, seat.product_ref) == (
        10_000,
        5,
        "price_seat",
        "prod_seat",
    )
    assert seat.period_start == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert seat.period_end == dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    assert (seat.tax_minor, seat.net_minor, seat.taxes[0].inclusive) == (1_900, 10_000, False)
    # 19 % contained in 2380: 2380 * 19 / 119 = 380
    assert (addon.tax_minor, addon.net_minor, addon.taxes[0].inclusive) == (380, 2_000, True)
    assert addon.taxes[0].rate_ref == "txr_de19_incl"
    assert credit.proration is True and seat.proration is False
    assert (credit.amount_minor, credit.taxes) == (-1_500, ())

    assert inv.subtotal_minor == 10_000 + 2_380 - 1_500 == 10_880
    assert inv.tax_minor == 1_900 + 380
    assert inv.total_minor == 10_880 + 1_900  # lines + exclusive tax
    assert inv.total_minor == sum(ln.amount_minor for ln in inv.lines) + _sum_exclusive(inv)
    assert raw["total_excluding_tax"] == inv.total_minor - inv.tax_minor
    assert raw["amount_paid"] == inv.total_minor and raw["amount_remaining"] == 0


def test_line_parent_without_subscription_is_invoice_item_details():
    raw = make_invoice("cus_1", [{"amount_minor": 700, "proration": True}], created=T0)
    line = raw["lines"]["data"][0]
    assert line["parent"]["type"] == "invoice_item_details"
    assert line["parent"]["invoice_item_details"]["proration"] is True
    assert raw["parent"] is None
    inv = parse_invoice(raw)
    assert inv.subscription_ref == "" and inv.lines[0].proration is True
    assert inv.billing_reason == "manual"


def test_dict_line_specs_with_single_tax():
    raw = make_invoice(
        "cus_1",
        [{"amount": 1000, "tax": {"amount": 190, "inclusive": False, "rate_id": "txr_1"}}],
        created=T0,
    )
    inv = parse_invoice(raw)
    assert inv.lines[0].taxes[0].amount_minor == 190 and inv.total_minor == 1190


@pytest.mark.parametrize(
    ("amount", "percentage", "inclusive", "tax"),
    [
        (1000, "19", False, 190),
        (2000, "15.0", True, 261),  # the dj-stripe reference invoice: 2000 incl. 261
        (999, "8.25", False, 82),  # 82.4175 -> 82
        (1000, "7.5", False, 75),
        (-1000, "19", False, -190),
        (1, "50", False, 1),  # 0.5 rounds half up
    ],
)
def test_tax_computed_from_percentage(amount, percentage, inclusive, tax):
    spec = LineSpec(
        amount_minor=amount, taxes=(TaxSpec(percentage=percentage, inclusive=inclusive),)
    )
    raw = make_invoice("cus_1", [spec], created=T0)
    assert raw["lines"]["data"][0]["taxes"][0]["amount"] == tax


def test_draft_has_no_number_or_finalization():
    raw = make_invoice("cus_1", [{"amount_minor": 1}], status="draft", created=T0)
    assert raw["number"] is None and raw["status_transitions"]["finalized_at"] is None
    assert parse_invoice(raw).finalized_at is None
    with pytest.raises(ValueError):
        make_invoice("cus_1", [{"amount_minor": 1}], status="weird")
    with pytest.raises(TypeError):
        make_invoice("cus_1", [{"amount_minor": 1.5}])


# --- pre-basil invoices ---------------------------------------------------------------------------


def test_make_invoice_pre_basil_round_trip_matches_current_shape():
    raw = make_invoice_pre_basil(
        "cus_ACME", LINES, "eur", "ACME-0042", subscription_id="sub_ACME", status="paid", created=T0
    )
    assert raw["subscription"] == "sub_ACME" and raw["paid"] is True
    assert raw["charge"].startswith("ch_")
    assert "parent" not in raw and "taxes" not in raw["lines"]["data"][0]
    assert raw["lines"]["data"][0]["price"]["id"] == "price_seat"
    assert raw["lines"]["data"][0]["plan"]["product"] == "prod_seat"
    old = parse_invoice(raw)
    new = parse_invoice(
        make_invoice(
            "cus_ACME",
            LINES,
            "eur",
            "ACME-0042",
            subscription_id="sub_ACME",
            status="paid",
            created=T0,
        )
    )

    def essentials(inv):
        return (
            inv.customer_ref,
            inv.subscription_ref,
            inv.currency,
            inv.number,
            inv.status,
            inv.subtotal_minor,
            inv.tax_minor,
            inv.total_minor,
            [
                (
                    ln.amount_minor,
                    ln.quantity,
                    ln.price_ref,
                    ln.product_ref,
                    ln.proration,
                    ln.period_start,
                    ln.period_end,
                    [(t.amount_minor, t.inclusive, t.rate_ref) for t in ln.taxes],
                )
                for ln in inv.lines
            ],
        )

    assert essentials(old) == essentials(new)


def test_pre_basil_expanded_tax_rates_carry_percentage():
    spec = LineSpec(
        amount_minor=2000,
        taxes=(TaxSpec(percentage=Decimal("15.0"), inclusive=True, jurisdiction="Example1"),),
    )
    raw = make_invoice_pre_basil("cus_1", [spec], created=T0, expand_tax_rates=True)
    # over the wire and back, floats kept exact
    wire = json.loads(serialize(raw), parse_float=Decimal)
    (tax,) = parse_invoice(wire).lines[0].taxes
    assert (tax.amount_minor, tax.inclusive, tax.percentage, tax.jurisdiction) == (
        261,
        True,
        "15.0",
        "Example1",
    )
    assert b'"percentage": 15.0' in serialize(raw)


# --- customers, subscriptions, tax rates ----------------------------------------------------------


def test_make_customer_and_subscription_parse():
    cus = make_customer(
        name="Müller GmbH", email="ap@mueller.example", country="DE", currency="eur"
    )
    assert cus["id"].startswith("cus_")
    parsed = parse_customer(cus)
    assert (parsed.name, parsed.email, parsed.country, parsed.currency) == (
        "Müller GmbH",
        "ap@mueller.example",
        "DE",
        "EUR",
    )
    sub = make_subscription(
        cus["id"],
        [("price_seat", "prod_seat", 5, 2000), {"price_id": "price_addon", "quantity": 1}],
        currency="eur",
        current_period_start=T0,
        metadata={"deal": "D-17"},
    )
    assert sub["id"].startswith("sub_") and "current_period_start" not in sub  # current shape
    parsed_sub = parse_subscription(sub)
    assert parsed_sub.customer_ref == cus["id"]
    assert parsed_sub.items[0] == ("price_seat", "prod_seat", 5)
    assert parsed_sub.items[1][0] == "price_addon" and parsed_sub.items[1][1].startswith("prod_")
    assert parsed_sub.current_period_start == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parsed_sub.current_period_end == dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
    assert parsed_sub.currency == "EUR" and parsed_sub.metadata == {"deal": "D-17"}


def test_make_tax_rate_keeps_decimal_on_the_wire():
    rate = make_tax_rate("8.25", jurisdiction="US-CA", rate_id="txr_ca")
    assert rate["percentage"] == Decimal("8.25")
    assert b'"percentage": 8.25' in serialize(rate)


# --- events, signing, delivery --------------------------------------------------------------------


def test_make_event_envelope_verifies():
    inv = make_invoice("cus_1", LINES, created=T0)
    event = make_event("invoice.paid", inv, created=T0 + 5, previous_attributes={"status": "open"})
    assert event["id"].startswith("evt_") and event["object"] == "event"
    assert event["livemode"] is False and event["pending_webhooks"] == 1
    assert event["request"] == {"id": None, "idempotency_key": None}
    assert event["api_version"] == emulator.CURRENT_API_VERSION
    assert event["data"]["previous_attributes"] == {"status": "open"}
    body = serialize(event)
    env = verify_event(body, sign_payload(body, SECRET, T0 + 6), SECRET, now=T0 + 10)
    assert (env.event_type, env.object_type, env.object_id) == (
        "invoice.paid",
        "invoice",
        inv["id"],
    )
    assert parse_invoice(env.payload["data"]["object"]) == parse_invoice(inv)


def test_sign_payload_format():
    header = sign_payload(b"{}", SECRET, 1700000000)
    t, v1 = header.split(",")
    assert t == "t=1700000000" and v1.startswith("v1=") and len(v1) == 3 + 64


class _Capture(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append((dict(self.headers), self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def capture_server() -> Iterator[tuple[str, list]]:
    _Capture.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/webhooks/stripe/", _Capture.received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_deliver_posts_the_exact_signed_bytes(capture_server):
    url, received = capture_server
    event = make_event("invoice.finalized", make_invoice("cus_1", LINES, created=T0), created=T0)
    response = deliver(url, event, SECRET, timestamp=T0 + 1, timeout=5.0)
    assert response.status_code == 200
    ((headers, body),) = received
    assert headers["Content-Type"] == "application/json"
    assert body == serialize(event)
    env = verify_event(body, headers["Stripe-Signature"], SECRET, now=T0 + 2)
    assert env.event_id == event["id"]


# --- property: amounts survive make_invoice -> parse_invoice -------------------------------------

_taxes = st.lists(
    st.builds(
        TaxSpec,
        amount_minor=st.integers(min_value=-(10**7), max_value=10**7),
        inclusive=st.booleans(),
        rate_id=st.sampled_from(["txr_a", "txr_b", "txr_c"]) | st.none(),
    ),
    max_size=3,
).map(tuple)

_lines = st.lists(
    st.builds(
        LineSpec,
        amount_minor=st.integers(min_value=-(10**10), max_value=10**10),
        quantity=st.integers(min_value=0, max_value=10_000),
        proration=st.booleans(),
        period_start=st.integers(min_value=0, max_value=4_102_444_800),
        taxes=_taxes,
    ),
    min_size=0,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(
    lines=_lines,
    builder=st.sampled_from([make_invoice, make_invoice_pre_basil]),
    subscription_id=st.sampled_from([None, "sub_prop"]),
    currency=st.sampled_from(["usd", "eur", "jpy", "kwd"]),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_property_make_invoice_parse_invoice_preserves_amounts(
    lines, builder, subscription_id, currency, seed
):
    raw = builder(
        "cus_prop",
        lines,
        currency,
        subscription_id=subscription_id,
        created=T0,
        rng=random.Random(seed),
    )
    inv = parse_invoice(json.loads(serialize(raw), parse_float=Decimal))  # through the wire
    assert inv.currency == currency.upper()
    assert len(inv.lines) == len(lines)
    for spec, line in zip(lines, inv.lines, strict=True):
        assert line.amount_minor == spec.amount_minor
        assert line.quantity == spec.quantity
        assert line.proration == spec.proration
        assert line.period_start == dt.datetime.fromtimestamp(spec.period_start, dt.UTC)
        assert [(t.amount_minor, t.inclusive) for t in line.taxes] == [
            (t.amount_minor, t.inclusive) for t in spec.taxes
        ]
        for tax_spec, tax in zip(spec.taxes, line.taxes, strict=True):
            if tax_spec.rate_id:
                assert tax.rate_ref == tax_spec.rate_id
            assert tax.rate_ref.startswith("txr_")
    amounts = sum(spec.amount_minor for spec in lines)
    exclusive = sum(t.amount_minor for spec in lines for t in spec.taxes if not t.inclusive)
    all_tax = sum(t.amount_minor for spec in lines for t in spec.taxes)
    assert inv.subtotal_minor == amounts
    assert inv.total_minor == amounts + exclusive
    assert inv.tax_minor == all_tax
    assert inv.total_minor == sum(ln.amount_minor for ln in inv.lines) + _sum_exclusive(inv)
    assert sum(ln.net_minor for ln in inv.lines) + inv.tax_minor == inv.total_minor
