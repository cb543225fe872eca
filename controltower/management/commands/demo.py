"""One command for a local demo: web app, workers, clock and the NetSuite emulator together.

Migrates, seeds the demo master data and logins, starts every process, sends a month of
signed Stripe events through the real webhook endpoint (first run only), prints the URL
and the logins, and stops everything on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from connectors.stripe import emulator as se
from connectors.stripe.demo import demo_events
from controltower.management.commands.seed_demo import DEMO_PASSWORD, DEMO_USERS
from sync.models import InboundEvent
from sync.services.recognition import recognition_run_monthly


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return True
        except httpx.HTTPError:
            time.sleep(0.3)
    return False


class Command(BaseCommand):
    help = "Run the whole control tower locally with demo data (web, workers, emulator)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--netsuite-port", type=int, default=8765)
        parser.add_argument("--no-events", action="store_true", help="Do not send demo events.")
        parser.add_argument(
            "--exit-after-events",
            action="store_true",
            help="Stop once the demo events are processed (for smoke tests).",
        )

    def handle(
        self,
        *args,
        port: int,
        netsuite_port: int,
        no_events: bool,
        exit_after_events: bool,
        **options,
    ):
        root = Path(settings.BASE_DIR)
        data = Path(settings.DATA_DIR)
        data.mkdir(parents=True, exist_ok=True)
        call_command("migrate", verbosity=0)
        call_command("seed_demo")
        netsuite_url = f"http://127.0.0.1:{netsuite_port}"
        env = {**os.environ, "NETSUITE_BASE_URL": netsuite_url, "PYTHONUNBUFFERED": "1"}
        py = sys.executable
        commands = {
            "netsuite-emulator": [
                py,
                "-m",
                "connectors.netsuite.emulator",
                "--port",
                str(netsuite_port),
                "--db",
                str(data / "netsuite.sqlite3"),
                "--token",
                settings.NETSUITE_TOKEN,
            ],
            "workers": [py, "manage.py", "qcluster"],
            "clock": [py, "manage.py", "rct_clock"],
            "web": [py, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        }
        procs: dict[str, subprocess.Popen] = {}
        logs = data / "logs"
        logs.mkdir(exist_ok=True)
        handles = []
        try:
            for name, cmd in commands.items():
                handle = (logs / f"{name}.log").open("ab")
                handles.append(handle)
                procs[name] = subprocess.Popen(
                    cmd, cwd=root, env=env, stdout=handle, stderr=subprocess.STDOUT
                )
            base = f"http://127.0.0.1:{port}"
            if not _wait_http(f"{netsuite_url}/_emulator/health", 30) or not _wait_http(base, 60):
                raise CommandError(f"a process did not start; see the logs in {logs}")
            if not no_events and not InboundEvent.objects.exists():
                events = demo_events()
                for event in events:
                    se.deliver(f"{base}/webhooks/stripe/", event, settings.STRIPE_WEBHOOK_SECRET)
                self.stdout.write(
                    f"sent {len(events)} signed Stripe events to {base}/webhooks/stripe/"
                )
                self._wait_settled()
                # What the monthly schedule does on the 1st: recognize the month that ended.
                started = recognition_run_monthly()
                self.stdout.write(f"revenue recognition for last month started: {started}")
            self._banner(base, netsuite_url, logs)
            if exit_after_events:
                self._wait_settled()
                return
            stop = {"now": False}
            signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
            while not stop["now"]:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        raise CommandError(f"{name} exited ({proc.returncode}); see {logs}")
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("\nstopping…")
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
            for handle in handles:
                handle.close()

    def _wait_settled(self, timeout: float = 180) -> None:
        from sync.models import Journey

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not Journey.objects.filter(state__in=Journey.ACTIVE).exists() and not (
                InboundEvent.objects.filter(state=InboundEvent.State.RECEIVED).exists()
            ):
                counts = {
                    s: Journey.objects.filter(state=s).count()
                    for s in (Journey.State.COMPLETED, Journey.State.EXCEPTION)
                }
                self.stdout.write(f"settled: {counts}")
                return
            time.sleep(1)
        raise CommandError("demo journeys did not settle in time")

    def _banner(self, base: str, netsuite_url: str, logs: Path) -> None:
        w = self.stdout.write
        w("")
        w("Revenue Control Tower is running.")
        w(f"  Open {base}/  (Ctrl-C stops everything)")
        w(f"  Logins (password {DEMO_PASSWORD}):")
        for username, _, what in DEMO_USERS:
            w(f"    {username:<6} {what}")
        w(f"    admin  superuser (Django admin at {base}/admin/)")
        w(f"  NetSuite emulator: {netsuite_url}/_emulator/records/journalEntry")
        w(f"  Ledger reports: {base}/reports/   API schema: {base}/api/schema/")
        w(f"  Logs: {logs}")
        w("")
