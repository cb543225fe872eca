"""Parsers: Stripe objects in the current and the pre-basil API shape -> canonical dataclasses."""

from __future__ import annotations

import ast
import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.base import (
    BillingCustomer,
    BillingInvoiceLine,
    BillingSubscription,
    BillingTax,
    PermanentError,
)
from connectors.stripe.mapping import (
    IncompletePayload,
    parse_customer,
    parse_invoice,
    parse_invoice_line,
    parse_subscription,
    parse_tax,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "stripe"
SHARED_REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "stripe"
UTC = dt.UTC


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# --- reference invoices ---------------------------------------------------------------------------


def test_current_reference_invoice(load_fixture):
    """Stripe's OpenAPI fixture invoice (current shape; some values are placeholders)."""
    inv = parse_invoice(load_fixture("current_invoice.json"))
    assert inv.source_id == "in_1Pgc6tB7WZ01zgkWu9fdqL6I"
    assert inv.number == ""  # null on a draft
    assert inv.customer_ref == "cus_QXg1o8vcGmoR32"
    assert inv.subscription_ref == "subscription"  # parent.subscription_details.subscription
    assert inv.currency == "USD"
    assert inv.status == "draft"
    assert inv.created == utc(2009, 2, 13, 23, 31, 30)
    assert inv.finalized_at is None
    assert (inv.subtotal_minor, inv.tax_minor, inv.total_minor) == (1000, 0, 1000)
    assert inv.billing_reason == "manual"
    assert inv.metadata == {}
    assert len(inv.lines) == 1
    line = inv.lines[0]
    assert line == BillingInvoiceLine(
        source_id="il_1Pgc6sB7WZ01zgkWFnxLrLCq",
        description="My First Invoice Item (created for API docs)",
        amount_minor=1000,
        quantity=1,
        price_ref="",  # pricing has no price_details in this fixture
        product_ref="",
        period_start=utc(2024, 7, 26, 0, 34, 14),
        period_end=utc(2024, 7, 26, 0, 34, 14),
        proration=True,  # parent.type = invoice_item_details -> its proration
        taxes=(),  # "taxes": null
    )


def test_pre_basil_reference_invoice_with_lines(load_fixture):
    """dj-stripe's invoice (old shape): 2000 incl. 261 of 15 % inclusive VAT."""
    inv = parse_invoice(load_fixture("pre_basil_invoice_with_lines.json"))
    assert inv.source_id == "in_fakefakefakefakefake0001"
    assert inv.number == "E5B23224-0001"
    assert inv.customer_ref == "cus_6lsBvm5rJ0zyHc"
    assert inv.subscription_ref == "sub_fakefakefakefakefake0001"  # invoice.subscription
    assert inv.currency == "USD"
    assert inv.status == "paid"
    assert inv.created == utc(2019, 5, 16, 8, 26, 16)
    assert inv.finalized_at == utc(2020, 6, 27, 2, 46, 21)
    assert inv.subtotal_minor == 2000
    assert inv.tax_minor == 261  # invoice.tax
    assert inv.total_minor == 2000  # inclusive tax: total == subtotal
    assert inv.billing_reason == "subscription_create"
    assert inv.metadata == {"djstripe_test_fake_id": "in_fakefakefakefakefake0001"}
    (line,) = inv.lines
    assert line.source_id == "sli_3445f2b5e035b0"
    assert line.description == "1 \u00d7 Fake Product (at $20.00 / month)"
    assert (line.amount_minor, line.quantity) == (2000, 1)
    assert (line.price_ref, line.product_ref) == ("gold21323", "prod_fake1")
    assert line.period_start == utc(2019, 6, 3, 7, 1, 29)
    assert line.period_end == utc(2019, 7, 3, 7, 1, 29)
    assert line.proration is False
    assert line.taxes == (
        BillingTax(amount_minor=261, rate_ref="txr_fakefakefakefakefake0001", inclusive=True),
    )
    assert (line.tax_minor, line.net_minor) == (261, 1739)


def test_pre_basil_reference_invoice_without_line_data_is_refused(load_fixture):
    """The verbatim fixture has ``"lines": {}``; never map an invoice whose lines are absent."""
    with pytest.raises(PermanentError) as exc_info:
        parse_invoice(load_fixture("pre_basil_invoice.json"))
    assert "in_fakefakefakefakefake0001" in exc_info.value.message
    assert "'lines.data'" in exc_info.value.message


def test_fixture_copies_match_the_shared_reference():
    if not SHARED_REFERENCE.is_dir():
        pytest.skip("shared reference payloads not available")
    pre = SHARED_REFERENCE / "pre-basil"
    for fixture, source in [
        ("pre_basil_invoice.json", pre / "invoice_in_fakefakefakefakefake0001.json"),
        ("pre_basil_subscription.json", pre / "subscription_sub_fakefakefakefakefake0001.json"),
        ("pre_basil_tax_rate.json", pre / "tax_rate_txr_fakefakefakefakefake0001.json"),
    ]:
        assert read_json(FIXTURES / fixture) == read_json(source), fixture
    current = read_json(SHARED_REFERENCE / "current" / "objects.json")
    assert read_json(FIXTURES / "current_event.json") == current["event"]
    trimmed = read_json(FIXTURES / "current_invoice.json")
    for key, value in trimmed.items():
        assert current["invoice"][key] == value, key


# --- lines: taxes ---------------------------------------------------------------------------------


def test_current_line_with_inclusive_tax(load_fixture):
    line = parse_invoice_line(load_fixture("current_line_item_taxed.json"))
    assert line.source_id == "il_tmp_1Nzo1ZGgdF1VjufLzD1UUn9R"
    assert (line.price_ref, line.product_ref) == (
        "price_1NzlYfGgdF1VjufL0cVjLJVI",
        "prod_OnMHDH6VBmYlTr",
    )
    assert line.proration is False
    assert line.taxes == (
        BillingTax(amount_minor=190, rate_ref="txr_1Pgc7BB7WZ01zgkW4Iwwvf6z", inclusive=True),
    )
    assert (line.amount_minor, line.tax_minor, line.net_minor) == (1190, 190, 1000)


def test_current_line_with_exclusive_tax(load_fixture):
    raw = load_fixture("current_line_item_taxed.json")
    raw["amount"] = 1000
    raw["taxes"][0]["tax_behavior"] = "exclusive"
    line = parse_invoice_line(raw)
    assert line.taxes[0].inclusive is False
    # exclusive tax sits on top of the amount: net is the whole amount
    assert (line.amount_minor, line.tax_minor, line.net_minor) == (1000, 190, 1000)


def test_mixed_inclusive_and_exclusive_taxes_net_amount():
    line = parse_invoice_line(
        {
            "id": "il_mixed",
            "amount": 1100,
            "quantity": 1,
            "taxes": [
                {
                    "amount": 100,
                    "tax_behavior": "inclusive",
                    "tax_rate_details": {"tax_rate": "txr_a"},
                },
                {
                    "amount": 50,
                    "tax_behavior": "exclusive",
                    "tax_rate_details": {"tax_rate": "txr_b"},
                },
            ],
        }
    )
    assert (line.tax_minor, line.net_minor) == (150, 1000)


def test_current_tax_with_expanded_tax_rate(load_fixture):
    rate = load_fixture("pre_basil_tax_rate.json")
    tax = parse_tax(
        {"amount": 5, "tax_behavior": "inclusive", "tax_rate_details": {"tax_rate": rate}}
    )
    assert tax == BillingTax(
        amount_minor=5,
        rate_ref="txr_fakefakefakefakefake0001",
        inclusive=True,
        jurisdiction="Example1",
        percentage="15.0",
    )


def test_pre_basil_tax_amount_with_expanded_tax_rate(load_fixture):
    rate = load_fixture("pre_basil_tax_rate.json")
    assert rate["percentage"] == Decimal("15.0")
    tax = parse_tax({"amount": 261, "inclusive": True, "tax_rate": rate})
    assert tax == BillingTax(261, "txr_fakefakefakefakefake0001", True, "Example1", "15.0")


@pytest.mark.parametrize(
    ("percentage", "text"),
    [
        (Decimal("15.0"), "15.0"),
        (15.0, "15.0"),  # a float from a plain json.loads still renders as written
        (19, "19"),
        (Decimal("8.25"), "8.25"),
        (8.25, "8.25"),
        ("7.7", "7.7"),
        (Decimal("0.1"), "0.1"),
        (None, ""),
    ],
)
def test_percentage_is_decimal_text(percentage, text):
    tax = parse_tax(
        {"amount": 1, "inclusive": False, "tax_rate": {"id": "txr_x", "percentage": percentage}}
    )
    assert tax.percentage == text


def test_plain_json_float_percentage_from_the_wire():
    raw = json.loads((FIXTURES / "pre_basil_tax_rate.json").read_text())
    assert isinstance(raw["percentage"], float)
    assert parse_tax({"amount": 1, "inclusive": True, "tax_rate": raw}).percentage == "15.0"


@pytest.mark.parametrize(
    "entry",
    [
        {"amount": 1, "tax_behavior": "sometimes", "tax_rate_details": None},
        {"amount": 1, "tax_rate": "txr_x"},  # old shape without the inclusive flag
        {"amount": 1.5, "inclusive": True, "tax_rate": "txr_x"},
        {"inclusive": True, "tax_rate": "txr_x"},
    ],
)
def test_invalid_tax_entries_are_refused(entry):
    with pytest.raises(PermanentError):
        parse_tax(entry)


def test_tax_without_rate_details():
    tax = parse_tax({"amount": 7, "tax_behavior": "exclusive", "tax_rate_details": None})
    assert (tax.rate_ref, tax.inclusive, tax.amount_minor) == ("", False, 7)


# --- lines: proration, price, quantity -----------------------------------------------------------


def _current_line(**parent_details) -> dict:
    return {
        "id": "il_1",
        "amount": 500,
        "quantity": 2,
        "parent": parent_details,
        "pricing": {"type": "price_details", "price_details": {"price": "price_1", "product": "p"}},
        "taxes": [],
    }


def test_proration_from_subscription_item_details():
    line = _current_line(
        type="subscription_item_details",
        subscription_item_details={"proration": True, "subscription": "sub_1"},
        invoice_item_details=None,
    )
    assert parse_invoice_line(line).proration is True


def test_proration_from_invoice_item_details():
    line = _current_line(
        type="invoice_item_details",
        invoice_item_details={"proration": True, "invoice_item": "ii_1"},
    )
    assert parse_invoice_line(line).proration is True
    line["parent"]["invoice_item_details"]["proration"] = False
    assert parse_invoice_line(line).proration is False


def test_proration_follows_parent_type_when_both_details_present():
    line = _current_line(
        type="subscription_item_details",
        invoice_item_details={"proration": True},
        subscription_item_details={"proration": False},
    )
    assert parse_invoice_line(line).proration is False


def test_proration_without_parent_type():
    line = _current_line(subscription_item_details={"proration": True})
    assert parse_invoice_line(line).proration is True


def test_pre_basil_proration_flag():
    line = {"id": "il_old", "amount": -250, "quantity": 1, "proration": True, "tax_amounts": []}
    parsed = parse_invoice_line(line)
    assert parsed.proration is True and parsed.amount_minor == -250


def test_price_details_with_expanded_price():
    line = _current_line(type="invoice_item_details", invoice_item_details={"proration": False})
    line["pricing"]["price_details"] = {"price": {"id": "price_X", "product": "prod_X"}}
    assert (parse_invoice_line(line).price_ref, parse_invoice_line(line).product_ref) == (
        "price_X",
        "prod_X",
    )


def test_pre_basil_price_as_id_string():
    line = {"id": "il_old", "amount": 100, "quantity": 1, "price": "price_abc", "proration": False}
    parsed = parse_invoice_line(line)
    assert (parsed.price_ref, parsed.product_ref) == ("price_abc", "")


def test_pre_basil_plan_only(load_fixture):
    plan = load_fixture("pre_basil_subscription.json")["plan"]
    line = {"id": "il_old", "amount": 2000, "quantity": 1, "plan": plan, "price": None}
    parsed = parse_invoice_line(line)
    assert (parsed.price_ref, parsed.product_ref) == ("gold21323", "prod_fake1")


def test_quantity_from_quantity_decimal():
    line = {"id": "il_q", "amount": 300, "quantity": None, "quantity_decimal": "3"}
    assert parse_invoice_line(line).quantity == 3
    assert parse_invoice_line({"id": "il_q", "amount": 300}).quantity == 1
    with pytest.raises(PermanentError, match="whole number"):
        parse_invoice_line(
            {"id": "il_q", "amount": 300, "quantity": None, "quantity_decimal": "1.5"}
        )


@pytest.mark.parametrize(
    ("line", "field_name"),
    [
        ({"amount": 1}, "id"),
        ({"id": "il_1"}, "amount"),
        ({"id": "il_1", "amount": 10.0}, "amount"),
        ({"id": "il_1", "amount": 10, "quantity": "2"}, "quantity"),
        ({"id": "il_1", "amount": 10, "period": {"start": "yesterday"}}, "period.start"),
        ({"id": "il_1", "amount": 10, "taxes": {"amount": 1}}, "taxes"),
    ],
)
def test_invalid_lines_are_refused(line, field_name):
    with pytest.raises(PermanentError) as exc_info:
        parse_invoice_line(line, invoice_id="in_9")
    assert f"'{field_name}'" in exc_info.value.message
    assert "in_9" in exc_info.value.message


# --- invoices: completeness and required fields ---------------------------------------------------


def test_has_more_raises_incomplete_payload(load_fixture):
    raw = load_fixture("pre_basil_invoice_with_lines.json")
    raw["lines"]["has_more"] = True
    raw["lines"]["total_count"] = 12
    with pytest.raises(IncompletePayload) as exc_info:
        parse_invoice(raw)
    err = exc_info.value
    assert isinstance(err, PermanentError) and not err.transient
    assert (err.object_id, err.included, err.total_count) == ("in_fakefakefakefakefake0001", 1, 12)
    assert "in_fakefakefakefakefake0001" in err.message
    assert "only 1 of 12 lines" in err.message
    assert err.code == "incomplete_payload"


def test_has_more_without_total_count(load_fixture):
    raw = load_fixture("current_invoice.json")
    raw["lines"]["has_more"] = True
    with pytest.raises(IncompletePayload, match="only 1 lines") as exc_info:
        parse_invoice(raw)
    assert exc_info.value.total_count is None


@pytest.mark.parametrize("field_name", ["id", "customer", "currency", "lines", "created", "total"])
def test_missing_required_invoice_field(load_fixture, field_name):
    raw = load_fixture("current_invoice.json")
    del raw[field_name]
    with pytest.raises(PermanentError) as exc_info:
        parse_invoice(raw)
    assert f"'{field_name}'" in exc_info.value.message
    assert exc_info.value.code == "missing_field"


@pytest.mark.parametrize("field_name", ["customer", "currency"])
def test_null_required_invoice_field(load_fixture, field_name):
    raw = load_fixture("current_invoice.json")
    raw[field_name] = None
    with pytest.raises(PermanentError, match=f"'{field_name}'"):
        parse_invoice(raw)


def test_float_money_is_refused(load_fixture):
    raw = load_fixture("current_invoice.json")
    raw["total"] = 1000.0
    with pytest.raises(PermanentError, match="'total'"):
        parse_invoice(raw)


def test_not_a_mapping_is_refused():
    with pytest.raises(PermanentError):
        parse_invoice(["in_1"])  # type: ignore[arg-type]


def test_expanded_customer_and_subscription_refs(load_fixture):
    raw = load_fixture("pre_basil_invoice_with_lines.json")
    raw["customer"] = {"id": "cus_6lsBvm5rJ0zyHc", "object": "customer"}
    raw["subscription"] = {"id": "sub_fakefakefakefakefake0001", "object": "subscription"}
    inv = parse_invoice(raw)
    assert (inv.customer_ref, inv.subscription_ref) == (
        "cus_6lsBvm5rJ0zyHc",
        "sub_fakefakefakefakefake0001",
    )


def test_invoice_without_subscription(load_fixture):
    raw = load_fixture("current_invoice.json")
    raw["parent"] = None
    assert parse_invoice(raw).subscription_ref == ""


def test_metadata_merged_as_strings(load_fixture):
    raw = load_fixture("current_invoice.json")
    raw["parent"]["subscription_details"]["metadata"] = {"plan_tier": "gold", "region": "eu"}
    raw["metadata"] = {"region": "emea", "po": 1234, "empty": None}
    assert parse_invoice(raw).metadata == {
        "plan_tier": "gold",
        "region": "emea",  # the invoice's own metadata wins
        "po": "1234",
        "empty": "",
    }


def test_invoice_tax_total_sources(load_fixture):
    raw = load_fixture("current_invoice.json")
    raw["total_taxes"] = [{"amount": 40}, {"amount": 2}]
    assert parse_invoice(raw).tax_minor == 42
    old = load_fixture("pre_basil_invoice_with_lines.json")
    old["tax"] = None
    assert parse_invoice(old).tax_minor == 261  # from total_tax_amounts
    del old["total_tax_amounts"]
    assert parse_invoice(old).tax_minor == 261  # from the lines


def test_parsing_does_not_mutate_the_input(load_fixture):
    raw = load_fixture("pre_basil_invoice_with_lines.json")
    before = copy.deepcopy(raw)
    parse_invoice(raw)
    assert raw == before


# --- customers ------------------------------------------------------------------------------------


def test_current_reference_customer(load_fixture):
    assert parse_customer(load_fixture("current_customer.json")) == BillingCustomer(
        source_id="cus_QXg1o8vcGmoR32", name="", email="", country="", currency="USD", metadata={}
    )


def test_pre_basil_reference_customer(load_fixture):
    assert parse_customer(load_fixture("pre_basil_customer.json")) == BillingCustomer(
        source_id="cus_6lsBvm5rJ0zyHc",
        name="Michael Smith",  # name is null; description carries it
        email="michael.smith@example.com",
        country="",
        currency="USD",
        metadata={},
    )


def test_customer_country_from_address_then_shipping():
    base = {"id": "cus_1", "name": "A", "currency": None}
    assert parse_customer({**base, "address": {"country": "de"}}).country == "DE"
    shipping = {"address": {"country": "FR"}}
    assert parse_customer({**base, "address": None, "shipping": shipping}).country == "FR"
    assert parse_customer(base).currency == ""


def test_deleted_customer_and_missing_id():
    deleted = parse_customer({"id": "cus_gone", "object": "customer", "deleted": True})
    assert (deleted.source_id, deleted.name, deleted.currency) == ("cus_gone", "", "")
    with pytest.raises(PermanentError, match="'id'"):
        parse_customer({"object": "customer"})


# --- subscriptions --------------------------------------------------------------------------------


def test_current_reference_subscription(load_fixture):
    assert parse_subscription(load_fixture("current_subscription.json")) == BillingSubscription(
        source_id="sub_1Pgc6rB7WZ01zgkWNy0Cn5nw",
        customer_ref="cus_QXg1o8vcGmoR32",
        status="active",
        currency="USD",
        # current shape: the period lives on the items (placeholder values in this fixture)
        current_period_start=utc(2030, 2, 6, 1, 8, 38),
        current_period_end=utc(2000, 12, 8, 15, 2, 53),
        items=(("price_1PgafmB7WZ01zgkW6dKueIc5", "prod_QXg1hqf4jFNsqG", 1),),
        metadata={},
    )


def test_pre_basil_reference_subscription(load_fixture):
    assert parse_subscription(load_fixture("pre_basil_subscription.json")) == BillingSubscription(
        source_id="sub_fakefakefakefakefake0001",
        customer_ref="cus_6lsBvm5rJ0zyHc",
        status="active",
        currency="USD",  # no subscription.currency in this version: from the item's price
        current_period_start=utc(2019, 5, 16, 8, 26, 16),
        current_period_end=utc(2019, 6, 16, 8, 26, 16),
        items=(("gold21323", "prod_fake1", 1),),
        metadata={"djstripe_test_fake_id": "sub_fakefakefakefakefake0001"},
    )


def test_subscription_period_spans_items():
    sub = {
        "id": "sub_1",
        "customer": "cus_1",
        "currency": "eur",
        "items": {
            "data": [
                {
                    "price": {"id": "price_a", "product": "prod_a"},
                    "quantity": 2,
                    "current_period_start": 100,
                    "current_period_end": 400,
                },
                {
                    "price": {"id": "price_b", "product": {"id": "prod_b"}},
                    "quantity": None,
                    "current_period_start": 50,
                    "current_period_end": 300,
                },
            ],
            "has_more": False,
        },
    }
    parsed = parse_subscription(sub)
    assert parsed.items == (("price_a", "prod_a", 2), ("price_b", "prod_b", 1))
    assert parsed.current_period_start == dt.datetime.fromtimestamp(50, UTC)
    assert parsed.current_period_end == dt.datetime.fromtimestamp(400, UTC)
    assert parsed.currency == "EUR"


def test_subscription_items_has_more(load_fixture):
    raw = load_fixture("pre_basil_subscription.json")
    raw["items"]["has_more"] = True
    with pytest.raises(IncompletePayload, match="sub_fakefakefakefakefake0001") as exc_info:
        parse_subscription(raw)
    assert exc_info.value.included == 1


@pytest.mark.parametrize("field_name", ["id", "customer", "items"])
def test_subscription_missing_required_field(load_fixture, field_name):
    raw = load_fixture("current_subscription.json")
    del raw[field_name]
    with pytest.raises(PermanentError, match=f"'{field_name}'"):
        parse_subscription(raw)


# --- boundary rule --------------------------------------------------------------------------------


def test_connector_modules_do_not_import_the_domain_or_django():
    package = Path(__file__).resolve().parents[3] / "connectors" / "stripe"
    forbidden = {"django", "sync", "controltower"}
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{module.name} imports {name}"
