"""Playwright drives Debian's chromium against pytest-django's live server."""

from __future__ import annotations

import pytest

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "pw-for-tests-123"  # tests.factories.UserFactory's


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

    def _sign_in(username: str, password: str = PASSWORD):
        page.goto(f"{live_server.url}/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        return page

    return _sign_in
