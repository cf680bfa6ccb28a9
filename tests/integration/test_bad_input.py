"""Invalid params, corrupt payloads, unknown job names and unserialisable results."""

from __future__ import annotations

import time
from typing import Any

import pydantic
import pytest

from jobkit import DeadReason, JobFailed, Status
from tests.conftest import Env, StartWorker
from tests.support import jobs


def _all_keys(env: Env) -> dict[str, Any]:
    return {key: env.client.dump(key) for key in env.client.keys("*")}


def test_invalid_params_raise_and_write_nothing(env: Env) -> None:
    jobs.Add.dispatch(a=1, b=2)  # something is there already
    before = _all_keys(env)
    dbsize = env.client.dbsize()

    with pytest.raises(pydantic.ValidationError):
        jobs.Add.dispatch(a="not a number", b=2)
    with pytest.raises(pydantic.ValidationError):
        jobs.Add.dispatch(a=1)  # missing b
    with pytest.raises(pydantic.ValidationError):
        jobs.Add.dispatch(a=1, b=2, c=3)  # extra field forbidden
    with pytest.raises(pydantic.ValidationError) as caught:
        jobs.Add.dispatch_many([{"a": 1, "b": 2}, {"a": "x", "b": 2}])  # all or nothing
    assert [e["loc"] for e in caught.value.errors()] == [(1, "a")]  # the item, by index

    assert env.client.dbsize() == dbsize
    assert _all_keys(env) == before


def _insert_job(env: Env, job_id: str, name: str, params: str, *, priority: int = 0) -> None:
    """Write a queued job straight into Redis, as enqueue.lua would."""
    k = env.keys.shard("default")
    seq = int(env.client.incr(k.seq))
    now_ms = int(time.time() * 1000)
    env.client.hset(
        k.job(job_id),
        mapping={
            "id": job_id,
            "name": name,
            "lane": "default",
            "queue": "default",
            "params": params,
            "priority": priority,
            "seq": seq,
            "status": "queued",
            "attempts": 0,
            "lease": 0,
            "crashes": 0,
            "max_attempts": 3,
            "timeout": 0,
            "result_ttl": 3600,
            "created_at": now_ms,
            "due_at": now_ms,
        },
    )
    env.client.zadd(k.queue_key("default"), {job_id: -priority * 2**40 + seq})
    env.client.lpush(k.wake("default"), "1")


def test_corrupt_payload_and_unknown_job_are_dead_lettered(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker()
    _insert_job(env, "default:corrupt", "tests.support.jobs.Add", "{not json")
    _insert_job(env, "default:wrong-type", "tests.support.jobs.Add", '{"a": "x", "b": 1}')
    _insert_job(env, "default:unknown", "tests.support.jobs.NoSuchJob", "{}")

    corrupt = jobs.Add.dispatch(a=0, b=0, job_id="corrupt")  # a handle on the inserted job
    for job_id, reason in [
        ("corrupt", DeadReason.INVALID_PAYLOAD),
        ("wrong-type", DeadReason.INVALID_PAYLOAD),
        ("unknown", DeadReason.UNKNOWN_JOB),
    ]:
        handle = jobs.Add.dispatch(a=0, b=0, job_id=job_id)
        with pytest.raises(JobFailed):
            handle.result(timeout=20)
        rec = handle.record
        assert rec is not None
        assert rec.status is Status.DEAD, job_id
        assert rec.reason == reason.value, job_id
        assert rec.attempts == 1, job_id  # never retried: it cannot get better
        assert env.client.zscore(env.keys.shard("default").dead, handle.id) is not None
    assert corrupt.error is not None
    assert corrupt.error.type == "ValidationError"
    unknown = jobs.Add.dispatch(a=0, b=0, job_id="unknown")
    assert unknown.error is not None
    assert unknown.error.type == "UnknownJobError"
    assert "tests.support.jobs.NoSuchJob" in unknown.error.message

    # the worker is unharmed
    assert jobs.Add.dispatch(a=4, b=5).result(timeout=20) == 9
    assert worker.alive()
    assert env.stats().get("dead") == 3


def test_unserialisable_result_is_dead_lettered(env: Env, start_worker: StartWorker) -> None:
    worker = start_worker()
    handle = jobs.BadResult.dispatch()
    with pytest.raises(JobFailed):
        handle.result(timeout=20)
    assert handle.status is Status.DEAD
    rec = handle.record
    assert rec is not None
    assert rec.reason == DeadReason.INVALID_RESULT.value
    assert rec.result_json is None
    assert handle.error is not None
    assert "object" in handle.error.message

    assert jobs.Add.dispatch(a=1, b=1).result(timeout=20) == 2
    assert worker.alive()
