"""Graceful stop on SIGTERM: running jobs finish, or go back to their queue after --grace."""

from __future__ import annotations

import os
import signal
import time

from jobkit import Status
from tests.conftest import Env, StartWorker, wait_until
from tests.support import jobs


def test_sigterm_lets_the_running_job_finish(env: Env, start_worker: StartWorker) -> None:
    worker = start_worker(grace=20)
    handle = jobs.Sleepy.dispatch(marker="started", seconds=1.5)
    wait_until(lambda: env.client.exists("started"), timeout=15, what="the job to start")

    sent = time.monotonic()
    worker.terminate()  # the supervisor only; it tells its children
    assert worker.wait(timeout=20) == 0
    assert time.monotonic() - sent < 10
    assert worker.group_pids() == []

    assert handle.status is Status.SUCCEEDED
    assert handle.result(timeout=1) >= 1.5
    assert handle.attempts == 1
    assert env.client.zcard(env.keys.shard("default").running) == 0
    # the worker said goodbye
    assert not env.client.exists(env.keys.worker(worker.name))
    assert env.client.zscore(env.keys.workers, worker.name) is None


def test_sigterm_on_an_idle_worker_exits_at_once(env: Env, start_worker: StartWorker) -> None:
    worker = start_worker(concurrency=2)
    sent = time.monotonic()
    worker.terminate()
    assert worker.wait(timeout=15) == 0
    assert time.monotonic() - sent < 5
    assert worker.group_pids() == []  # the children exited too


def test_grace_over_requeues_the_job_for_another_worker(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker(grace=0.5)
    handle = jobs.SlowOnce.dispatch(once="slow-once", marker="started")
    wait_until(lambda: env.client.exists("started"), timeout=15, what="the job to start")
    assert handle.status is Status.RUNNING
    assert handle.attempts == 1

    sent = time.monotonic()
    worker.terminate()
    assert worker.wait(timeout=15) == 0
    assert time.monotonic() - sent < 10  # well before the job's 30 s
    assert worker.group_pids() == []  # the busy child was killed

    assert handle.status is Status.QUEUED
    assert handle.attempts == 0  # the interrupted attempt is not counted
    assert env.client.zscore(env.keys.queue("default"), handle.id) is not None
    assert env.client.zcard(env.keys.shard("default").running) == 0
    assert env.stats().get("failed", 0) == 0

    start_worker()
    assert handle.result(timeout=20) == "fast"
    assert handle.status is Status.SUCCEEDED
    assert handle.attempts == 1


def test_sigterm_gives_back_prefetched_jobs_unstarted(env: Env, start_worker: StartWorker) -> None:
    handles = [jobs.Sleepy.dispatch(marker=f"started-{i}", seconds=1.0) for i in range(3)]
    worker = start_worker(concurrency=1, grace=20, extra=("--prefetch", "3"))
    wait_until(lambda: env.client.exists("started-0"), timeout=15, what="the first job")
    # all three were leased together; the two waiting ones stay leased until SIGTERM, or
    # until the first job has run RELEASE_AFTER (0.1 s), when they are handed back anyway
    assert handles[0].status is Status.RUNNING
    assert {h.status for h in handles[1:]} <= {Status.RUNNING, Status.QUEUED}

    worker.terminate()
    assert worker.wait(timeout=20) == 0

    first, *rest = handles
    assert first.status is Status.SUCCEEDED
    for h in rest:
        assert h.status is Status.QUEUED
        assert h.attempts == 0
        assert env.client.zscore(env.keys.queue("default"), h.id) is not None
    assert not env.client.exists("started-1")
    assert env.client.zcard(env.keys.shard("default").running) == 0


def test_children_exit_when_their_supervisor_is_killed(env: Env, start_worker: StartWorker) -> None:
    worker = start_worker(concurrency=2)
    children = worker.child_pids()
    assert len(children) == 2

    os.kill(worker.pid, signal.SIGKILL)  # the supervisor alone
    worker.wait(timeout=10)
    wait_until(lambda: not worker.group_pids(), timeout=10, what="orphaned children to exit")
