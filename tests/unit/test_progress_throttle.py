"""The throttle and the reporter of ``BaseJob.progress`` (jobkit/progress.py), with no
Redis: the first value goes at once, then at most one per interval, the latest kept
meanwhile and written by the flush; arguments out of range are refused; a refused write
(a stale lease) stops the writes; a job built outside a worker records, writes nothing."""

from __future__ import annotations

import math
from fractions import Fraction

import fakeredis
import pytest
from freezegun import freeze_time

from jobkit import BaseJob
from jobkit.backend.store import Store
from jobkit.errors import InvalidProgress, JobkitError
from jobkit.models import Claimed
from jobkit.progress import (
    INTERVAL,
    MAX_MESSAGE,
    RUN,
    Reporter,
    Throttle,
    Value,
    checked,
    flush,
    last_reported,
)


class Writes:
    """A write function that records what it was given; answers ``held``."""

    def __init__(self, held: bool = True) -> None:
        self.held = held
        self.sent: list[Value] = []

    def __call__(self, fraction: float, message: str) -> bool:
        self.sent.append((fraction, message))
        return self.held


class Local(BaseJob):
    name = "tests.unit.test_progress_throttle.Local"

    def perform(self) -> None:
        for i in range(1, 101):
            self.progress(i / 100, f"{i}%")


def test_the_first_value_goes_at_once_then_one_per_interval() -> None:
    with freeze_time("2030-01-01") as clock:
        throttle: Throttle[int] = Throttle()
        assert throttle.offer(1) == 1
        assert throttle.offer(2) is None and throttle.pending == 2
        clock.tick(INTERVAL / 2)
        assert throttle.offer(3) is None and throttle.pending == 3  # the latest wins
        clock.tick(INTERVAL / 2)
        assert throttle.offer(4) == 4 and throttle.pending is None
        assert throttle.take() is None  # nothing kept: nothing to flush
        assert throttle.offer(5) is None
        assert throttle.take() == 5 and throttle.take() is None


def test_twenty_thousand_reports_in_a_burst_are_two_writes_the_last_one_kept() -> None:
    write = Writes()
    with freeze_time("2030-01-01", tick=True):
        reporter = Reporter(write)
        for i in range(1, 20_001):
            reporter.offer((i / 20_000, f"step {i}"))
        assert len(write.sent) <= 2  # the first; one more if the burst outlasted 0.5 s
        reporter.flush()
    assert write.sent[0] == (1 / 20_000, "step 1")
    assert write.sent[-1] == (1.0, "step 20000") and len(write.sent) <= 3
    reporter.flush()
    assert len(write.sent) <= 3  # nothing owed twice


def test_a_slow_loop_writes_about_once_per_interval() -> None:
    write = Writes()
    with freeze_time("2030-01-01") as clock:
        reporter = Reporter(write)
        for i in range(100):  # 10 s of reports 0.1 s apart
            reporter.offer((i / 100, ""))
            clock.tick(0.1)
        reporter.flush()
    assert 20 <= len(write.sent) <= 22
    assert write.sent[-1] == (0.99, "")


def test_a_refused_write_stops_the_writes() -> None:
    write = Writes(held=False)  # another attempt holds the lease
    with freeze_time("2030-01-01") as clock:
        reporter = Reporter(write)
        reporter.offer((0.1, ""))
        clock.tick(1)
        reporter.offer((0.2, ""))
        reporter.flush()
    assert write.sent == [(0.1, "")]
    assert reporter.last == (0.2, "")


@pytest.mark.parametrize(
    "fraction", [-0.01, 1.0001, math.nan, math.inf, -math.inf, True, False, "0.5", None,
                 10**400, complex(0.5, 0)],
)  # fmt: skip
def test_a_fraction_outside_zero_to_one_is_refused(fraction: object) -> None:
    with pytest.raises(InvalidProgress) as info:
        checked(fraction, "x")
    assert isinstance(info.value, JobkitError) and isinstance(info.value, ValueError)
    assert "from 0 to 1" in str(info.value)


def test_fractions_and_messages_as_they_are_written() -> None:
    assert checked(0) == (0.0, "")
    assert checked(1, None) == (1.0, "")
    assert checked(Fraction(1, 4), "a quarter") == (0.25, "a quarter")
    cut = checked(0.5, "x" * 10_000)[1]
    assert len(cut) == MAX_MESSAGE and cut.endswith("…")
    assert checked(0.5, "lone \udc00 surrogate")[1] == "lone ? surrogate"
    with pytest.raises(InvalidProgress, match="message must be a string"):
        checked(0.5, b"bytes")


def test_a_job_built_outside_a_worker_records_and_writes_nothing() -> None:
    job = Local(Local.Params())
    assert last_reported(job) is None
    job.perform()
    assert last_reported(job) == (1.0, "100%")
    flush(job)  # nothing to write, nowhere: harmless
    job.progress(0.5)
    assert last_reported(job) == (0.5, None)
    with pytest.raises(InvalidProgress):
        job.progress(2)
    assert last_reported(job) == (0.5, None)  # a refused value changes nothing


class Run:
    """What a job's RUN attribute holds in a worker: the executor's store and the job
    it runs now."""

    def __init__(self, running: Claimed) -> None:
        self.store = Store(fakeredis.FakeRedis(decode_responses=True))
        self.running = running


def _claimed(job_id: str, attempts: int) -> Claimed:
    return Claimed(job_id, "1", Local.name, "{}", attempts, 0.0, "default")


def test_a_report_writes_only_for_the_attempt_its_executor_runs() -> None:
    job = Local(Local.Params(), job_id="default:a", attempt=2)
    setattr(job, RUN, Run(_claimed("default:b", 2)))  # the executor moved on to another job
    job.progress(0.5)
    reporter = getattr(job, RUN)
    assert isinstance(reporter, Reporter) and reporter.writes == 0
    assert last_reported(job) == (0.5, None)

    job = Local(Local.Params(), job_id="default:a", attempt=2)
    setattr(job, RUN, Run(_claimed("default:a", 2)))  # this attempt: written, refused by
    job.progress(0.5)  # Redis (it holds no such running job), and no write after that
    job.progress(0.6)
    reporter = getattr(job, RUN)
    assert isinstance(reporter, Reporter) and reporter.writes == 1
    flush(job)
    assert reporter.writes == 1 and last_reported(job) == (0.6, None)
