"""Fixtures for the connector tests: a NetSuite emulator in this process and a client of it."""

import pytest

from connectors.netsuite import NetSuiteClient
from connectors.netsuite.emulator import start_emulator, stop_emulator

TOKEN = "test-token"


@pytest.fixture
def emulator(tmp_path):
    server, base = start_emulator(tmp_path / "netsuite.sqlite3", token=TOKEN)
    yield base
    stop_emulator(server)


@pytest.fixture
def client(emulator):
    return NetSuiteClient(emulator, token=TOKEN, timeout=5.0)
