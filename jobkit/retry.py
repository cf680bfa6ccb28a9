"""Retry policy: which errors retry, how long to wait (exponential back-off with
jitter), and when a job gives up and goes to the dead-letter set."""

from __future__ import annotations

import random
from dataclasses import dataclass

from jobkit.errors import RetryLater
from jobkit.models import DeadReason


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens after a failed attempt: retry after ``delay`` seconds, or dead."""

    retry: bool
    delay: float = 0.0
    reason: DeadReason = DeadReason.EXCEPTION


@dataclass(frozen=True)
class Retry:
    """Per-class retry policy with exponential back-off.

    ``max_attempts`` counts every run, the first one included. The n-th retry waits
    ``base * factor ** (n - 1)`` seconds, capped at ``max_delay``, plus up to ``base``
    seconds of random jitter when ``jitter`` is on. An exception in ``give_up_on`` goes
    straight to the dead-letter set; otherwise only those in ``retry_on`` are retried.
    """

    max_attempts: int = 3
    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 600.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    give_up_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base < 0 or self.factor < 1 or self.max_delay < 0:
            raise ValueError("need base >= 0, factor >= 1 and max_delay >= 0")

    def delay_for(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        jitter = self.base if self.jitter else 0.0
        return backoff(attempt, self.base, self.factor, self.max_delay, jitter)

    def decide(self, exc: BaseException, attempt: int) -> Decision:
        """The decision after attempt number ``attempt`` raised ``exc``."""
        exhausted = attempt >= self.max_attempts
        if isinstance(exc, RetryLater):
            return Decision(retry=not exhausted, delay=exc.delay)
        if isinstance(exc, self.give_up_on) or not isinstance(exc, self.retry_on):
            return Decision(retry=False)
        if exhausted:
            return Decision(retry=False)
        return Decision(retry=True, delay=self.delay_for(attempt))

    def decide_timeout(self, attempt: int) -> Decision:
        """A timed-out attempt retries like an exception, dying with reason ``timeout``."""
        return self.decide_killed(attempt, DeadReason.TIMEOUT)

    def decide_killed(self, attempt: int, reason: DeadReason) -> Decision:
        """An attempt whose child was killed for ``reason`` (``timeout``, ``memory``)
        retries like an exception, dying with that reason."""
        if attempt >= self.max_attempts:
            return Decision(retry=False, reason=reason)
        return Decision(retry=True, delay=self.delay_for(attempt), reason=reason)


NO_RETRY = Retry(max_attempts=1)


def backoff(attempt: int, base: float, factor: float, cap: float, jitter: float = 0.0) -> float:
    """Seconds to wait after try number ``attempt`` (1-based): ``base * factor ** (attempt
    - 1)``, plus up to ``jitter`` at random, and never more than ``cap`` (also where the
    power overflows a float)."""
    try:
        delay = base * factor ** (attempt - 1)
    except OverflowError:
        return cap
    if jitter:
        delay += random.uniform(0, jitter)
    return min(delay, cap)
