from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors import currency


@pytest.mark.parametrize(
    ("code", "exp"),
    [
        ("JPY", 0),
        ("jpy", 0),
        ("KRW", 0),
        ("VND", 0),
        ("CLP", 0),
        ("ISK", 0),
        ("UGX", 0),
        ("XAF", 0),
        ("XOF", 0),
        ("USD", 2),
        ("EUR", 2),
        ("usd", 2),
        ("KWD", 3),
        ("BHD", 3),
        ("OMR", 3),
        ("JOD", 3),
        ("TND", 3),
        ("IQD", 3),
        ("LYD", 3),
        ("CLF", 4),
        ("QQQ", 2),  # unknown but well-formed: default
    ],
)
def test_exponent(code, exp):
    assert currency.exponent(code) == exp


@pytest.mark.parametrize("code", ["US", "USDX", "U$D", "", "12A"])
def test_malformed_code_raises(code):
    with pytest.raises(ValueError, match="ISO-4217"):
        currency.exponent(code)


def test_no_minor_unit_raises():
    with pytest.raises(ValueError, match="no minor unit"):
        currency.exponent("XAU")


def test_is_known():
    assert currency.is_known("usd") and currency.is_known("JPY") and currency.is_known("XAU")
    assert not currency.is_known("QQQ")
    assert not currency.is_known("nope")


@pytest.mark.parametrize(
    ("code", "minor", "text"),
    [
        ("JPY", 1050, "1050"),
        ("JPY", 0, "0"),
        ("JPY", -7, "-7"),
        ("USD", 1050, "10.50"),
        ("USD", 1, "0.01"),
        ("USD", -199, "-1.99"),
        ("USD", 0, "0.00"),
        ("KWD", 1050, "1.050"),
        ("KWD", 1, "0.001"),
        ("KWD", 123456789, "123456.789"),
    ],
)
def test_round_trip(code, minor, text):
    value = currency.minor_to_decimal(minor, code)
    assert isinstance(value, Decimal)
    assert str(value) == text  # exact, with exactly `exponent` decimals
    assert value == Decimal(text)
    assert currency.decimal_to_minor(value, code) == minor
    assert currency.decimal_to_minor(Decimal(text), code) == minor


def test_huge_amount_stays_exact():
    minor = 10**40 + 1
    value = currency.minor_to_decimal(minor, "USD")
    assert str(value) == "1" + "0" * 37 + "0.01"
    assert currency.decimal_to_minor(value, "USD") == minor


@pytest.mark.parametrize(
    ("value", "code", "minor"),
    [
        (Decimal("10.5"), "USD", 1050),
        (Decimal("10.500"), "USD", 1050),  # trailing zeros are exact
        (Decimal("1E+2"), "JPY", 100),
        (Decimal("1.0"), "JPY", 1),
        (Decimal("2"), "KWD", 2000),
        (7, "USD", 700),  # int = whole major units
    ],
)
def test_decimal_to_minor_exact(value, code, minor):
    assert currency.decimal_to_minor(value, code) == minor


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (Decimal("1.5"), "JPY"),
        (Decimal("10.005"), "USD"),
        (Decimal("0.001"), "USD"),
        (Decimal("1.0005"), "KWD"),
        (Decimal("-0.0001"), "KWD"),
    ],
)
def test_inexact_raises(value, code):
    with pytest.raises(ValueError, match="not a whole number of minor units"):
        currency.decimal_to_minor(value, code)


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_non_finite_raises(value):
    with pytest.raises(ValueError, match="not finite"):
        currency.decimal_to_minor(value, "USD")


def test_floats_and_bools_refused():
    with pytest.raises(TypeError):
        currency.decimal_to_minor(10.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        currency.decimal_to_minor(True, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        currency.minor_to_decimal(10.0, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        currency.minor_to_decimal(True, "USD")  # type: ignore[arg-type]


@given(
    minor=st.integers(min_value=-(10**18), max_value=10**18),
    code=st.sampled_from(["JPY", "USD", "KWD", "CLF"]),
)
def test_round_trip_property(minor, code):
    value = currency.minor_to_decimal(minor, code)
    assert -value.as_tuple().exponent == currency.exponent(code)
    assert currency.decimal_to_minor(value, code) == minor
