"""Real processes for end-to-end tests: the NetSuite emulator, django-q2's qcluster and the
engine clock, all pointed at the test database that pytest-django created."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
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

    def start(
        self, name: str, command: str, *, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """Start ``manage.py <command>`` as process ``name`` (log ``<name>.log``) with the
        stack's environment plus ``env``. Each process leads its own process group, so
        ``kill_group`` takes a qcluster down with every worker it forked, as a crash would."""
        if name in self.procs and self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is already running")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", command],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=self.logfile(name),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_workers(self, *, clusters: int = 1, env: dict[str, str] | None = None) -> None:
        """``clusters`` qclusters (``qcluster``, ``qcluster-2``, ...) and one clock, all
        with ``env`` on top of the stack's. Clusters share the cluster name, hence the queue."""
        for n in range(1, clusters + 1):
            self.start("qcluster" if n == 1 else f"qcluster-{n}", "qcluster", env=env)
        self.start("clock", "rct_clock", env=env)

    def kill_group(self, name: str) -> None:
        """SIGKILL the process and everything in its process group (a crashed host)."""
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self, name: str) -> None:
        """SIGTERM and wait, as an orderly shutdown."""
        proc = self.procs[name]
        proc.terminate()
        proc.wait(timeout=15)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def pull_tasks(self, name: str) -> int:
        """How many ``advance`` pull tasks (which claim due steps themselves) this process's
        workers started."""
        return len(re.findall(r"processing advance 'sync\.tasks\.advance'", self.log(name)))

    def step_tasks(self, name: str) -> list[int]:
        """The step id of every ``run_step`` task this process's workers started, in order
        (django-q2 logs each task as it starts it)."""
        pattern = r"processing step-(\d+) 'sync\.tasks\.run_step'"
        return [int(m) for m in re.findall(pattern, self.log(name))]

    # The NetSuite emulator, read over HTTP as any client would.

    def records(self, record_type: str = "journalEntry") -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.netsuite_url}/_emulator/records/{record_type}", timeout=5)
        resp.raise_for_status()
        return json.loads(resp.text, parse_float=Decimal)["records"]

    def record(self, external_id: str, record_type: str = "journalEntry") -> dict[str, Any]:
        matches = [r for r in self.records(record_type) if r["externalId"] == external_id]
        assert len(matches) == 1, f"{len(matches)} {record_type} records for {external_id}"
        return matches[0]

    def requests(self) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.netsuite_url}/_emulator/requests", timeout=5)
        resp.raise_for_status()
        return resp.json()["requests"]

    def faults(self, *rules: dict[str, Any]) -> None:
        httpx.post(
            f"{self.netsuite_url}/_emulator/faults", json={"rules": list(rules)}, timeout=5
        ).raise_for_status()


def settled_journey(journey_type: str, business_key: str, *, timeout: float = 60):
    """Wait until the journey exists and has stopped moving (terminal or in exception), and
    return it; the caller asserts which state it ended in."""
    from sync.models import Journey

    done = Journey.TERMINAL | {Journey.State.EXCEPTION}

    def settled() -> bool:
        return Journey.objects.filter(
            journey_type=journey_type, business_key=business_key, state__in=done
        ).exists()

    wait_for(settled, timeout=timeout, what=f"{journey_type} {business_key} to settle")
    return Journey.objects.get(journey_type=journey_type, business_key=business_key)


def describe(journey) -> str:
    """Each step's state, attempts and error, for a failing assertion's message."""
    return "; ".join(
        f"{s.name}={s.state}/{s.attempts} {s.error_message}".strip()
        for s in journey.steps.order_by("position")
    )


def deliver(live_server, event: dict[str, Any]) -> httpx.Response:
    """POST a Stripe event, signed now, to the live app's webhook endpoint."""
    from connectors.stripe import emulator as se

    return se.deliver(f"{live_server.url}/webhooks/stripe/", event, settings.STRIPE_WEBHOOK_SECRET)


def record_lines(record: dict[str, Any]) -> list[tuple[str, Decimal, Decimal]]:
    """(account, debit, credit) per line of an emulator journal entry record."""
    return [
        (ln["account"], ln["debit"] or Decimal(0), ln["credit"] or Decimal(0))
        for ln in record["lines"]
    ]


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
            if proc.poll() is None:
                proc.terminate()
        for proc in s.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for handle in s.files:
            handle.close()
        connection.close()
