"""Jobs of the doctor and repair tests: each success is counted under its job's id, so a
job that succeeded twice shows it (workers load them with ``-A tests.support.repair_jobs``)."""

from __future__ import annotations

import os
import time
from typing import NoReturn

from pydantic import BaseModel

from jobkit import BaseJob, Retry, get_store

TALLY = "repair-tests:tally"  # job id -> how many times it succeeded


class Tally(BaseJob):
    """Sets ``marker`` (if any), sleeps ``seconds``, then counts its success in TALLY."""

    class Params(BaseModel):
        seconds: float = 0.0
        marker: str = ""

    def perform(self) -> None:
        if self.params.marker:
            get_store().redis.set(self.params.marker, os.getpid())
        time.sleep(self.params.seconds)
        get_store().redis.hincrby(TALLY, self.job_id, 1)


class Doomed(BaseJob):
    """Fails at once, with no retry: dead."""

    retry = Retry(max_attempts=1)

    def perform(self) -> NoReturn:
        raise RuntimeError("doomed")
