"""Nothing secret and no full card or bank number reaches a screen."""

from __future__ import annotations

from sync.redaction import MASK, redact


def test_secret_keys_lose_their_values_at_any_depth():
    payload = {
        "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k_123"},
        "client_secret": "pi_1_secret_2",
        "data": [{"password": "hunter2", "amount": 1200}],
    }
    out = redact(payload)
    assert out["headers"] == {"Authorization": MASK, "X-Api-Key": MASK}
    assert out["client_secret"] == MASK
    assert out["data"] == [{"password": MASK, "amount": 1200}]
    assert payload["client_secret"] == "pi_1_secret_2"  # the original is untouched


def test_card_and_bank_numbers_keep_only_their_last_four():
    out = redact(
        {
            "card": {"number": "4242 4242 4242 4242", "last4": "4242", "cvc": "123"},
            "bank": {"account_number": "000123456789", "routing_number": "110000000"},
            "memo": "paid with 5555555555554444 yesterday",
        }
    )
    assert out["card"] == {"number": MASK + "4242", "last4": "4242", "cvc": MASK}
    assert out["bank"] == {"account_number": MASK + "6789", "routing_number": MASK + "0000"}
    assert out["memo"] == f"paid with {MASK}4444 yesterday"
    assert redact({"amount_minor": 123456789012345}) == {"amount_minor": 123456789012345}
