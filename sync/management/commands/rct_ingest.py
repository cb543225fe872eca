"""Load Stripe events from a file into the inbox: a backfill after an outage, or events read
from Stripe's API (``GET /v1/events``, one JSON object per line).

The whole file is checked first; if any line is not a valid event, nothing is loaded and every
bad line is reported. Then the events go into the inbox in batches, exactly like webhooks
(an event already held is left alone), and the workers take them from there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from connectors.base import WebhookEnvelope
from connectors.stripe.webhooks import WebhookRejected, event_parse
from sync.services.inbox import inbound_events_receive_bulk

BATCH = 500
MAX_REPORTED = 20


def _envelopes(path: Path, errors: list[str]) -> Iterator[WebhookEnvelope]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield event_parse(json.loads(line))
            except json.JSONDecodeError as exc:
                errors.append(f"line {number}: not JSON ({exc.msg})")
            except WebhookRejected as exc:
                errors.append(f"line {number}: {exc.message}")


class Command(BaseCommand):
    help = "Load Stripe events (JSON lines) into the inbox; all or nothing on a bad line."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="File of Stripe events, one per line.")
        parser.add_argument("--source", default="stripe", choices=["stripe"])

    def handle(self, *args, path: Path, source: str, **options):
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        errors: list[str] = []
        total = sum(1 for _ in _envelopes(path, errors))
        if errors:
            shown = "\n".join(errors[:MAX_REPORTED])
            more = (
                f"\n... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
            )
            raise CommandError(
                f"{len(errors)} bad line(s) in {path}; nothing was loaded:\n{shown}{more}"
            )
        created = 0
        batch: list[WebhookEnvelope] = []
        for envelope in _envelopes(path, errors):
            batch.append(envelope)
            if len(batch) == BATCH:
                created += inbound_events_receive_bulk(source_system=source, envelopes=batch)
                batch = []
        if batch:
            created += inbound_events_receive_bulk(source_system=source, envelopes=batch)
        self.stdout.write(
            f"{total} events read, {created} new in the inbox, "
            f"{total - created} already held (left alone)."
        )
