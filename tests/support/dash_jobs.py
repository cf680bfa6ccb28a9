"""Jobs for the dashboard's browser tests: a job that runs for a while, one that fails for
good with the message it is given (also markup), and a cron schedule to run now."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from jobkit import BaseJob, Retry, cron

QUEUE = "dash"


class Nap(BaseJob):
    """Sleeps, then returns its params."""

    queue = QUEUE

    class Params(BaseModel):
        model_config = ConfigDict(extra="allow")
        seconds: float = 0.0

    def perform(self) -> dict[str, Any]:
        time.sleep(self.params.seconds)
        return self.params.model_dump()


class Doom(BaseJob):
    """Fails its one attempt with the message it is given: dead at once."""

    queue = QUEUE
    retry = Retry(max_attempts=1)

    class Params(BaseModel):
        model_config = ConfigDict(extra="allow")
        message: str = "doomed"

    def perform(self) -> None:
        raise RuntimeError(self.params.message)


class Report(BaseJob):
    """A cron job at 04:00 UTC that a test runs now."""

    queue = QUEUE
    schedule = cron("0 4 * * *")

    def perform(self) -> str:
        return "report built"
