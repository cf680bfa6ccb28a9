"""Retry policy: which errors retry, how long to wait (tenacity's wait strategies), and
when a job gives up and goes to the dead-letter set."""

from __future__ import annotations

from dataclasses import dataclass, field

from tenacity import RetryCallState, wait_exponential, wait_exponential_jitter
from tenacity.wait import wait_base

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
    _wait: wait_base = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base < 0 or self.factor < 1 or self.max_delay < 0:
            raise ValueError("need base >= 0, factor >= 1 and max_delay >= 0")
        wait: wait_base
        if self.jitter:
            wait = wait_exponential_jitter(
                multiplier=self.base, exp_base=self.factor, max=self.max_delay, jitter=self.base
            )
        else:
            wait = wait_exponential(multiplier=self.base, exp_base=self.factor, max=self.max_delay)
        object.__setattr__(self, "_wait", wait)

    def delay_for(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(backoff(self._wait, attempt), self.max_delay)

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


def backoff(wait: wait_base, attempt: int) -> float:
    """What tenacity's ``wait`` strategy says to wait before try ``attempt + 1``."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return float(wait(state))
