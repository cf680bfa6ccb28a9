"""Leases: a killed worker's job is reaped and rerun once; stale tokens are refused."""

from __future__ import annotations

import time

import orjson
import pytest

from jobkit import DeadReason, JobFailed, Status
from jobkit.backend.store import Lease
from tests.conftest import LEASE, Env, StartWorker, wait_until
from tests.support import jobs


def test_sigkilled_worker_job_is_requeued_and_completed_once(
    env: Env, start_worker: StartWorker
) -> None:
    first = start_worker()
    handle = jobs.CountOnce.dispatch(marker="started", counter="done", first_sleep=30)
    wait_until(lambda: env.client.exists("started"), timeout=15, what="the job to start")
    # its child marked the attempt begun before it began: from then on a death is a crash
    assert env.client.hexists(env.keys.shard("default").started, f"1:{handle.id}")
    assert handle.status is Status.RUNNING
    assert handle.attempts == 1
    first_child = int(env.client.get("started") or 0)

    first.kill()  # SIGKILL to the whole group, mid-job
    assert not first.alive()
    env.client.delete("started")
    # nobody renews the lease now; the job stays "running" until it expires
    assert handle.status is Status.RUNNING
    assert env.client.zscore(env.keys.shard("default").running, handle.id) is not None

    killed_at = time.monotonic()
    start_worker()
    assert handle.result(timeout=LEASE + 20) == 2
    assert time.monotonic() - killed_at >= LEASE / 2  # it waited for the lease to lapse

    assert handle.status is Status.SUCCEEDED
    assert handle.attempts == 2
    assert int(env.client.get("started") or 0) != first_child
    assert env.client.get("done") == "1"  # the killed attempt never completed
    stats = env.stats()
    assert stats.get("succeeded") == 1
    assert stats.get("dead", 0) == 0
    rec = handle.record
    assert rec is not None
    assert rec.crashes == 1
    assert env.client.zcard(env.keys.shard("default").running) == 0
    assert env.client.zcard(env.keys.shard("default").dead) == 0


def test_zombie_completion_with_a_stale_token_is_refused(env: Env) -> None:
    store = env.store
    handle = jobs.Add.dispatch(a=1, b=1)

    [old] = store.leasing.claim("zombie", 50, 1, [["default"]])
    assert old.id == handle.id
    assert old.attempts == 1
    assert handle.status is Status.RUNNING
    store.leasing.mark_started([(old.id, old.token)])  # as its supervisor does when it starts
    time.sleep(0.15)  # the 50 ms lease runs out

    assert store.leasing.reap(max_crashes=5, queues=["default"]) == [(handle.id, "requeued")]
    assert handle.status is Status.QUEUED
    [new] = store.leasing.claim("rescuer", 10_000, 1, [["default"]])
    assert new.id == handle.id
    assert new.token != old.token
    assert new.attempts == 2

    assert store.leasing.complete(handle.id, old.token, b"111", 60) is False
    assert handle.status is Status.RUNNING  # the zombie changed nothing
    assert store.leasing.heartbeat(10_000, [(handle.id, old.token)]) == [Lease.LOST]
    assert store.leasing.fail(handle.id, old.token, dead=True, delay_ms=0, reason="exception",
                      error_json=b"{}", ttl=60) is False  # fmt: skip

    assert store.leasing.complete(handle.id, new.token, b"2", 60) is True
    # the same holder's completion sent again (a lost reply) is recognised, not re-applied
    assert store.leasing.complete(handle.id, new.token, b"3", 60) is True
    assert handle.status is Status.SUCCEEDED
    assert handle.result(timeout=1) == 2
    assert env.stats().get("succeeded") == 1
    assert env.client.zcard(env.keys.shard("default").running) == 0


def test_reap_dead_letters_a_job_that_keeps_crashing(env: Env) -> None:
    store = env.store
    handle = jobs.Add.dispatch(a=1, b=1)
    for _ in range(2):
        [job] = store.leasing.claim("crashy", 1, 1, [["default"]])
        store.leasing.mark_started([(job.id, job.token)])
        time.sleep(0.02)
        outcome = store.leasing.reap(max_crashes=2, queues=["default"])
    assert outcome == [(handle.id, "dead")]
    assert handle.status is Status.DEAD
    rec = handle.record
    assert rec is not None
    assert rec.reason == "crashed"
    assert rec.crashes == 2
    assert env.client.zscore(env.keys.shard("default").dead, handle.id) is not None
    assert store.leasing.reap(max_crashes=2, queues=["default"]) == []  # idempotent


def test_stuck_running_job_is_reaped_and_completed(env: Env, start_worker: StartWorker) -> None:
    """The exercise: a job left 'running' by a worker that vanished long ago."""
    k, job_id = env.keys.shard("default"), "default:stuck-1"
    now_ms = int(time.time() * 1000)
    env.client.hset(
        k.job(job_id),
        mapping={
            "id": job_id,
            "name": "tests.support.jobs.Add",
            "lane": "default",
            "queue": "default",
            "params": orjson.dumps({"a": 20, "b": 22}).decode(),
            "priority": 0,
            "seq": 1,
            "status": "running",
            "attempts": 1,
            "lease": "1",
            "started": "1",  # attempt 1 began, marked in its record as jobkit once did
            "crashes": 0,
            "max_attempts": 3,
            "timeout": 0,
            "result_ttl": 3600,
            "created_at": now_ms - 60_000,
            "due_at": now_ms - 60_000,
            "started_at": now_ms - 59_000,
            "worker": "long-gone",
        },
    )
    env.client.zadd(k.running, {job_id: now_ms - 30_000})  # deadline long past

    start_worker()
    handle = jobs.Add.dispatch(a=0, b=0, job_id="stuck-1")  # idempotent: just a handle
    assert handle.result(timeout=20) == 42

    assert handle.status is Status.SUCCEEDED
    assert handle.attempts == 2
    rec = handle.record
    assert rec is not None
    assert rec.crashes == 1
    assert rec.worker != "long-gone"
    assert env.client.zcard(k.running) == 0
    assert env.stats().get("succeeded") == 1


def test_job_that_keeps_killing_its_child_ends_dead_as_crashed(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker()
    handle = jobs.Crash.dispatch(counter="runs")

    with pytest.raises(JobFailed):
        handle.result(timeout=30)
    rec = handle.record
    assert rec is not None
    assert rec.status is Status.DEAD
    assert rec.reason == DeadReason.CRASHED.value
    assert rec.crashes == 2  # max_crashes, though the retry policy allows 5 attempts
    assert rec.attempts == 2
    assert env.client.get("runs") == "2"
    assert handle.error is not None
    assert handle.error.type == "WorkerLost"

    # the supervisor replaced its child each time and goes on serving
    assert jobs.Add.dispatch(a=1, b=2).result(timeout=20) == 3
    assert worker.alive()
    assert len(worker.child_pids()) == 1
