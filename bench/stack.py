"""The processes a burst runs against: NetSuite emulator, qcluster and rct_clock as OS
processes (as ``tests/e2e/conftest.py`` starts them), and a sampler of their memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    """The running processes; ``stop()`` ends exactly the ones it started."""

    env: dict[str, str]
    logs: Path
    netsuite_url: str = ""
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    _files: list = field(default_factory=list)

    def _start(self, name: str, args: list[str]) -> None:
        handle = (self.logs / f"{name}.log").open("wb")
        self._files.append(handle)
        self.procs[name] = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT
        )

    def start_emulator(self, token: str) -> None:
        port = free_port()
        self.netsuite_url = f"http://127.0.0.1:{port}"
        self._start(
            "netsuite",
            [
                sys.executable,
                "-m",
                "connectors.netsuite.emulator",
                "--port",
                str(port),
                "--db",
                str(self.logs / "netsuite.sqlite3"),
                "--token",
                token,
                "--log-level",
                "WARNING",
            ],
        )
        self._wait(self._emulator_up, 20, "the NetSuite emulator")

    def _emulator_up(self) -> bool:
        try:
            return httpx.get(f"{self.netsuite_url}/_emulator/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def start_workers(self) -> None:
        self._start("qcluster", [sys.executable, "manage.py", "qcluster"])
        self._start("clock", [sys.executable, "manage.py", "rct_clock"])
        self._wait(lambda: b"running" in self.log_bytes("qcluster"), 60, "qcluster to start")

    def log_bytes(self, name: str) -> bytes:
        try:
            return (self.logs / f"{name}.log").read_bytes()[-200_000:]
        except FileNotFoundError:
            return b""

    def _wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode} while waiting for {what}; "
                        f"see {self.logs / (name + '.log')}"
                    )
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {timeout}s waiting for {what}")

    def check_alive(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is not None]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for handle in self._files:
            handle.close()
        self._files.clear()


# --- memory ------------------------------------------------------------------------------


def _rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return 0  # a zombie has no VmRSS line


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'
        ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


@dataclass
class ProcMemory:
    label: str
    pid: int
    first_kb: int = 0
    peak_kb: int = 0
    last_kb: int = 0


class RssSampler(threading.Thread):
    """Samples VmRSS of named root processes (with all their descendants when asked: qcluster
    forks its workers) every ``interval`` seconds, keeping first, peak and last per process,
    and the peak of each root's whole tree. ``roots``: name -> (pid, with descendants)."""

    def __init__(self, roots: dict[str, tuple[int, bool]], interval: float = 0.5) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.roots = roots
        self.interval = interval
        self.procs: dict[int, ProcMemory] = {}
        self.tree_peak_kb: dict[str, int] = {}
        self._stop_event = threading.Event()
        self._child_no: dict[str, int] = {}

    def sample(self) -> None:
        kids = _children_map() if os.path.isdir("/proc") else {}
        for name, (root, descend) in self.roots.items():
            total = 0
            stack = [(root, True)]
            while stack:
                pid, is_root = stack.pop()
                if descend:
                    stack.extend((k, False) for k in kids.get(pid, ()))
                rss = _rss_kb(pid)
                if rss is None:
                    continue
                mem = self.procs.get(pid)
                if mem is None:
                    if is_root:
                        label = name
                    else:
                        self._child_no[name] = self._child_no.get(name, 0) + 1
                        label = f"{name} child {self._child_no[name]}"
                    mem = self.procs[pid] = ProcMemory(label, pid, first_kb=rss)
                mem.peak_kb = max(mem.peak_kb, rss)
                mem.last_kb = rss
                total += rss
            self.tree_peak_kb[name] = max(self.tree_peak_kb.get(name, 0), total)

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
