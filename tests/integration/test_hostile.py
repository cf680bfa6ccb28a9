"""Hostile ``perform()``s: each must end its job with a reason and leave the worker
serving the next, innocent job.

exit(), os._exit, a segfault, BaseException subclasses, unserialisable and oversized
results, a job that ignores SIGTERM, and one that forks an orphan. The worker loads these
classes with ``-A tests.integration.test_hostile`` and runs one child (``-c 1``), so a child that
stops serving shows at once. Every process a job forks is killed in teardown, whatever
jobkit did about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any, Literal

import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import jobkit
from jobkit import BaseJob, Retry, Status
from jobkit.models import JobRecord
from tests.conftest import HEARTBEAT, LEASE, Env, StartWorker, wait_until
from tests.support import jobs
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow

APP = ("-A", "tests.integration.test_hostile")
ENDS_WITHIN = 20.0  # seconds for a hostile job to end: a lease (1.5 s), a reap, a restart
ONCE = Retry(max_attempts=1)
OVERSIZED = 2 << 20  # bytes; the test server refuses arguments over 1 MB (see fixture)


class Hostile(BaseException):
    """Not an Exception: what a job raising it does to the worker is the question."""


BASE_EXCEPTIONS: dict[str, type[BaseException]] = {
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
    "Hostile": Hostile,
}


def r() -> redis.Redis:
    return jobkit.get_store().redis


class Exits(BaseJob):
    """``sys.exit(code)`` (SystemExit) or the interpreter's ``exit()``."""

    retry = ONCE

    class Params(BaseModel):
        code: int = 0
        builtin: bool = False

    def perform(self) -> None:
        if self.params.builtin:  # type: ignore[attr-defined]
            exit(self.params.code)  # type: ignore[attr-defined]
        sys.exit(self.params.code)  # type: ignore[attr-defined]


class HardExit(BaseJob):
    """``os._exit``: the child process ends on the spot, no cleanup."""

    retry = ONCE

    def perform(self) -> None:
        os._exit(3)


class Segfault(BaseJob):
    """Reads address 0: SIGSEGV."""

    retry = ONCE

    def perform(self) -> None:
        ctypes.string_at(0)


class RaisesBase(BaseJob):
    """Raises a BaseException that is not an Exception, sync or async."""

    retry = ONCE

    class Params(BaseModel):
        kind: str
        is_async: bool = False

    def perform(self) -> Any:
        exc = BASE_EXCEPTIONS[self.params.kind]  # type: ignore[attr-defined]
        if self.params.is_async:  # type: ignore[attr-defined]

            async def go() -> None:
                await asyncio.sleep(0)
                raise exc("from an async job")

            return go()
        raise exc("from a job")


UnserialisableKind = Literal["object", "bytes", "complex", "nested", "recursive", "bigint", "keys"]


def _unserialisable(kind: str) -> Any:
    if kind == "object":
        return object()
    if kind == "bytes":
        return b"\x00\xff"
    if kind == "complex":
        return 1 + 2j
    if kind == "nested":
        return {"ok": [1, 2, {"bad": object()}]}
    if kind == "recursive":
        loop: list[Any] = []
        loop.append(loop)
        return loop
    if kind == "bigint":
        return 1 << 70
    return {(1, 2): "tuple keys"}


class BadResult(BaseJob):
    """Returns something that is not JSON."""

    retry = ONCE

    class Params(BaseModel):
        kind: UnserialisableKind

    def perform(self) -> Any:
        return _unserialisable(self.params.kind)  # type: ignore[attr-defined]


class Oversized(BaseJob):
    """Returns a result larger than Redis accepts in one argument."""

    retry = ONCE

    def perform(self) -> str:
        return "x" * OVERSIZED


class IgnoresSigterm(BaseJob):
    """Sets SIGTERM to ignored for its whole process (through libc: Python only lets the
    main thread do it), then sleeps ``seconds``."""

    retry = ONCE
    timeout = 1.0

    class Params(BaseModel):
        seconds: float

    def perform(self) -> int:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(self.params.seconds)  # type: ignore[attr-defined]
        return os.getpid()


class ForksOrphan(BaseJob):
    """Forks a child that sleeps on (records its pid in ``marker``), then sleeps
    ``seconds`` itself."""

    retry = ONCE
    timeout = 1.0

    class Params(BaseModel):
        marker: str
        seconds: float

    def perform(self) -> int:
        pid = os.fork()
        if pid == 0:  # the orphan-to-be: touches nothing it shares with its parent
            time.sleep(120)
            os._exit(0)
        r().rpush(self.params.marker, pid)  # type: ignore[attr-defined]
        time.sleep(self.params.seconds)  # type: ignore[attr-defined]
        return pid


# -- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[RedisServer]:
    """A server of this module's own: it refuses arguments over 1 MB (the least Redis
    allows), standing in for the 512 MB a real oversized result would take."""
    with RedisServer() as server:
        server.client().config_set("proto-max-bulk-len", str(1 << 20))
        yield server


@pytest.fixture
def env(hostile_server: RedisServer) -> Iterator[Env]:
    client = hostile_server.client(decode_responses=True)
    client.flushall()
    jobkit.configure(redis_url=hostile_server.url, lease=LEASE, heartbeat=HEARTBEAT)
    store = jobkit.get_store()
    try:
        yield Env(hostile_server, hostile_server.url, client, store, store.keys)
    finally:
        store.redis.close()
        client.close()


@pytest.fixture
def strays() -> Iterator[list[int]]:
    """Pids a test must not leave running, whatever jobkit did with them."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def ended(env: Env, job_id: str, within: float = ENDS_WITHIN) -> JobRecord:
    """The job once it reached a final state; fails if it is still active ``within``."""

    def final() -> JobRecord | None:
        rec = env.store.reads.get(job_id)
        return rec if rec and rec.status in jobkit.TERMINAL_STATUSES else None

    what = f"job {job_id} to end (it is {env.status(job_id)})"
    return wait_until(final, timeout=within, interval=0.1, what=what)


def serves_next(env: Env) -> None:
    """The worker runs an innocent job after the hostile one."""
    handle = jobs.Add.dispatch(a=20, b=22)
    assert handle.result(timeout=ENDS_WITHIN) == 42


def assert_dead(rec: JobRecord, reasons: set[str], error_type: str | None = None) -> None:
    assert rec.status is Status.DEAD, rec
    assert rec.reason in reasons, rec
    if error_type is not None and rec.reason == "exception":
        assert rec.error is not None and rec.error.type == error_type, rec.error


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("builtin", [False, True], ids=["sys.exit", "exit"])
def test_exit_ends_the_job_and_the_worker_serves_on(
    env: Env, start_worker: StartWorker, builtin: bool
) -> None:
    start_worker(extra=APP)
    rec = ended(env, Exits.dispatch(code=0, builtin=builtin).id)
    assert_dead(rec, {"exception", "crashed"}, "SystemExit")
    serves_next(env)


@pytest.mark.parametrize("job", [HardExit, Segfault], ids=["os._exit", "segfault"])
def test_a_job_that_kills_its_process_is_dead_crashed(
    env: Env, start_worker: StartWorker, job: type[BaseJob]
) -> None:
    worker = start_worker(extra=APP)
    rec = ended(env, job.dispatch().id)
    assert_dead(rec, {"crashed"})
    serves_next(env)
    assert worker.alive()


@settings(
    max_examples=8,
    deadline=None,
    database=None,
    phases=[Phase.generate],  # a failure waits its full timeout: no shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(kind=st.sampled_from(sorted(BASE_EXCEPTIONS)), is_async=st.booleans())
def test_base_exceptions_end_the_job_and_the_worker_serves_on(
    env: Env, start_worker: StartWorker, kind: str, is_async: bool
) -> None:
    """A worker of its own for every example, so a failure names the job that caused it."""
    worker = start_worker(extra=APP)
    try:
        rec = ended(env, RaisesBase.dispatch(kind=kind, is_async=is_async).id)
        assert_dead(rec, {"exception", "crashed"}, kind)
        serves_next(env)
    finally:
        worker.kill()


@settings(
    max_examples=7,
    deadline=None,
    database=None,
    phases=[Phase.generate],  # a failure waits its full timeout: no shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(kind=st.sampled_from(list(UnserialisableKind.__args__)))  # type: ignore[attr-defined]
def test_an_unserialisable_result_is_dead_invalid_result(
    env: Env, start_worker: StartWorker, kind: str
) -> None:
    worker = start_worker(extra=APP)
    try:
        rec = ended(env, BadResult.dispatch(kind=kind).id)
        assert_dead(rec, {"invalid_result"})
        serves_next(env)
    finally:
        worker.kill()


def test_an_oversized_result_ends_the_job_and_the_worker_serves_on(
    env: Env, start_worker: StartWorker
) -> None:
    start_worker(extra=APP)
    rec = ended(env, Oversized.dispatch().id)
    assert_dead(rec, {"invalid_result", "exception"})
    serves_next(env)


def test_a_job_ignoring_sigterm_is_still_killed_at_its_timeout(
    env: Env, start_worker: StartWorker, strays: list[int]
) -> None:
    worker = start_worker(extra=APP)
    strays.extend(worker.child_pids())
    rec = ended(env, IgnoresSigterm.dispatch(seconds=30).id)
    assert_dead(rec, {"timeout"})
    serves_next(env)


def test_a_worker_whose_child_ignores_sigterm_still_stops(
    env: Env, start_worker: StartWorker, strays: list[int]
) -> None:
    """The job returns, its child goes on ignoring SIGTERM; a graceful stop must still
    end the worker, every process of it, within the grace period and a little."""
    worker = start_worker(extra=APP, grace=1.0)
    strays.extend(worker.child_pids())
    handle = IgnoresSigterm.dispatch(seconds=0)
    assert handle.result(timeout=ENDS_WITHIN) > 0
    serves_next(env)
    worker.terminate()
    assert worker.wait(timeout=10) == 0
    wait_until(lambda: not worker.group_pids(), timeout=5, what="the worker's children to end")


def test_the_orphan_of_a_timed_out_job_is_killed_with_it(
    env: Env, start_worker: StartWorker, strays: list[int]
) -> None:
    start_worker(extra=APP)
    handle = ForksOrphan.dispatch(marker="orphans", seconds=30)
    orphan = int(wait_until(lambda: env.client.lindex("orphans", 0), what="the fork"))
    strays.append(orphan)
    rec = ended(env, handle.id)
    assert_dead(rec, {"timeout"})
    serves_next(env)
    wait_until(lambda: not alive(orphan), timeout=5, what=f"orphan {orphan} to be killed")


def test_an_orphan_outliving_its_job_dies_with_the_worker(
    env: Env, start_worker: StartWorker, strays: list[int]
) -> None:
    worker = start_worker(extra=APP, grace=1.0)
    handle = ForksOrphan.dispatch(marker="orphans", seconds=0)
    orphan = handle.result(timeout=ENDS_WITHIN)
    strays.append(orphan)
    assert alive(orphan)
    serves_next(env)
    worker.terminate()
    assert worker.wait(timeout=10) == 0
    wait_until(lambda: not alive(orphan), timeout=5, what=f"orphan {orphan} to be killed")
