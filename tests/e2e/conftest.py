"""Real processes for end-to-end tests: the NetSuite emulator, django-q2's qcluster and the
engine clock, all pointed at the test database that pytest-django created."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _database_env() -> dict[str, str]:
    s = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
        return {"DATABASE_URL": f"postgres://{auth}@{s['HOST']}:{s['PORT']}/{s['NAME']}"}
    return {"DATABASE_URL": "", "SQLITE_PATH": str(s["NAME"])}


@dataclass
class Stack:
    netsuite_url: str
    env: dict[str, str]
    procs: dict[str, subprocess.Popen]
    logs: Path
    files: list = field(default_factory=list)

    def logfile(self, name: str):
        handle = (self.logs / f"{name}.log").open("wb")  # closed in the fixture's teardown
        self.files.append(handle)
        return handle

    def start_workers(self) -> None:
        py = sys.executable
        for name, args in {
            "qcluster": [py, "manage.py", "qcluster"],
            "clock": [py, "manage.py", "rct_clock"],
        }.items():
            self.procs[name] = subprocess.Popen(
                args,
                cwd=ROOT,
                env=self.env,
                stdout=self.logfile(name),
                stderr=subprocess.STDOUT,
            )

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


@pytest.fixture
def stack(transactional_db, tmp_path, settings) -> Iterator[Stack]:
    """NetSuite emulator + qcluster (2 workers) + clock as separate OS processes."""
    port = free_port()
    netsuite_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **_database_env(),
        "NETSUITE_BASE_URL": netsuite_url,
        "NETSUITE_TOKEN": "e2e-token",
        "NETSUITE_TIMEOUT": "3",
        "RCT_RETRY_BASE_SECONDS": "0.3",
        "RCT_CLOCK_INTERVAL_SECONDS": "0.3",
        "Q_WORKERS": "2",
        "PYTHONUNBUFFERED": "1",
    }
    # REDIS_URL passes through: with it set, test process and workers share the Redis broker.
    settings.NETSUITE_BASE_URL = netsuite_url
    settings.NETSUITE_TOKEN = "e2e-token"
    s = Stack(netsuite_url, env, {}, tmp_path)
    s.procs["netsuite"] = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connectors.netsuite.emulator",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "netsuite.sqlite3"),
            "--token",
            "e2e-token",
        ],
        cwd=ROOT,
        env=env,
        stdout=s.logfile("netsuite"),
        stderr=subprocess.STDOUT,
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"{netsuite_url}/_emulator/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout=20, what="the NetSuite emulator")
    try:
        yield s
    finally:
        for proc in s.procs.values():
            proc.terminate()
        for proc in s.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for handle in s.files:
            handle.close()
        connection.close()
