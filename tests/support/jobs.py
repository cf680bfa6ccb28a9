"""Jobs the test suite dispatches; workers load them with ``-A tests.support.jobs``.

Side effects the tests check go to Redis (lists, counters, marker keys) through the
process's default store, so they are visible across the test and worker processes.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, NoReturn

import redis
from pydantic import BaseModel, ConfigDict, field_validator

from jobkit import BaseJob, Retry, RetryLater, get_store


def r() -> redis.Redis:
    """The Redis client of this process (decode_responses=True)."""
    return get_store().redis


class Add(BaseJob):
    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        a: int
        b: int

    def perform(self) -> int:
        return self.params.a + self.params.b


class AsyncEcho(BaseJob):
    class Params(BaseModel):
        text: str

    async def perform(self) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"echo": self.params.text, "attempt": self.attempt}


class Record(BaseJob):
    """Appends ``tag`` to the list ``key``: the list is the order of execution."""

    class Params(BaseModel):
        key: str
        tag: str

    def perform(self) -> str:
        r().rpush(self.params.key, self.params.tag)
        return self.params.tag


class CountOnce(BaseJob):
    """Sets ``marker`` and sleeps ``first_sleep`` s on attempt 1; then INCRs ``counter``."""

    retry = Retry(max_attempts=3, base=0.1, jitter=False)

    class Params(BaseModel):
        marker: str
        counter: str
        first_sleep: float = 30.0

    def perform(self) -> int:
        r().set(self.params.marker, os.getpid())
        if self.attempt == 1:
            time.sleep(self.params.first_sleep)
        r().incr(self.params.counter)
        return self.attempt


class Flaky(BaseJob):
    """Fails its first ``fail_times`` attempts; each attempt RPUSHes its start time."""

    retry = Retry(max_attempts=3, base=0.3, factor=2.0, jitter=False)

    class Params(BaseModel):
        times_key: str
        fail_times: int = 2

    def perform(self) -> str:
        r().rpush(self.params.times_key, repr(time.time()))
        if self.attempt <= self.params.fail_times:
            raise ConnectionError(f"upstream down (attempt {self.attempt})")
        return f"ok on attempt {self.attempt}"


class NeedsFlag(BaseJob):
    """Fails (two attempts) until the Redis key ``flag`` exists."""

    retry = Retry(max_attempts=2, base=0.05, jitter=False)

    class Params(BaseModel):
        flag: str

    def perform(self) -> str:
        if not r().exists(self.params.flag):
            raise ValueError(f"flag {self.params.flag} is not set")
        return "flag seen"


class Later(BaseJob):
    """Asks to run again ``retry_in`` s later on its first attempt.

    (A params field may not be called ``delay``: dispatch() takes that keyword itself.)
    """

    retry = Retry(max_attempts=3)

    class Params(BaseModel):
        times_key: str
        retry_in: float = 0.4

    def perform(self) -> int:
        r().rpush(self.params.times_key, repr(time.time()))
        if self.attempt == 1:
            raise RetryLater(self.params.retry_in, "not yet")
        return self.attempt


class Hang(BaseJob):
    """Overruns its 0.5 s hard timeout; no retry."""

    timeout = 0.5
    retry = Retry(max_attempts=1)

    class Params(BaseModel):
        marker: str

    def perform(self) -> None:
        r().set(self.params.marker, os.getpid())
        time.sleep(30)


class HangRetried(Hang):
    """Like Hang, with one retry after a timeout."""

    retry = Retry(max_attempts=2, base=0.05, jitter=False)


class WhoAmI(BaseJob):
    """Returns the process ids of the child that ran it."""

    def perform(self) -> dict[str, int]:
        return {"pid": os.getpid(), "ppid": os.getppid()}


class BadResult(BaseJob):
    def perform(self) -> object:
        return object()


class Sleepy(BaseJob):
    """Sets ``marker``, sleeps ``seconds``, returns how long it slept."""

    class Params(BaseModel):
        marker: str
        seconds: float

    def perform(self) -> float:
        r().set(self.params.marker, os.getpid())
        started = time.monotonic()
        time.sleep(self.params.seconds)
        return round(time.monotonic() - started, 3)


class SlowOnce(BaseJob):
    """Sleeps 30 s the first time it ever runs (``once`` key SET NX), then returns fast."""

    class Params(BaseModel):
        once: str
        marker: str

    def perform(self) -> str:
        r().set(self.params.marker, os.getpid())
        if r().set(self.params.once, "1", nx=True):
            time.sleep(30)
            return "slow"
        return "fast"


class Stamp(BaseJob):
    """Returns the wall-clock time it ran at."""

    def perform(self) -> float:
        return time.time()


class Crash(BaseJob):
    """Kills the child process running it, every time: a poison pill."""

    retry = Retry(max_attempts=5, base=0.05, jitter=False)

    class Params(BaseModel):
        counter: str

    def perform(self) -> None:
        r().incr(self.params.counter)
        os._exit(3)


class OnGpu(BaseJob):
    """Only workers carrying the ``gpu`` tag run it."""

    tags = frozenset({"gpu"})

    def perform(self) -> str:
        return "ran on a gpu worker"


class Hog(BaseJob):
    """Holds ``mb`` MB of memory for ``seconds`` s."""

    class Params(BaseModel):
        mb: int
        seconds: float

    def perform(self) -> int:
        block = bytearray(self.params.mb * 2**20)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: make it resident
        time.sleep(self.params.seconds)
        return os.getpid()


class HogOnce(BaseJob):
    """On attempt 1, sets ``marker`` to its pid and holds ``mb`` MB for ``seconds`` s;
    later attempts return the attempt number at once. One retry."""

    retry = Retry(max_attempts=2, base=0.05, jitter=False)

    class Params(BaseModel):
        marker: str
        mb: int
        seconds: float

    def perform(self) -> int:
        if self.attempt == 1:
            r().set(self.params.marker, os.getpid())
            Hog(Hog.Params(mb=self.params.mb, seconds=self.params.seconds)).perform()
        return self.attempt


class HogNoRetry(HogOnce):
    """HogOnce without a retry: an attempt killed for its memory is dead."""

    retry = Retry(max_attempts=1)


_leaked: list[bytearray] = []


class Leak(BaseJob):
    """Keeps ``mb`` MB for as long as its process lives (a leak), and returns at once."""

    class Params(BaseModel):
        mb: int

    def perform(self) -> int:
        block = bytearray(self.params.mb * 2**20)
        block[::4096] = b"x" * len(block[::4096])
        _leaked.append(block)
        return os.getpid()


class Label(BaseJob):
    """Params with pydantic's default ``extra="ignore"``: dispatch must not drop unknown
    keywords silently all the same."""

    class Params(BaseModel):
        label: str

    def perform(self) -> str:
        return self.params.label


class Loose(BaseJob):
    """Params that keep unknown keys (``extra="allow"``)."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="allow")
        label: str = ""

    def perform(self) -> dict[str, Any]:
        return self.params.model_dump()


class Measures(BaseJob):
    """Params of every kind the JSON round trip can lose: floats, optional floats, free
    JSON (``Any``), integers and text; returns them as the worker read them."""

    class Params(BaseModel):
        f: float = 0.0
        o: float | None = None
        a: Any = None
        i: int = 0
        s: str = ""

    def perform(self) -> dict[str, Any]:
        return {"o": self.params.o, "i_digits": len(str(abs(self.params.i)))}


class BigResult(BaseJob):
    """Returns a string of ``size`` characters."""

    class Params(BaseModel):
        size: int

    def perform(self) -> str:
        return "x" * self.params.size


class SleepThenMark(BaseJob):
    """Sets ``marker`` to its pid, sleeps ``seconds``, then RPUSHes its pid to ``after``:
    an attempt that was stopped during the sleep leaves no trace in ``after``."""

    class Params(BaseModel):
        marker: str
        after: str
        seconds: float

    def perform(self) -> int:
        r().set(self.params.marker, os.getpid())
        time.sleep(self.params.seconds)
        r().rpush(self.params.after, os.getpid())
        return os.getpid()


class StampStart(BaseJob):
    """RPUSHes the time it started to ``key``."""

    class Params(BaseModel):
        key: str

    def perform(self) -> None:
        r().rpush(self.params.key, repr(time.time()))


class TermDuringRespawn(BaseJob):
    """The first time it runs (``once`` SET NX): RPUSHes "child-pid supervisor-pid" to
    ``pids`` and kills its own child process (the test then SIGTERMs the supervisor just
    after it collected the dead child, while it is about to replace it)."""

    class Params(BaseModel):
        once: str
        pids: str

    def perform(self) -> str:
        if not r().set(self.params.once, "1", nx=True):
            return "second run"
        r().rpush(self.params.pids, f"{os.getpid()} {os.getppid()}")
        os._exit(3)


class Unusual(BaseException):
    """A BaseException that is neither SystemExit, KeyboardInterrupt nor GeneratorExit."""


def _raise_base(kind: str) -> NoReturn:
    if kind == "SystemExit":
        raise SystemExit(3)
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if kind == "GeneratorExit":
        raise GeneratorExit
    raise Unusual("not an Exception")


class RaiseBase(BaseJob):
    """Raises a BaseException that is not an Exception (``kind`` names it)."""

    class Params(BaseModel):
        kind: str

    def perform(self) -> None:
        _raise_base(self.params.kind)


class AsyncRaiseBase(BaseJob):
    """RaiseBase, from ``async def perform``."""

    class Params(BaseModel):
        kind: str

    async def perform(self) -> None:
        await asyncio.sleep(0.01)
        _raise_base(self.params.kind)


class BreaksItsRunner(BaseJob):
    """Its params validator raises a BaseException in the worker (jobs of this class are
    written straight into Redis, as dispatch() would run the validator too): it escapes
    the executor and ends the thread that runs it."""

    class Params(BaseModel):
        counter: str

        @field_validator("counter")
        @classmethod
        def _count_and_break(cls, value: str) -> str:
            r().incr(value)
            raise Unusual("validator broke out")


class NastyMessage(BaseJob):
    """Raises an exception whose message no codec takes (a lone surrogate) and whose
    str() is long; no retry."""

    retry = Retry(max_attempts=1)

    def perform(self) -> None:
        raise ValueError("lone \ud800 surrogate " + "x" * 5000)
