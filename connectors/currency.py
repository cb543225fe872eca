"""ISO-4217 minor units and exact conversion between integer minor units and ``Decimal``.

Money inside the project is ``(amount_minor: int, currency: str)``. ERPs such as NetSuite
want major-unit decimals on the wire (``10.50`` USD, ``1050`` JPY, ``1.050`` KWD); these
helpers convert both ways *exactly* and refuse anything that would lose a fraction.

The table follows ISO 4217 (list one). Codes that ISO marks "N.A." (precious metals, SDR,
bond-market and testing units) have no minor unit: ``exponent`` raises for them. Any other
well-formed code not listed here is assumed to have two decimals.

Billing systems sometimes deviate from ISO for historic reasons (Stripe, for instance, has
special cases for a few currencies); such quirks belong in the billing connector, not here.
"""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

DEFAULT_EXPONENT = 2

_ZERO = (
    "BIF",  # Burundi franc
    "CLP",  # Chilean peso
    "DJF",  # Djibouti franc
    "GNF",  # Guinean franc
    "ISK",  # Icelandic krona
    "JPY",  # Japanese yen
    "KMF",  # Comoro franc
    "KRW",  # South Korean won
    "PYG",  # Paraguayan guarani
    "RWF",  # Rwanda franc
    "UGX",  # Uganda shilling
    "UYI",  # Uruguay peso en unidades indexadas
    "VND",  # Vietnamese dong
    "VUV",  # Vanuatu vatu
    "XAF",  # CFA franc BEAC
    "XOF",  # CFA franc BCEAO
    "XPF",  # CFP franc
)
_THREE = (
    "BHD",  # Bahraini dinar
    "IQD",  # Iraqi dinar
    "JOD",  # Jordanian dinar
    "KWD",  # Kuwaiti dinar
    "LYD",  # Libyan dinar
    "OMR",  # Rial Omani
    "TND",  # Tunisian dinar
)
_FOUR = (
    "CLF",  # Unidad de Fomento
    "UYW",  # Unidad previsional
)


def _codes(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: Common two-decimal currencies, listed so ``is_known`` can tell them from typos.
_TWO = _codes(
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR "
    "FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW "
    "KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN "
    "NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD "
    "SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU "
    "UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL"
)
#: ISO "N.A." codes: no minor unit exists, so minor-unit amounts are meaningless.
NO_MINOR_UNIT = frozenset(
    _codes("XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX"),
)

_TABLE: dict[str, int] = {code: 2 for code in _TWO}
_TABLE.update({code: 0 for code in _ZERO})
_TABLE.update({code: 3 for code in _THREE})
_TABLE.update({code: 4 for code in _FOUR})

#: Read-only view of the explicit table (code -> exponent).
EXPONENTS = MappingProxyType(_TABLE)


def normalize(code: str) -> str:
    """Return ``code`` upper-cased after checking it looks like an ISO-4217 alpha code."""
    if not isinstance(code, str):
        raise TypeError(f"currency code must be str, not {type(code).__name__}")
    norm = code.strip().upper()
    if len(norm) != 3 or not norm.isascii() or not norm.isalpha():
        raise ValueError(f"not an ISO-4217 currency code: {code!r}")
    return norm


def is_known(code: str) -> bool:
    """True when ``code`` is in the explicit table (not merely defaulted to 2)."""
    try:
        norm = normalize(code)
    except (TypeError, ValueError):
        return False
    return norm in _TABLE or norm in NO_MINOR_UNIT


def exponent(code: str) -> int:
    """Number of decimals of ``code``'s minor unit: 2 for USD, 0 for JPY, 3 for KWD.

    Case-insensitive. Unknown but well-formed codes default to 2. Raises ``ValueError`` for a
    malformed code or a code without a minor unit (XAU, XDR, ...).
    """
    norm = normalize(code)
    if norm in NO_MINOR_UNIT:
        raise ValueError(f"currency {norm} has no minor unit")
    return _TABLE.get(norm, DEFAULT_EXPONENT)


def minor_to_decimal(minor: int, code: str) -> Decimal:
    """Exact major-unit ``Decimal`` for ``minor`` units of ``code``.

    The result carries exactly ``exponent(code)`` decimal places: ``1050 USD -> 10.50``,
    ``1050 JPY -> 1050``, ``1050 KWD -> 1.050``.
    """
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"minor units must be int, not {type(minor).__name__}")
    exp = exponent(code)
    sign = 1 if minor < 0 else 0
    digits = tuple(int(d) for d in str(abs(minor)))
    return Decimal((sign, digits, -exp))


def decimal_to_minor(value: Decimal, code: str) -> int:
    """Exact integer minor units of a major-unit ``value`` in ``code``.

    ``Decimal("10.5")`` USD -> 1050. Raises ``ValueError`` when ``value`` has more decimals
    than the currency allows (``Decimal("10.005")`` USD, ``Decimal("1.5")`` JPY) or is not
    finite, and ``TypeError`` for floats: binary floats cannot represent money exactly.
    ``int`` is accepted as a whole major amount.
    """
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(f"amount must be Decimal, not {type(value).__name__}")
    exp = exponent(code)
    dec = Decimal(value)
    if not dec.is_finite():
        raise ValueError(f"amount is not finite: {value!r}")
    sign, digits, dec_exp = dec.as_tuple()
    assert isinstance(dec_exp, int)  # finite decimals have an int exponent
    coefficient = int("".join(str(d) for d in digits) or "0")
    shift = dec_exp + exp
    if shift >= 0:
        minor = coefficient * 10**shift
    else:
        minor, remainder = divmod(coefficient, 10**-shift)
        if remainder:
            raise ValueError(
                f"{value} {normalize(code)} is not a whole number of minor units "
                f"(at most {exp} decimals)"
            )
    return -minor if sign else minor
