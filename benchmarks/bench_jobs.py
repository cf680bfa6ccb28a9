"""Jobs the throughput benchmark dispatches; its workers import this module with ``-A``.

Each worker process talks to Redis through one client of its own, created on first use
from ``JOBKIT_REDIS_URL`` (after the supervisor forks, so no connection is shared).
"""

from __future__ import annotations

import os
import time
from typing import cast

import redis
from pydantic import BaseModel

from jobkit import BaseJob

QUEUE = "bench"
COUNTER_KEY = "bench:counter"
FIRST_KEY = "bench:first"  # list: time.time() of the first job, pushed by that job
DONE_KEY = "bench:done"  # list: time.time() of the job that brought the counter to `total`
MARKS_KEY = "bench:marks"  # list: "pid time.time()" of each Mark job, at its start

_client: redis.Redis | None = None
_client_pid = 0


def client() -> redis.Redis:
    """This process's Redis client, created lazily (again in a forked child)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(os.environ["JOBKIT_REDIS_URL"])
        _client_pid = os.getpid()
    return _client


class IncrParams(BaseModel):
    total: int = 0  # the job that brings the counter to this pushes DONE_KEY


class Incr(BaseJob):
    """A no-op job: one INCR of a counter. The first and the last job also leave a mark
    the benchmark blocks on, so it never polls."""

    name = "bench.incr"
    queue = QUEUE

    Params = IncrParams

    def perform(self) -> None:
        total = cast(IncrParams, self.params).total
        r = client()
        count = r.incr(COUNTER_KEY)
        if count == 1:
            r.rpush(FIRST_KEY, repr(time.time()))
        if count == total:
            r.rpush(DONE_KEY, repr(time.time()))


class Stamp(BaseJob):
    """Returns the wall-clock time its perform() started: pickup latency."""

    name = "bench.stamp"
    queue = QUEUE

    def perform(self) -> float:
        return time.time()


class Mark(BaseJob):
    """Pushes its process id and the wall-clock time its perform() started: which child
    ran it, and when (the start-up benchmark's recycled children)."""

    name = "bench.mark"
    queue = QUEUE

    def perform(self) -> None:
        client().rpush(MARKS_KEY, f"{os.getpid()} {time.time()!r}")
