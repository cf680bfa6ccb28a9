"""Limits the supervisor enforces: hard per-attempt timeouts and per-child memory."""

from __future__ import annotations

import pytest

from jobkit import DeadReason, JobFailed, Status
from tests import jobs
from tests.conftest import Env, StartWorker, wait_until


def test_job_over_its_timeout_is_killed_and_the_worker_goes_on(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker(concurrency=1)
    [first_child] = worker.child_pids()
    handle = jobs.Hang.dispatch(marker="hang-pid")

    with pytest.raises(JobFailed) as failed:
        handle.result(timeout=20)  # long before the job's own 30 s sleep ends
    assert failed.value.status == "dead"
    assert int(env.client.get("hang-pid") or 0) == first_child
    assert handle.status is Status.DEAD
    assert handle.attempts == 1
    rec = handle.record
    assert rec is not None
    assert rec.reason == DeadReason.TIMEOUT.value
    assert handle.error is not None
    assert handle.error.type == "JobTimeout"
    assert "0.5s" in handle.error.message
    assert rec.started_at is not None and rec.finished_at is not None
    elapsed = (rec.finished_at - rec.started_at).total_seconds()
    assert 0.5 <= elapsed < 10
    assert env.client.zcard(env.keys.shard("default").running) == 0

    # the same supervisor replaced the killed child, which serves the next job
    who = jobs.WhoAmI.dispatch().result(timeout=20)
    assert worker.alive()
    assert who["ppid"] == worker.pid
    assert who["pid"] != first_child
    wait_until(lambda: first_child not in worker.child_pids(), timeout=5, what="old child gone")
    assert len(worker.child_pids()) == 1


def test_timeout_with_retries_left_retries_then_dies(env: Env, start_worker: StartWorker) -> None:
    """A timed-out attempt counts like a failure: retried while attempts remain."""
    start_worker(concurrency=1)
    handle = jobs.HangRetried.dispatch(marker="m")
    with pytest.raises(JobFailed):
        handle.result(timeout=20)
    assert handle.attempts == 2
    rec = handle.record
    assert rec is not None
    assert rec.reason == DeadReason.TIMEOUT.value
    assert rec.crashes == 0  # a timeout is not a crash
    stats = env.stats()
    assert stats.get("failed") == 2
    assert stats.get("dead") == 1


def test_child_over_max_memory_is_replaced_after_its_job(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker(concurrency=1, extra=("--max-memory", "100"))
    [first_child] = worker.child_pids()
    handle = jobs.Hog.dispatch(mb=200, seconds=1.0)

    assert handle.result(timeout=20) == first_child  # the job itself is not interrupted
    assert handle.attempts == 1
    wait_until(lambda: first_child not in worker.child_pids(), timeout=10, what="recycling")
    who = jobs.WhoAmI.dispatch().result(timeout=20)
    assert who["pid"] != first_child
    assert who["ppid"] == worker.pid
    assert "replacing it after its job" in worker.log_text()
