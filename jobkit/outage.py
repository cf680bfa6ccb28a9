"""How worker processes and the scheduler report Redis trouble without flooding the log.

Two kinds of trouble, told apart because they call for different words and waits:

* an *outage* (:class:`Outage`): Redis cannot be reached (connection refused or lost, a
  timeout, a restarting server still loading). The process retries with exponential
  back-off, capped at :data:`OUTAGE_CAP` seconds, and logs one line per retry and one
  ``Redis reachable again`` line when a round trip succeeds. No traceback: an outage is
  an event, not a bug.
* a *failing chore* (:class:`Failures`): Redis answers, but a command or script keeps
  failing (a key of the wrong type, OOM, a bug). Each kind is logged once, then again
  only after a pause that doubles each time, so a failure repeated every tick still
  costs only a handful of lines; the caller backs off its retries too.

Both are shared by the threads of a process, hence the locks; the calls made on every
successful round trip only read an attribute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from jobkit.backend.transport import TROUBLE as TROUBLE
from jobkit.backend.transport import UNAVAILABLE

OUTAGE_FIRST = 0.1  # seconds before the first retry after an outage begins
OUTAGE_CAP = 5.0  # the longest wait between two retries while Redis is away
FAILURE_FIRST = 0.1  # seconds before a failed chore runs again (doubling each failure)
FAILURE_CAP = 5.0  # ... up to this, so it recovers within seconds once fixed
RELOG_FIRST = 10.0  # a failure kind is logged again after this, then twice as late ...
RELOG_CAP = 600.0  # ... up to once per this

UNREACHABLE = UNAVAILABLE  # Redis out of reach (see jobkit.backend.transport)
# TROUBLE: what a round trip may raise for causes outside this process: an error from
# Redis (or the cluster client's own, when no node answers at all: an outage like any
# other), or a reply that is not UTF-8 (an id or name a hostile writer put there)


def describe(exc: BaseException) -> str:
    """One line for a log: the exception's type and message, never its traceback."""
    try:
        text = str(exc).strip().replace("\n", " ") or "no message"
    except Exception:  # an exception class may fail even at that
        text = "(no message: str() failed)"
    return f"{type(exc).__name__}: {text[:300]}"


class Outage:
    """Whether Redis is reachable, as this process last saw it, and when to try again."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._lock = threading.Lock()
        self.down_since: float | None = None  # monotonic; None while reachable
        self.retries = 0
        self.retry_at = 0.0  # monotonic time of the next retry

    @property
    def down(self) -> bool:
        """Whether the last round trip failed for want of Redis."""
        return self.down_since is not None

    def ready(self, now: float) -> bool:
        """Whether a Redis call may be attempted now (always, unless in an outage)."""
        return self.down_since is None or now >= self.retry_at

    def failed(self, exc: BaseException) -> float:
        """A round trip failed for want of Redis; returns the seconds until the next retry.

        One line per retry for the whole process: threads that fail before the retry time
        they were given only learn how long to wait."""
        with self._lock:
            now = time.monotonic()
            if self.down_since is None:
                self.down_since = now
                self.retries = 0
            if now >= self.retry_at:
                self.retries += 1
                delay = float(min(OUTAGE_CAP, OUTAGE_FIRST * 2 ** (self.retries - 1)))
                self.retry_at = now + delay
                self._log.warning(
                    "Redis unreachable (%s); retry %d in %.1fs", describe(exc), self.retries, delay
                )
            return max(0.0, self.retry_at - now)

    def recovered(self) -> None:
        """A round trip succeeded: say so once if we were in an outage."""
        if self.down_since is None:  # the common case: one attribute read, no lock
            return
        with self._lock:
            if self.down_since is None:
                return
            self._log.info(
                "Redis reachable again after %.1fs (%d retries)",
                time.monotonic() - self.down_since,
                self.retries,
            )
            self.down_since = None
            self.retries = 0
            self.retry_at = 0.0


@dataclass
class _Kind:
    first: float  # monotonic time of the first failure in this run of failures
    count: int = 1  # failures since the first
    relog_after: float = RELOG_FIRST
    next_log: float = 0.0


class Failures:
    """Recurring failures of chores (a promote, a claim, a heartbeat ...), by kind."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._kinds: dict[str, _Kind] = {}

    def failed(self, what: str, exc: BaseException) -> float:
        """``what`` failed with ``exc``; returns how long to wait before trying it again.

        Logged when first seen; then, while it goes on failing, once more after 10 s,
        20 s, 40 s ... with the count. A traceback is logged once for errors that are
        not Redis's nor unreadable replies (those are bugs to report)."""
        kind = f"{what}: {type(exc).__name__}"
        with self._lock:
            now = time.monotonic()
            state = self._kinds.get(kind)
            if state is None:
                state = self._kinds[kind] = _Kind(first=now, next_log=now + RELOG_FIRST)
                self._log.error(
                    "%s failed (%s); retrying with back-off",
                    what,
                    describe(exc),
                    exc_info=None if isinstance(exc, TROUBLE) else exc,
                )
            else:
                state.count += 1
                if now >= state.next_log:
                    self._log.error(
                        "%s still failing: %d times in %.0fs (%s)",
                        what,
                        state.count,
                        now - state.first,
                        describe(exc),
                    )
                    state.relog_after = min(RELOG_CAP, state.relog_after * 2)
                    state.next_log = now + state.relog_after
            return float(min(FAILURE_CAP, FAILURE_FIRST * 2 ** (state.count - 1)))

    def recovered(self, what: str) -> None:
        """``what`` succeeded: close its open failure kinds, with one line each."""
        if not self._kinds:  # the common case: nothing to look up, no lock
            return
        with self._lock:
            for kind in [k for k in self._kinds if k.startswith(f"{what}: ")]:
                state = self._kinds.pop(kind)
                self._log.info(
                    "%s works again after %d failure(s) in %.0fs",
                    what,
                    state.count,
                    time.monotonic() - state.first,
                )


class Guard:
    """Runs a chore so that no exception escapes: an unreachable Redis goes to the
    process's :class:`Outage`, anything else to its :class:`Failures`."""

    def __init__(self, log: logging.Logger) -> None:
        self.outage = Outage(log)
        self.failures = Failures(log)

    def call(self, what: str, fn: Callable[[], object], *, redis: bool = True) -> float | None:
        """Run ``fn``; None if it succeeded, else the seconds to wait before a retry.
        Only a success of a chore that made a round trip (``redis``) ends an outage."""
        try:
            fn()
        except Exception as exc:
            return self.failed(what, exc)
        if redis:
            self.outage.recovered()
        self.failures.recovered(what)
        return None

    def failed(self, what: str, exc: Exception) -> float:
        """Report ``exc`` raised by ``what``; the seconds to wait before a retry."""
        if isinstance(exc, UNREACHABLE):
            return self.outage.failed(exc)
        return self.failures.failed(what, exc)
