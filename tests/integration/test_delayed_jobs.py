"""Delayed jobs: ``delay=`` and ``at=`` wait in the scheduled set, then run on time."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from jobkit import Status
from tests.conftest import Env, StartWorker, wait_until
from tests.support import jobs


def test_delay_runs_after_the_delay(env: Env, start_worker: StartWorker) -> None:
    start_worker()  # idle and waiting before the job exists
    dispatched_at = time.time()
    handle = jobs.Stamp.dispatch(delay=0.5)

    assert handle.status is Status.SCHEDULED
    assert env.client.zscore(env.keys.shard("default").scheduled, handle.id) is not None
    assert env.client.zcard(env.keys.queue("default")) == 0
    ran_at = handle.result(timeout=15)

    assert ran_at - dispatched_at >= 0.5
    assert ran_at - dispatched_at < 5  # the idle worker picked it up promptly
    rec = handle.record
    assert rec is not None
    assert rec.created_at is not None and rec.due_at is not None and rec.started_at is not None
    assert rec.due_at - rec.created_at == timedelta(milliseconds=500)
    assert rec.started_at >= rec.due_at
    assert env.client.zcard(env.keys.shard("default").scheduled) == 0


def test_at_runs_at_the_given_time(env: Env, start_worker: StartWorker) -> None:
    start_worker()
    at = datetime.now(timezone.utc) + timedelta(seconds=0.8)
    handle = jobs.Stamp.dispatch(at=at)
    naive = jobs.Stamp.dispatch(at=datetime.now() + timedelta(seconds=0.3))  # local time

    assert handle.status is Status.SCHEDULED
    assert naive.status is Status.SCHEDULED
    ran_at = handle.result(timeout=15)
    assert ran_at >= at.timestamp()
    assert naive.result(timeout=15) <= ran_at  # due first, ran first
    rec = handle.record
    assert rec is not None and rec.due_at is not None
    assert abs((rec.due_at - at).total_seconds()) < 0.002


def test_at_in_the_past_is_queued_now(env: Env) -> None:
    # a queue no earlier test's worker served: a worker SIGKILLed while idle can leave a
    # claim pipelined behind its blocked BLPOP in Redis, which would lease this job
    handle = jobs.Stamp.dispatch(at=datetime.now(timezone.utc) - timedelta(hours=1),
                                 queue="past")  # fmt: skip
    assert handle.status is Status.QUEUED
    assert env.client.zscore(env.keys.queue("past"), handle.id) is not None


def test_delayed_jobs_do_not_run_early(env: Env, start_worker: StartWorker) -> None:
    start_worker()
    later = jobs.Stamp.dispatch(delay=3)
    now = jobs.Stamp.dispatch()
    now.result(timeout=15)
    time.sleep(0.3)
    assert later.status is Status.SCHEDULED
    wait_until(lambda: later.status is Status.SUCCEEDED, timeout=15, what="the delayed job")
