"""A user's unit tests on jobkit's testing mode: no Redis, no worker, no sleeping."""

from __future__ import annotations

from datetime import timedelta

import pytest

import jobkit
from jobkit.testing import JobkitTest

from . import mail


@pytest.fixture(autouse=True)
def _clean() -> None:
    mail.outbox.clear()
    mail.failures_left["count"] = 0


def test_a_job_runs_and_returns(jobkit_test: JobkitTest) -> None:
    job = mail.send_welcome(42)
    (sent,) = jobkit_test.dispatched(mail.send_welcome)
    assert sent.params == {"user_id": 42, "template": "welcome"}  # defaults stored too
    assert jobkit_test.run_until_idle().succeeded == 1
    assert job.result() == "sent"
    assert mail.outbox == ["welcome:42"]


def test_a_failure_is_retried_after_its_back_off(jobkit_test: JobkitTest) -> None:
    mail.failures_left["count"] = 1
    job = mail.send_welcome.delay(7)
    assert jobkit_test.run_until_idle().retrying == 1
    assert job.status is jobkit.Status.RETRYING
    jobkit_test.advance(seconds=59)
    assert jobkit_test.run_until_idle().total == 0  # the back-off (60 s) has not passed
    jobkit_test.advance(seconds=1)
    assert jobkit_test.run_until_idle().succeeded == 1
    assert job.result() == "sent" and job.attempts == 2


def test_failing_for_good_lands_in_the_dead_letters(jobkit_test: JobkitTest) -> None:
    mail.failures_left["count"] = 5
    job = mail.send_welcome(1)
    for _ in range(3):
        jobkit_test.run_until_idle()
        jobkit_test.advance(minutes=5)
    assert job.status is jobkit.Status.DEAD
    assert [d.id for d in jobkit_test.jobs(jobkit.Status.DEAD)] == [job.id]
    with pytest.raises(jobkit.JobFailed, match="smtp down"):
        job.result()


def test_a_delayed_job_waits_for_its_time(jobkit_test: JobkitTest) -> None:
    job = mail.Digest.dispatch(user_id=3, delay=timedelta(hours=1))
    jobkit_test.run_until_idle()
    assert job.status is jobkit.Status.SCHEDULED and mail.outbox == []
    jobkit_test.advance(hours=1)
    jobkit_test.run_until_idle()
    # the hour may cross 01:00 (the clock starts at the real time): the nightly report too
    assert job.result() == 3 and [m for m in mail.outbox if m != "report"] == ["digest:3"]


def test_a_cron_slot_fires_at_its_time() -> None:
    with JobkitTest(start="2026-03-02 00:30:00+00:00") as jt:
        jt.advance(minutes=29)
        assert jt.dispatched(mail.nightly_report) == []
        jt.advance(minutes=1)  # 01:00: the slot is enqueued
        assert len(jt.dispatched(mail.nightly_report)) == 1
        jt.advance(days=2)  # two more nights, each slot at its own time
        slots = jt.dispatched(mail.nightly_report)
        assert [d.record.due_at.hour for d in slots if d.record.due_at] == [1, 1, 1]
        assert jt.run_until_idle().succeeded == 3
        assert mail.outbox == ["report"] * 3
