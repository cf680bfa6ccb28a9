"""Jobs for the scheduler tests: every-second schedules, one per misfire policy, and a job
that records when it started (for delayed-job lateness).

The cron jobs go to their own queue so the workers of the delayed-job tests (queue
``default``) never take them: the tests count them in Redis instead.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from jobkit import BaseJob, cron

CRON_QUEUE = "sched-cron"
EVERY_SECOND = "* * * * * *"  # six fields: the sixth is seconds


class TickOnce(BaseJob):
    """Every second; after downtime, one catch-up run."""

    queue = CRON_QUEUE
    schedule = cron(EVERY_SECOND, misfire="once", grace=1)

    def perform(self) -> None:
        return None


class TickAll(BaseJob):
    """Every second; after downtime, every missed slot runs."""

    queue = CRON_QUEUE
    schedule = cron(EVERY_SECOND, misfire="all", grace=1)

    def perform(self) -> None:
        return None


class TickSkip(BaseJob):
    """Every second, with params; after downtime, missed slots are dropped."""

    queue = CRON_QUEUE

    class Params(BaseModel):
        region: str

    schedules = (cron(EVERY_SECOND, params={"region": "eu"}, misfire="skip", grace=1, name="eu"),)

    def perform(self) -> None:
        return None


class Stamp(BaseJob):
    """Returns the wall-clock time it started (delayed-job lateness)."""

    result_ttl = 600

    def perform(self) -> float:
        return time.time()
