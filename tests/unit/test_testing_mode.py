"""jobkit.testing's own promises: the default connection and a Queue's are swapped in
and back, the clock stands still until advanced, a run stops at its limit, and the
listing of what was dispatched filters by class, task or name."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

import jobkit
from jobkit import connection
from jobkit.testing import JobkitTest
from tests.support.user_project import mail


def test_the_default_connection_and_queues_are_swapped_back() -> None:
    before = connection.replace_default(None, None)
    connection.replace_default(*before)
    side = jobkit.Queue(redis="redis://127.0.0.1:9/0")
    with JobkitTest(queues=[side]) as jt:
        assert jobkit.get_store() is jt.store
        assert side.store is jt.store
    assert side.use_store(None) is None  # put back: not connected yet
    assert connection.replace_default(*before) == before


def test_the_clock_stands_still_until_advanced() -> None:
    with JobkitTest(start="2030-01-01 12:00:00+00:00", schedules=()) as jt:
        assert jt.now() == datetime(2030, 1, 1, 12, tzinfo=timezone.utc)
        assert jt.redis.time()[0] == int(jt.now().timestamp())  # Redis's clock too
        jt.advance(90)
        assert jt.now() == datetime(2030, 1, 1, 12, 1, 30, tzinfo=timezone.utc)


def test_a_run_stops_at_its_limit() -> None:
    with JobkitTest(schedules=()) as jt:  # no cron job of another test module fires
        for i in range(5):
            mail.Digest.dispatch(user_id=i)
        assert jt.run_until_idle(limit=2).total == 2
        assert jt.run_until_idle().succeeded == 3


def test_dispatched_filters_by_class_task_or_name() -> None:
    mail.failures_left["count"] = 0
    with JobkitTest(schedules=()) as jt:
        mail.Digest.dispatch(user_id=1)
        mail.send_welcome(2)
        assert [d.name for d in jt.dispatched(mail.Digest)] == [mail.Digest.name]
        assert [d.params["user_id"] for d in jt.dispatched(mail.send_welcome)] == [2]
        assert len(jt.dispatched(mail.send_welcome.name)) == 1
        assert len(jt.dispatched()) == 2


def test_only_the_schedules_named_fire() -> None:
    with JobkitTest(start="2026-03-02 00:30:00+00:00", schedules=[mail.nightly_report]) as jt:
        jt.advance(hours=1)
        assert {d.name for d in jt.dispatched()} == {mail.nightly_report.name}


def test_advance_needs_a_started_mode() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        JobkitTest().advance(1)


def test_a_chain_and_a_failure_in_the_testing_mode() -> None:
    from tests.support import flow_jobs as f

    with JobkitTest(schedules=()) as jt:
        flow = jobkit.chain(f.extract.s("ab"), f.transform.s(factor=3), f.load.s()).dispatch()
        assert jt.run_until_idle().succeeded == 3  # across two queues, notices delivered
        assert flow.result() == (2 + 2 + 3) * 3
        broken = f.fails()
        waiting = f.square.job.dispatch(n=1, depends_on=[broken])
        jt.run_until_idle()
        assert waiting.status is jobkit.Status.CANCELLED
