"""Playwright drives Debian's chromium against pytest-django's live server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory's
# Screenshots of every screen, kept by CI as artifacts (RCT_SCREENSHOT_DIR to move them).
SHOTS = Path(
    os.environ.get(
        "RCT_SCREENSHOT_DIR", Path(__file__).resolve().parents[2] / "var" / "screenshots"
    )
)


@pytest.fixture
def shot(request):
    """``shot("name")`` saves a full-page screenshot of the test's page (or of ``on``) as
    ``SHOTS/name.png``."""
    SHOTS.mkdir(parents=True, exist_ok=True)

    def _shot(name: str, on=None) -> Path:
        path = SHOTS / f"{name}.png"
        (on or request.getfixturevalue("page")).screenshot(path=str(path), full_page=True)
        return path

    return _shot


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture
def sign_in(page, live_server):
    """Sign in through the login form, as a person does."""

    def _sign_in(username: str, password: str = PASSWORD, then: str = "/"):
        page.goto(f"{live_server.url}{then}")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        return page

    return _sign_in
