"""What a screen may show of a payload: secrets and full card or bank numbers masked.

Keys that name a secret (tokens, passwords, keys, signatures) lose their value; card and bank
numbers keep their last four characters; any other string of 13-19 digits (a card number in a
free-text field) is masked the same way. Pure functions: the screens and the API call them.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "••••"
_SECRET_KEYS = re.compile(
    r"(authorization|password|passwd|secret|token|api[_-]?key|private[_-]?key|signature|"
    r"cookie|session|credential|cvc|cvv)",
    re.IGNORECASE,
)
_NUMBER_KEYS = {"number", "account_number", "routing_number", "iban", "card_number", "pan"}
_PAN = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")


def _tail(value: Any) -> str:
    text = re.sub(r"[^0-9A-Za-z]", "", str(value))
    return MASK + text[-4:] if len(text) > 4 else MASK


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` safe to render."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if value is None or (isinstance(value, bool | int | float) and not key):
        return value
    if key and _SECRET_KEYS.search(key) and value not in ("", None):
        return MASK
    if key.lower() in _NUMBER_KEYS and value not in ("", None):
        return _tail(value)
    if isinstance(value, str):
        return _PAN.sub(lambda m: _tail(m.group(0)), value)
    return value
