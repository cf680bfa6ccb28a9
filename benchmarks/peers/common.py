"""What every library's jobs do, and the keys the benchmark reads.

An incr job does one ``INCR`` of a counter: every library pays the same round trip inside the
job. The job that brings the counter to ``total`` also pushes the time, so the benchmark
blocks on that list instead of polling. A stamp job pushes the time it started.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

URL_ENV = "BENCH_REDIS_URL"
QUEUE = "compare"
COUNTER_KEY = "compare:counter"
DONE_KEY = "compare:done"  # list: time.time() of the job that brought the counter to `total`
STAMP_KEY = "compare:stamp"  # list: time.time() each stamp job started

_client: redis.Redis | None = None
_client_pid = 0
_aclient: Any = None  # redis.asyncio.Redis, bound to the event loop of its first use
_aclient_pid = 0


def redis_url() -> str:
    return os.environ[URL_ENV]


def client() -> redis.Redis:
    """This process's client, created on first use (again in a forked child)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(redis_url())
        _client_pid = os.getpid()
    return _client


def incr(total: int) -> None:
    r = client()
    if r.incr(COUNTER_KEY) == total:
        r.rpush(DONE_KEY, repr(time.time()))


def stamp() -> None:
    started = time.time()
    client().rpush(STAMP_KEY, repr(started))


def aclient() -> Any:
    """This process's asyncio client (for the asyncio libraries' jobs)."""
    global _aclient, _aclient_pid
    if _aclient is None or _aclient_pid != os.getpid():
        import redis.asyncio

        _aclient = redis.asyncio.Redis.from_url(redis_url())
        _aclient_pid = os.getpid()
    return _aclient


async def aincr(total: int) -> None:
    r = aclient()
    if await r.incr(COUNTER_KEY) == total:
        await r.rpush(DONE_KEY, repr(time.time()))


async def astamp() -> None:
    started = time.time()
    await aclient().rpush(STAMP_KEY, repr(started))
