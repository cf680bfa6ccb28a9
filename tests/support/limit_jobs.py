"""Job classes with fleet-wide limits (concurrency, rate, unique); workers load them with
``-A tests.support.limit_jobs``. They live in their own queue, ``limits``, so their counts start
empty in every test."""

from __future__ import annotations

import time
from datetime import timedelta

from pydantic import BaseModel

from jobkit import BaseJob
from tests.support.jobs import r

QUEUE = "limits"


class Pair(BaseJob):
    """At most two run at once, across every worker; each records how many ran with it."""

    queue = QUEUE
    concurrency = 2

    class Params(BaseModel):
        seconds: float = 0.3

    def perform(self) -> None:
        client = r()
        client.rpush("pair:seen", client.incr("pair:now"))
        try:
            time.sleep(self.params.seconds)
        finally:
            client.decr("pair:now")


class Quick(BaseJob):
    """No limit: must not wait behind held-back jobs."""

    queue = QUEUE

    def perform(self) -> None:
        r().rpush("quick:done", self.job_id)


class Paced(BaseJob):
    """Five starts a second, spaced evenly (one every 200 ms)."""

    queue = QUEUE
    rate_limit = "5/s"

    def perform(self) -> None:
        r().rpush("paced:starts", time.time())


class Once(BaseJob):
    """One job per key while it is queued or running."""

    queue = QUEUE
    unique = True

    class Params(BaseModel):
        key: str
        seconds: float = 0.0

    def perform(self) -> str:
        time.sleep(self.params.seconds)
        return self.params.key


class OncePerSecond(BaseJob):
    """One job per key while it is queued or running, and at most a second."""

    queue = QUEUE
    unique_for = timedelta(seconds=1)

    class Params(BaseModel):
        key: str
