"""The engine's clock: sweeps for due work every second or so.

django-q2 has no delayed tasks, and its scheduler wakes only every 30 s; retries with
backoff and Retry-After need finer timing. This process re-enqueues due steps (and anything
lost), marks SLA states, and every ``STATS_ROLLUP_SECONDS`` rolls the dashboard deltas up.
Running two is harmless (every step is claimed before it acts; rollups are serialized); the
django-q2 minute schedules are the safety net if none runs.
"""

from __future__ import annotations

import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from sync.engine import sweep
from sync.services.stats import stats_rollup

log = logging.getLogger("sync.clock")


class Command(BaseCommand):
    help = "Sweep for due journey steps every RCT_CLOCK_INTERVAL_SECONDS until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Sweep once and exit.")

    def handle(self, *args, once: bool = False, **options):
        stop = False

        def _stop(signum, frame):
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        interval = settings.RCT["CLOCK_INTERVAL_SECONDS"]
        rollup_every = settings.RCT["STATS_ROLLUP_SECONDS"]
        next_rollup = 0.0
        log.info("clock started, sweeping every %.1fs", interval)
        while not stop:
            close_old_connections()
            try:
                # Whether anything is due is all the top-up needs: counting a backlog of
                # hundreds of due steps cost PostgreSQL 60 ms a tick in the burst.
                counts = sweep(limit=1)
                if counts["events"] or counts["steps"]:
                    log.info("swept: %s", counts)
            except Exception:
                log.exception("sweep failed; trying again next tick")
            if time.monotonic() >= next_rollup:
                next_rollup = time.monotonic() + rollup_every
                try:
                    stats_rollup()
                except Exception:
                    log.exception("dashboard rollup failed; trying again later")
            if once:
                break
            time.sleep(interval)
        log.info("clock stopped")
