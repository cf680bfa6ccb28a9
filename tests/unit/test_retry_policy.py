"""Unit tests of the retry policy: back-off math and the decision after a failure."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from jobkit import DeadReason, Retry, RetryLater
from jobkit.retry import NO_RETRY, Decision


def test_exponential_backoff_without_jitter() -> None:
    policy = Retry(base=0.5, factor=3.0, max_delay=10.0, jitter=False)
    assert [policy.delay_for(n) for n in range(1, 7)] == [0.5, 1.5, 4.5, 10.0, 10.0, 10.0]


def test_default_factor_doubles() -> None:
    policy = Retry(base=1.0, jitter=False)
    assert [policy.delay_for(n) for n in range(1, 5)] == [1.0, 2.0, 4.0, 8.0]


def test_backoff_is_capped_even_for_huge_attempt_numbers() -> None:
    assert Retry(base=1.0, max_delay=5.0, jitter=False).delay_for(10_000) == 5.0
    assert Retry(base=1.0, max_delay=5.0, jitter=True).delay_for(10_000) == 5.0


def test_constant_and_zero_backoff() -> None:
    assert Retry(base=2.0, factor=1.0, jitter=False).delay_for(7) == 2.0
    assert Retry(base=0.0, jitter=False).delay_for(3) == 0.0
    assert Retry(base=0.0, jitter=True).delay_for(3) == 0.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 5])
def test_jitter_adds_at_most_base(attempt: int) -> None:
    policy = Retry(base=0.4, factor=2.0, max_delay=600.0, jitter=True)
    low = 0.4 * 2.0 ** (attempt - 1)
    samples = [policy.delay_for(attempt) for _ in range(300)]
    assert all(low <= s <= low + 0.4 for s in samples)
    assert len(set(samples)) > 1  # it is random
    assert max(samples) - min(samples) > 0.1  # and spread over the range


def test_jitter_never_exceeds_max_delay() -> None:
    policy = Retry(base=1.0, factor=2.0, max_delay=3.0, jitter=True)
    assert all(0 < policy.delay_for(n) <= 3.0 for n in range(1, 10) for _ in range(50))


def test_invalid_policies_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        Retry(max_attempts=0)
    with pytest.raises(ValueError):
        Retry(base=-1)
    with pytest.raises(ValueError):
        Retry(factor=0.5)
    with pytest.raises(ValueError):
        Retry(max_delay=-1)


def test_decide_retries_then_gives_up_when_exhausted() -> None:
    policy = Retry(max_attempts=3, base=0.5, jitter=False)
    assert policy.decide(ValueError("x"), 1) == Decision(retry=True, delay=0.5)
    assert policy.decide(ValueError("x"), 2) == Decision(retry=True, delay=1.0)
    last = policy.decide(ValueError("x"), 3)
    assert last.retry is False
    assert last.reason is DeadReason.EXCEPTION
    assert policy.decide(ValueError("x"), 4).retry is False


def test_decide_retry_on_limits_what_retries() -> None:
    policy = Retry(max_attempts=5, base=0.1, jitter=False, retry_on=(ConnectionError,))
    assert policy.decide(ConnectionError(), 1).retry is True
    assert policy.decide(ConnectionRefusedError(), 1).retry is True  # subclasses count
    other = policy.decide(KeyError("k"), 1)
    assert other.retry is False
    assert other.reason is DeadReason.EXCEPTION


def test_decide_give_up_on_wins_over_retry_on() -> None:
    policy = Retry(max_attempts=5, retry_on=(Exception,), give_up_on=(PermissionError,))
    assert policy.decide(PermissionError(), 1) == Decision(retry=False)
    assert policy.decide(OSError(), 1).retry is True


def test_decide_retry_later_uses_its_own_delay() -> None:
    policy = Retry(max_attempts=3, base=100.0, jitter=False, retry_on=(KeyError,))
    assert policy.decide(RetryLater(2.5), 1) == Decision(retry=True, delay=2.5)
    assert policy.decide(RetryLater(timedelta(minutes=1)), 2) == Decision(retry=True, delay=60.0)
    assert policy.decide(RetryLater(1), 3).retry is False  # attempts still run out


def test_retry_later_message() -> None:
    assert str(RetryLater(0.25)) == "retry in 0.25s"
    assert str(RetryLater(1, "upstream busy")) == "upstream busy"
    assert RetryLater().delay == 0.0


def test_decide_timeout() -> None:
    policy = Retry(max_attempts=2, base=0.5, jitter=False)
    assert policy.decide_timeout(1) == Decision(True, 0.5, DeadReason.TIMEOUT)
    assert policy.decide_timeout(2) == Decision(False, 0.0, DeadReason.TIMEOUT)
    assert NO_RETRY.decide_timeout(1).retry is False
    assert NO_RETRY.decide(ValueError(), 1).retry is False


def test_persistently_rides_out_an_outage_then_gives_up() -> None:
    import redis

    from jobkit.worker.execute import persistently

    failures = iter([redis.ConnectionError("down"), redis.TimeoutError("slow")])

    def flaky() -> str:
        for exc in failures:
            raise exc
        return "recorded"

    assert persistently(flaky, give_up_after=5.0) == "recorded"

    def down() -> str:
        raise redis.ConnectionError("down")

    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        persistently(down, give_up_after=0.2)
    assert 0.2 <= time.monotonic() - started < 1.0

    def refused() -> str:
        raise redis.ResponseError("WRONGTYPE")

    with pytest.raises(redis.ResponseError):  # no outage: not tried again
        persistently(refused, give_up_after=5.0)
