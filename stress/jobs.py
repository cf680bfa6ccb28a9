"""The jobs a stress run dispatches (workers load them with ``-A stress.jobs``), and the
bookkeeping every execution leaves for the checker.

Each ``perform()`` records itself on the real Redis, directly (``STRESS_DIRECT_URL``: the
redis-server, or the Redis Cluster), never through the fault proxy, so counting is not
itself faulted. Its keys sit in the job's own shard (``{p:q}`` below is the hash tag of
the job's queue, see :mod:`jobkit.backend.keys`), so one script writes them together
with jobkit's ``waiter:<id>`` key, on a cluster too:

=================================  ======  ==============================================
key                                type    holds
=================================  ======  ==============================================
``{p:q}:<book>:run:<id>``          hash    execution token -> JSON attempt, pid, pgid,
                                           start_ms
``{p:q}:<book>:end:<id>``          hash    execution token -> JSON outcome (ok | raised),
                                           end_ms
``{p:q}:<book>:pid:<pid>``         string  the job of this queue this process runs now
                                           (recovery timing)
=================================  ======  ==============================================

An execution also sets jobkit's ``waiter:<id>`` key for its job, as a ``result()`` caller
that waits for ever would: from then on every move of the job into a final state pushes a
token on ``done:<id>`` in the same script, so the checker counts final transitions (two
means a success recorded twice) from Redis itself.

Why tokens in a hash and not ``INCR``: a bookkeeping write retried because Redis died after
running it but before answering would count twice; ``HSET`` of the same token is
idempotent. Times come from Redis ``TIME`` inside the scripts below.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import redis
from pydantic import BaseModel
from redis.exceptions import ClusterDownError, TryAgainError

from jobkit import BaseJob, Retry, get_settings
from jobkit.backend.keys import Keys, Shard
from stress.shards import Client, connect

BOOK_PREFIX = os.environ.get("STRESS_BOOK", "stress")
PATIENCE = 90.0  # seconds a bookkeeping write rides out a Redis outage before giving up
WAITER_MS = 3_600_000  # the waiter key outlives any run

T = TypeVar("T")

# One round trip per execution start: record it, say which job this process runs, register
# as a waiter; return (start_ms, executions so far, executions that raised so far).
_BEGIN = """
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({attempt = tonumber(ARGV[2]),
  pid = tonumber(ARGV[3]), pgid = tonumber(ARGV[4]), start_ms = ms}))
redis.call('SET', KEYS[3], ARGV[5])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[6])
local raised = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
  if cjson.decode(v).outcome == 'raised' then raised = raised + 1 end
end
return {ms, redis.call('HLEN', KEYS[1]), raised}
"""

# The end of an execution: its outcome, and this process no longer runs the job.
_END = """
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({outcome = ARGV[2], end_ms = ms}))
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return ms
"""


class Book:
    """Key names of the bookkeeping (one place, as jobkit's :class:`~jobkit.backend.keys.Keys`),
    each in the shard of the job it is about."""

    def __init__(self, prefix: str = BOOK_PREFIX, keys: Keys | None = None) -> None:
        self.prefix = prefix
        self.keys = keys or Keys()

    def runs(self, job_id: str) -> str:
        return f"{self.keys.of_job(job_id).base}:{self.prefix}:run:{job_id}"

    def ends(self, job_id: str) -> str:
        return f"{self.keys.of_job(job_id).base}:{self.prefix}:end:{job_id}"

    def pid(self, pid: int, shard: Shard) -> str:
        """What ``pid`` runs now of ``shard``'s queue."""
        return f"{shard.base}:{self.prefix}:pid:{pid}"


_client: tuple[int, Client] | None = None
# what a cluster answers while a master fails over: wait, as for a server that is down
_OUTAGE = (redis.ConnectionError, redis.TimeoutError, ClusterDownError, TryAgainError)


def direct() -> Client:
    """This process's client of the real Redis (made after a fork, per pid)."""
    global _client
    if _client is None or _client[0] != os.getpid():
        url = os.environ["STRESS_DIRECT_URL"]
        _client = (os.getpid(), connect(url, socket_timeout=5))
    return _client[1]


def patiently(fn: Callable[[], T], patience: float = PATIENCE) -> T:
    """``fn()``, retried while Redis is down or loading, or a cluster fails over (each is
    killed on purpose)."""
    deadline = time.monotonic() + patience
    pause = 0.05
    while True:
        try:
            return fn()
        except _OUTAGE:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(1.0, pause * 2)


class Execution:
    """One run of ``perform()``, recorded at its start and its end."""

    def __init__(self, job: BaseJob) -> None:
        self.job_id = job.job_id
        self.token = os.urandom(8).hex()
        jobkit_keys = Keys(get_settings().prefix)
        self.shard = jobkit_keys.of_job(job.job_id)
        self.book = Book(keys=jobkit_keys)
        client = direct()
        begin = client.register_script(_BEGIN)
        keys = [self.book.runs(job.job_id), self.book.ends(job.job_id)]
        keys += [self.book.pid(os.getpid(), self.shard), self.shard.waiter(job.job_id)]
        pid, pgid = os.getpid(), os.getpgid(0)
        args: list[str | int] = [self.token, job.attempt, pid, pgid, job.job_id, WAITER_MS]
        start_ms, executions, raised = patiently(lambda: begin(keys=keys, args=args))
        self.start_ms, self.number, self.raised_before = int(start_ms), executions, raised

    def end(self, outcome: str) -> None:
        end = direct().register_script(_END)
        keys = [self.book.ends(self.job_id), self.book.pid(os.getpid(), self.shard)]
        patiently(lambda: end(keys=keys, args=[self.token, outcome, self.job_id]))

    def result(self) -> dict[str, Any]:
        """What a successful execution returns: the checker ties it to its record."""
        self.end("ok")
        return {"id": self.job_id, "token": self.token, "execution": self.number}


class Planned(Exception):
    """The failure a job was planned to raise."""


class StressParams(BaseModel):
    """Every stress job carries its place in the plan (for reading logs)."""

    seq: int


class Instant(BaseJob):
    """Returns at once: expected to succeed exactly once."""

    name = "stress.Instant"
    retry = Retry(max_attempts=6, base=0.05, max_delay=0.5)
    Params = StressParams

    def perform(self) -> dict[str, Any]:
        return Execution(self).result()


class Delayed(BaseJob):
    """Dispatched with a delay; must not start before ``not_before_ms`` (Redis time)."""

    class Params(StressParams):
        not_before_ms: int

    name = "stress.Delayed"
    retry = Retry(max_attempts=6, base=0.05, max_delay=0.5)

    def perform(self) -> dict[str, Any]:
        return Execution(self).result()


class Flaky(BaseJob):
    """Raises on its first ``fail_times`` executions that get as far as raising, then
    succeeds: counted by executions, not attempt numbers, so a crash in between does not
    change how many failures it shows."""

    class Params(StressParams):
        fail_times: int

    name = "stress.Flaky"
    retry = Retry(max_attempts=8, base=0.05, factor=2.0, max_delay=0.5)

    def perform(self) -> dict[str, Any]:
        params: Any = self.params
        run = Execution(self)
        if run.raised_before < params.fail_times:
            run.end("raised")
            raise Planned(f"planned failure {run.raised_before + 1} of {params.fail_times}")
        return run.result()


class AlwaysFails(BaseJob):
    """Raises every time: expected dead with reason ``exception`` after max_attempts."""

    name = "stress.AlwaysFails"
    retry = Retry(max_attempts=3, base=0.05, factor=2.0, max_delay=0.3)
    Params = StressParams

    def perform(self) -> None:
        Execution(self).end("raised")
        raise Planned("this job always fails")


class Slow(BaseJob):
    """Sleeps ``seconds``: the one most often cut by a kill."""

    class Params(StressParams):
        seconds: float

    name = "stress.Slow"
    retry = Retry(max_attempts=8, base=0.05, max_delay=0.5)

    def perform(self) -> dict[str, Any]:
        params: Any = self.params
        run = Execution(self)
        time.sleep(params.seconds)
        return run.result()


class Canary(BaseJob):
    """Dispatched right after a fault, on a queue workers check first: how long it
    takes to succeed is the recovery time."""

    name = "stress.Canary"
    queue = "canary"
    retry = Retry(max_attempts=6, base=0.05, max_delay=0.5)
    Params = StressParams

    def perform(self) -> dict[str, Any]:
        return Execution(self).result()


class Probe(BaseJob):
    """Dispatched by the harness through the proxy with its enqueue reply dropped: the
    dispatch may be sent again, but the job must still run and succeed once."""

    name = "stress.Probe"
    queue = "canary"
    retry = Retry(max_attempts=6, base=0.05, max_delay=0.5)
    Params = StressParams

    def perform(self) -> dict[str, Any]:
        return Execution(self).result()


def loads(raw: str | None) -> Any:
    """A bookkeeping or result JSON value (None when absent or unreadable)."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
