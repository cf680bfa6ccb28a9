"""Back-off and RetryLater due times, exactly, on the real scripts: the testing mode's
clock stands still, so a retry's due time is the failure's time plus the policy's delay
to the millisecond (the worker-process tests can only say "not before")."""

from __future__ import annotations

from datetime import timedelta

import jobkit
from jobkit.testing import JobkitTest

attempts: list[int] = []


class Flaky(jobkit.BaseJob):
    name = "tests.unit.backoff.Flaky"
    retry = jobkit.Retry(max_attempts=4, base=60, factor=2, jitter=False)

    def perform(self) -> str:
        attempts.append(self.attempt)
        if self.attempt < 4:
            raise ConnectionError("down")
        return "up"


class Later(jobkit.BaseJob):
    name = "tests.unit.backoff.Later"
    retry = jobkit.Retry(max_attempts=3)

    def perform(self) -> str:
        if self.attempt == 1:
            raise jobkit.RetryLater(90, "not yet")
        return "now"


def test_each_retry_is_due_exactly_its_back_off_later() -> None:
    attempts.clear()
    with JobkitTest(start="2030-01-01 00:00:00+00:00", schedules=()) as jt:
        job = Flaky.dispatch()
        start = jt.now()
        waited = []
        for _ in range(3):
            jt.run_until_idle()
            record = job.record
            assert record is not None and record.status is jobkit.Status.RETRYING
            assert record.due_at is not None
            waited.append(record.due_at - jt.now())
            jt.advance(record.due_at - jt.now())
        assert waited == [timedelta(seconds=s) for s in (60, 120, 240)]
        assert jt.run_until_idle().succeeded == 1
        assert job.result() == "up" and attempts == [1, 2, 3, 4]
        assert jt.now() - start == timedelta(seconds=420)


def test_retry_later_is_due_when_it_asked() -> None:
    # a start on a whole millisecond: Redis's clock (TIME) counts in them
    with JobkitTest(start="2030-01-01 00:00:00+00:00", schedules=()) as jt:
        job = Later.dispatch()
        jt.run_until_idle()
        record = job.record
        assert record is not None and record.due_at is not None
        assert record.due_at - jt.now() == timedelta(seconds=90)
        jt.advance(seconds=89.999)
        assert jt.run_until_idle().total == 0
        jt.advance(seconds=0.001)
        assert jt.run_until_idle().succeeded == 1 and job.result() == "now"
