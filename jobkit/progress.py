"""Progress reporting from a running job (see docs/progress.md).

``BaseJob.progress(fraction, message)`` checks its arguments here (:func:`checked`) and
hands them to the attempt's :class:`Reporter`, made on the first call: a job that never
reports costs nothing but the one attribute the worker sets on it (:data:`RUN`: the
executor running it, which knows the lease it holds and the store). The reporter
writes through a :class:`Throttle`: the first value at once, then at most one write per
:data:`INTERVAL` seconds, the latest value kept meanwhile; the worker flushes a kept
value when ``perform()`` returns or raises, before it records the outcome
(:func:`flush`), and nothing is written after that. Each write is progress.lua, fenced by the
attempt's lease token: once Redis says the attempt no longer holds the lease, the
reporter stops writing.

A job built outside a worker (in a unit test, ``Job(params).perform()``) has no lease:
its reporter records the last value (:func:`last_reported`) and writes nothing.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from jobkit.backend.store import Store
from jobkit.backend.transport import UNAVAILABLE
from jobkit.errors import InvalidProgress
from jobkit.models import Claimed

__all__ = [
    "INTERVAL",
    "MAX_MESSAGE",
    "RUN",
    "Reporter",
    "Throttle",
    "checked",
    "flush",
    "last_reported",
    "report",
]

log = logging.getLogger("jobkit.worker")

INTERVAL = 0.5  # seconds between two writes of one attempt's progress, at least
MAX_MESSAGE = 200  # characters of a message kept; a longer one is cut, ending in "…"
# The one attribute the worker sets on a job before perform() (see Executor.run): the
# executor running it (its ``store``, and ``running``: the Claimed it runs now), replaced
# by the attempt's Reporter on the first report. One attribute, not two: a job instance
# holds four without growing its dict, and growing it would cost every job.
RUN = "_jobkit_run"

T = TypeVar("T")
Value = tuple[float, str]  # fraction, message ('' for none)


def checked(fraction: object, message: object = None) -> Value:
    """``(fraction, message)`` as they are written; :class:`InvalidProgress` unless the
    fraction is a real number from 0 to 1 and the message None or a string (cut to
    :data:`MAX_MESSAGE` characters, text JSON and Redis carry)."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise InvalidProgress(
            f"progress fraction must be a number from 0 to 1, not {type(fraction).__name__}"
        )
    try:
        value = float(fraction)
    except (OverflowError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN fails both comparisons
        raise InvalidProgress(f"progress fraction must be from 0 to 1, not {fraction!r}")
    if message is None:
        return value, ""
    if not isinstance(message, str):
        raise InvalidProgress(f"progress message must be a string, not {type(message).__name__}")
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which no codec takes
        message = message.encode("utf-8", "replace").decode("utf-8")
    return value, message


def _monotonic() -> float:
    return time.monotonic()  # looked up at each call: a frozen clock in tests is seen


class Throttle(Generic[T]):
    """When to write: the first value offered at once, then at most one per
    ``interval`` seconds of ``clock``; a value offered sooner is kept (the latest wins)
    until a later offer finds the interval past, or :meth:`take` takes it."""

    __slots__ = ("clock", "interval", "last", "pending")

    def __init__(self, interval: float = INTERVAL, clock: Callable[[], float] | None = None):
        self.interval = interval
        self.clock = clock or _monotonic
        self.last: float | None = None  # when the last value was let through
        self.pending: T | None = None

    def offer(self, value: T) -> T | None:
        """``value`` if it is to be written now, else None (it is kept)."""
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            self.pending = value
            return None
        self.last, self.pending = now, None
        return value

    def take(self) -> T | None:
        """The kept value, if any (to write now: it counts as a write)."""
        value, self.pending = self.pending, None
        if value is not None:
            self.last = self.clock()
        return value


class Reporter:
    """One attempt's progress: the last value reported and the throttle of its writes,
    through ``write`` (None: nowhere, for a job run outside a worker)."""

    __slots__ = ("_lock", "_write", "last", "throttle", "writes")

    def __init__(
        self, write: Callable[[float, str], bool] | None, throttle: Throttle[Value] | None = None
    ) -> None:
        self._lock = threading.Lock()  # a job's own threads may report too
        self._write = write
        self.throttle: Throttle[Value] = throttle or Throttle()
        self.last: Value | None = None
        self.writes = 0  # sent to Redis

    def offer(self, value: Value) -> None:
        with self._lock:  # held over the write: a later value never lands before an earlier
            self.last = value
            if self._write is not None:
                due = self.throttle.offer(value)
                if due is not None:
                    self._send(due)

    def flush(self) -> None:
        """The attempt's perform() ended: write the kept value, if any, and nothing after
        it (a thread of the job reporting later is recorded here only). Never raises: the
        outcome is recorded next."""
        with self._lock:
            due = self.throttle.take()
            if due is not None and self._write is not None:
                try:
                    self._send(due)
                except Exception:
                    log.warning("progress not recorded at the end of the attempt", exc_info=True)
            self._write = None

    def _send(self, value: Value) -> None:
        write = self._write
        assert write is not None
        self.writes += 1
        try:
            held = write(*value)
        except UNAVAILABLE as exc:  # Redis away: the job goes on; a later value may land
            log.warning("progress not recorded (Redis unreachable: %s)", exc)
            return
        if not held:  # another attempt holds the lease, or this one ended: stop writing
            self._write = None


def _writer(store: Store, lease: Claimed) -> Callable[[float, str], bool]:
    def write(fraction: float, message: str) -> bool:
        return store.leasing.progress(lease.id, lease.token, fraction, message)

    return write


_starting = threading.Lock()


def _reporter(task: Any) -> Reporter:
    """The attempt's reporter, made on its first report (once, should two threads of the
    job report first at the same time), writing under the lease of the attempt its
    executor runs, if that is this job's attempt (not if a thread of the job reports
    first after perform() returned and the executor moved on)."""
    with _starting:
        held = getattr(task, RUN, None)
        if isinstance(held, Reporter):
            return held
        store = getattr(held, "store", None)
        lease = getattr(held, "running", None)
        ours = (
            isinstance(lease, Claimed)
            and lease.id == getattr(task, "job_id", None)
            and lease.attempts == getattr(task, "attempt", None)
        )
        if ours and isinstance(store, Store) and isinstance(lease, Claimed):
            reporter = Reporter(_writer(store, lease))
        else:
            reporter = Reporter(None)  # built outside a worker: kept, never written
        setattr(task, RUN, reporter)
        return reporter


def report(task: Any, fraction: object, message: object = None) -> None:
    """``task.progress(fraction, message)``: see the module doc."""
    value = checked(fraction, message)
    held = getattr(task, RUN, None)
    reporter = held if type(held) is Reporter else _reporter(task)
    reporter.offer(value)


def flush(task: Any) -> None:
    """Write what ``task``'s attempt reported last, if a write of it is still owed (the
    worker calls this when ``perform()`` ended and the job reported)."""
    held = getattr(task, RUN, None)
    if isinstance(held, Reporter):
        held.flush()


def last_reported(task: Any) -> tuple[float, str | None] | None:
    """The last ``(fraction, message)`` ``task`` reported, None before the first (for
    tests of a job run outside a worker)."""
    held = getattr(task, RUN, None)
    if not isinstance(held, Reporter) or held.last is None:
        return None
    fraction, message = held.last
    return fraction, message or None
