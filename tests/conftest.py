"""Shared fixtures: personas, the NetSuite emulator, and a way to drain journeys inline."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.db.models import Q
from django.utils import timezone

from tests.factories import UserFactory

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
CHROMIUM = "/usr/bin/chromium"


def pytest_collection_modifyitems(config, items):
    """Browser tests need Debian's chromium. Without it they are skipped on a developer's
    machine, and fail the run in CI (RCT_REQUIRE_BROWSER or CI set)."""
    if os.path.exists(CHROMIUM):
        return
    browser_items = [i for i in items if i.get_closest_marker("browser")]
    if not browser_items:
        return
    if os.environ.get("RCT_REQUIRE_BROWSER") or os.environ.get("CI"):
        raise pytest.UsageError(f"{CHROMIUM} is missing but browser tests are required here")
    skip = pytest.mark.skip(reason=f"{CHROMIUM} not installed (apt-get install chromium)")
    for item in browser_items:
        item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing():
    """Hashing passwords at production strength costs ~0.3 s a user; tests make hundreds."""
    from django.conf import settings
    from django.contrib.auth.hashers import get_hashers, get_hashers_by_algorithm

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    get_hashers.cache_clear()
    get_hashers_by_algorithm.cache_clear()


@pytest.fixture
def finance_ops(db):
    return UserFactory(username="fiona", roles=["finance_ops"])


@pytest.fixture
def integration_admin(db):
    return UserFactory(username="ivan", roles=["integration_admin"])


@pytest.fixture
def manager(db):
    return UserFactory(username="mona", roles=["manager"])


@pytest.fixture
def auditor(db):
    return UserFactory(username="aude", roles=["auditor"])


@pytest.fixture
def netsuite(tmp_path, settings) -> Iterator[str]:
    """A real NetSuite emulator on a free local port, with the app pointed at it."""
    from connectors.netsuite.emulator import start_emulator, stop_emulator

    server, base_url = start_emulator(tmp_path / "netsuite.sqlite3", token="test-token")
    settings.NETSUITE_BASE_URL = base_url
    settings.NETSUITE_TOKEN = "test-token"
    settings.NETSUITE_TIMEOUT = 2.0
    try:
        yield base_url
    finally:
        stop_emulator(server)


def drain(max_rounds: int = 100) -> None:
    """Run, in this process, every inbox event and every due step until nothing moves.

    The same engine functions the django-q2 tasks call; the end-to-end tests use real workers.
    """
    from sync.engine import step_run
    from sync.models import InboundEvent, Journey, Step
    from sync.services.dispatch import inbound_event_dispatch

    for _ in range(max_rounds):
        moved = False
        for event_id in InboundEvent.objects.filter(state=InboundEvent.State.RECEIVED).values_list(
            "pk", flat=True
        ):
            inbound_event_dispatch(event_id=event_id)
            moved = True
        due = Step.objects.filter(
            journey__state__in=Journey.ACTIVE, state__in=Step.RUNNABLE
        ).filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now()))
        for step_id in due.order_by("journey_id", "position").values_list("pk", flat=True):
            if step_run(step_id) != "not_claimed":
                moved = True
        if not moved:
            return
    raise AssertionError("journeys did not settle")


def emulator_records(base_url: str, record_type: str = "journalEntry") -> list[dict]:
    """What the NetSuite emulator holds, read over HTTP like any client would."""
    import httpx

    resp = httpx.get(f"{base_url}/_emulator/records/{record_type}", timeout=5)
    resp.raise_for_status()
    body = json.loads(resp.text, parse_float=Decimal)
    return body["records"] if isinstance(body, dict) else body


def emulator_requests(base_url: str) -> list[dict]:
    """The emulator's log of service requests (method, path, status, correlation id)."""
    import httpx

    resp = httpx.get(f"{base_url}/_emulator/requests", timeout=5)
    resp.raise_for_status()
    return resp.json()["requests"]


def emulator_faults(base_url: str, *rules: dict) -> None:
    import httpx

    httpx.post(
        f"{base_url}/_emulator/faults", json={"rules": list(rules)}, timeout=5
    ).raise_for_status()
