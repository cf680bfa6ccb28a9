"""Example jobs: run a worker with `jobkit worker -A jobs_example -q high,default,low`.

Every job the example apps dispatch is registered by that one `-A jobs_example`: the
classes below (for `jobs_example.web`), and the modules imported at the end, one per
example app (`reliable`, `flask_app`, `tasks`, `pg_system`; see docs/examples.md). None
of them imports a web framework, so a worker needs no web stack.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from typing import Any

from pydantic import BaseModel, Field

from jobkit import BaseJob, Retry, RetryLater, cron


class Add(BaseJob):
    """The smallest job: add two numbers."""

    queue = "high"

    class Params(BaseModel):
        a: int
        b: int

    def perform(self) -> int:
        return self.params.a + self.params.b


class Echo(BaseJob):
    """Simulates work and returns its payload: what the API's `POST /jobs {"payload"}` runs."""

    name = "jobs_example.Echo"

    class Params(BaseModel):
        payload: dict[str, Any]
        seconds: float = Field(default=0.2, ge=0, le=60)

    def perform(self) -> dict[str, Any]:
        time.sleep(self.params.seconds)
        return self.params.payload


class TrainModel(BaseJob):
    """Stands in for model training: CPU work for a while, returns metrics."""

    queue = "low"
    timeout = 60.0

    class Params(BaseModel):
        epochs: int = Field(default=3, ge=1, le=100)
        seconds_per_epoch: float = Field(default=0.3, ge=0)

    def perform(self) -> dict[str, float]:
        loss = 1.0
        for _ in range(self.params.epochs):
            deadline = time.monotonic() + self.params.seconds_per_epoch
            digest = b"seed"
            while time.monotonic() < deadline:
                digest = hashlib.sha256(digest).digest()
            loss *= 0.6
        return {"epochs": self.params.epochs, "loss": round(loss, 4)}


class SendEmail(BaseJob):
    """An I/O-bound async job."""

    class Params(BaseModel):
        to: str
        subject: str

    async def perform(self) -> dict[str, str]:
        await asyncio.sleep(0.05)
        return {"sent_to": self.params.to, "subject": self.params.subject}


class FlakyReport(BaseJob):
    """Fails its first attempts on purpose, to show back-off and retries."""

    retry = Retry(max_attempts=4, base=0.2, factor=2.0, jitter=False)

    class Params(BaseModel):
        fail_times: int = 2

    def perform(self) -> str:
        if self.attempt <= self.params.fail_times:
            raise ConnectionError(f"upstream unavailable (attempt {self.attempt})")
        return f"report built on attempt {self.attempt}"


class PollUpstream(BaseJob):
    """Asks to be run again later with RetryLater until the upstream is ready."""

    retry = Retry(max_attempts=5)

    def perform(self) -> str:
        if random.random() < 0.5 and self.attempt < 3:
            raise RetryLater(0.2, "upstream not ready")
        return "upstream ready"


class AlwaysFails(BaseJob):
    """Ends in the dead-letter set, to show `jobkit dead list`."""

    retry = Retry(max_attempts=2, base=0.1, jitter=False)

    class Params(BaseModel):
        reason: str = "bad data"

    def perform(self) -> None:
        raise ValueError(self.params.reason)


class NightlyReport(BaseJob):
    """A cron job: run by `jobkit scheduler -A jobs_example` at 02:00 Berlin time."""

    schedule = cron("0 2 * * *", tz="Europe/Berlin")

    def perform(self) -> str:
        return "nightly report built"


class Heartbeat(BaseJob):
    """A cron job every 30 seconds, so a running scheduler shows its work quickly."""

    queue = "low"
    schedule = cron("* * * * * */30", misfire="skip")

    def perform(self) -> str:
        return "alive"


# Each example app's jobs, registered with these (they import nothing from here).
from jobs_example import flask_jobs, pg_etl, pg_jobs, reliable_jobs, tasks_jobs  # noqa: E402, F401
from jobs_example.celery_style import tasks as celery_tasks  # noqa: E402, F401
