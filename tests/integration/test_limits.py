"""Limits the supervisor enforces: hard per-attempt timeouts and per-child memory."""

from __future__ import annotations

import pytest

from jobkit import DeadReason, JobFailed, Status
from tests.conftest import Env, StartWorker, wait_until
from tests.support import jobs


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


def test_a_child_over_max_memory_mid_job_is_killed_and_the_job_retried(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker(concurrency=1, extra=("--max-memory", "150MB"))
    handle = jobs.HogOnce.dispatch(marker="hog-pid", mb=300, seconds=30)

    assert handle.result(timeout=20) == 2  # killed long before its 30 s, then retried
    first = int(env.client.get("hog-pid") or 0)
    assert first and first not in worker.child_pids()
    assert handle.attempts == 2
    assert env.stats().get("failed") == 1
    assert "150 MB running tests.support.jobs.HogOnce" in worker.log_text()
    assert jobs.WhoAmI.dispatch().result(timeout=20)["ppid"] == worker.pid


def test_a_job_killed_for_memory_without_retries_left_is_dead_with_reason_memory(
    env: Env, start_worker: StartWorker
) -> None:
    start_worker(concurrency=1, extra=("--max-memory", "150"))
    handle = jobs.HogNoRetry.dispatch(marker="hog-pid", mb=300, seconds=30)

    with pytest.raises(JobFailed) as failed:
        handle.result(timeout=20)
    assert failed.value.status == "dead"
    rec = handle.record
    assert rec is not None and rec.reason == DeadReason.MEMORY.value
    assert rec.attempts == 1 and rec.crashes == 0  # a memory kill is not a crash
    assert rec.error is not None and rec.error.type == "MemoryLimit"
    assert "150 MB limit" in rec.error.message
    assert rec.started_at is not None and rec.finished_at is not None
    assert (rec.finished_at - rec.started_at).total_seconds() < 10
    assert env.client.zcard(env.keys.shard("default").running) == 0
    assert jobs.Add.dispatch(a=1, b=2).result(timeout=20) == 3


def test_a_child_over_max_memory_after_its_job_is_replaced_before_its_next(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker(concurrency=1, extra=("--max-memory", "100MB"))
    [first_child] = worker.child_pids()

    assert jobs.Leak.dispatch(mb=200).result(timeout=20) == first_child  # not interrupted
    wait_until(lambda: first_child not in worker.child_pids(), timeout=10, what="recycling")
    who = jobs.WhoAmI.dispatch().result(timeout=20)
    assert who["pid"] != first_child and who["ppid"] == worker.pid
    assert "between jobs: replacing it after its current job" in worker.log_text()
    assert "died unexpectedly" not in worker.log_text()
