"""Dashboard figures kept as summaries, so the SLA dashboard reads a few hundred rows instead
of counting a million journeys.

Database triggers on ``sync_journey`` and ``sync_exceptioncase`` append *deltas* (signed
contributions of the old and new row of every relevant change) to the two delta tables; no
writer ever updates a shared counter row, so the engine's writers never queue behind each
other. A periodic task (``sync.services.stats.stats_rollup``) moves the deltas into the
summary tables. A read adds the deltas not rolled up yet, so the figures are exact at read
time. The trigger SQL is in ``sync/stats_sql.py``.

Keys use ``entity_id`` 0 for "no legal entity yet" (a plain integer, not a foreign key: a
summary row must not stop an entity from being deleted, and 0 keeps the unique keys simple).
"""

from __future__ import annotations

from django.db import models

from sync.stats_sql import LATENCY_BOUNDS

LATENCY_BUCKETS = len(LATENCY_BOUNDS) + 1


class JourneyStatDelta(models.Model):
    """Append-only, written by triggers: one signed contribution to the journey figures.

    Flow figures (``started`` on ``day`` = the day the journey was created; ``completed``,
    ``on_time`` and ``latency_bucket`` on ``day`` = the day it completed) and gauges
    (``active``, ``in_exception``, ``at_risk``, ``breached``: open journeys now)."""

    journey_type = models.CharField(max_length=64)
    entity_id = models.IntegerField()
    day = models.DateField()
    latency_bucket = models.SmallIntegerField(default=-1)
    started = models.IntegerField(default=0)
    completed = models.IntegerField(default=0)
    on_time = models.IntegerField(default=0)
    active = models.IntegerField(default=0)
    in_exception = models.IntegerField(default=0)
    at_risk = models.IntegerField(default=0)
    breached = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"delta {self.journey_type}/{self.entity_id} {self.day}"


class ExceptionStatDelta(models.Model):
    """Append-only, written by triggers: +1/-1 to the open exceptions created in ``hour``."""

    journey_type = models.CharField(max_length=64)
    entity_id = models.IntegerField()
    hour = models.DateTimeField()
    open = models.IntegerField()

    def __str__(self) -> str:
        return f"delta {self.journey_type}/{self.entity_id} {self.hour:%Y-%m-%d %H}h"


class JourneyDayStats(models.Model):
    """Journeys started and completed per day, type and entity; ``latency`` is the histogram
    of end-to-end latency (business event to completion) over ``LATENCY_BOUNDS``."""

    day = models.DateField()
    journey_type = models.CharField(max_length=64)
    entity_id = models.IntegerField()
    started = models.IntegerField(default=0)
    completed = models.IntegerField(default=0)
    on_time = models.IntegerField(default=0)
    latency = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "journey_type", "entity_id"], name="uniq_journey_day_stats"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.journey_type}/{self.entity_id}"


class JourneyGauge(models.Model):
    """Open journeys now, per type and entity."""

    journey_type = models.CharField(max_length=64)
    entity_id = models.IntegerField()
    active = models.IntegerField(default=0)
    in_exception = models.IntegerField(default=0)
    at_risk = models.IntegerField(default=0)
    breached = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["journey_type", "entity_id"], name="uniq_journey_gauge")
        ]

    def __str__(self) -> str:
        return f"now {self.journey_type}/{self.entity_id}"


class ExceptionOpenStats(models.Model):
    """Open exceptions (open or in progress) per hour of creation, type and entity: the ageing
    buckets are sums over hours."""

    hour = models.DateTimeField()
    journey_type = models.CharField(max_length=64)
    entity_id = models.IntegerField()
    open = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "journey_type", "entity_id"], name="uniq_exception_open_stats"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.journey_type}/{self.entity_id}"
