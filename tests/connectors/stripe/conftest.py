"""Shared helpers for the Stripe connector tests (no Django, no database)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "stripe"
SHARED_REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "stripe"


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


@pytest.fixture
def load_fixture() -> Callable[[str], Any]:
    """Load ``tests/fixtures/stripe/<name>`` with floats kept as ``Decimal``."""

    def _load(name: str) -> Any:
        return read_json(FIXTURES / name)

    return _load
