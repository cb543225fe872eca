"""Money for people: integer minor units and a currency code -> ``1,234.56 USD``.

Integer arithmetic only (no floats): the currency's exponent from ``connectors.currency``
decides the decimals, so JPY shows none and KWD three.
"""

from __future__ import annotations

from django import template

from connectors.currency import exponent, normalize

register = template.Library()


def format_minor(minor: int, currency: str, *, with_code: bool = True) -> str:
    """``123456, "usd"`` -> ``"1,234.56 USD"``; ``-5, "JPY"`` -> ``"-5 JPY"``."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"minor units must be int, not {type(minor).__name__}")
    code = normalize(currency)
    exp = exponent(code)
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**exp)
    text = f"{sign}{whole:,}"
    if exp:
        text += f".{fraction:0{exp}d}"
    return f"{text} {code}" if with_code else text


def _safe(value: object, currency: object, *, with_code: bool) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    try:
        # Floats and Decimals are refused by format_minor: minor units are whole numbers.
        return format_minor(value, str(currency), with_code=with_code)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        # A code without minor units (XAU) or a malformed one: show what we hold, unformatted.
        return f"{value} {currency} (minor units)"


@register.filter
def money(value: int | None, currency: str) -> str:
    """``{{ line.debit_minor|money:entry.currency }}`` -> ``1,234.56 USD``; blank for None."""
    return _safe(value, currency, with_code=True)


@register.filter
def amount(value: int | None, currency: str) -> str:
    """Like ``money`` without the code, for columns whose header names the currency."""
    return _safe(value, currency, with_code=False)
