"""Jobs for the ``jobkit serve`` tests: one that always fails (dead at once, for the
dead-letter routes and the bulk retry), and a cron schedule that never fires by itself in
a test's time (for the schedule routes: run now, pause, resume)."""

from __future__ import annotations

from pydantic import BaseModel

from jobkit import BaseJob, Retry, cron

BULK_QUEUE = "bulkq"


class Doomed(BaseJob):
    """Fails its one attempt: straight to the dead-letter set."""

    queue = BULK_QUEUE
    retry = Retry(max_attempts=1)

    class Params(BaseModel):
        n: int = 0

    def perform(self) -> None:
        raise ValueError(f"doomed {self.params.n}")


class Nightly(BaseJob):
    """A cron job at 03:00 UTC, with params."""

    queue = "nightly"

    class Params(BaseModel):
        region: str

    schedules = (cron("0 3 * * *", params={"region": "eu"}, name="eu"),)

    def perform(self) -> str:
        return f"built for {self.params.region}"
