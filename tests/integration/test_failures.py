"""Failed attempts: back-off and retry, RetryLater, the dead-letter set and its CLI."""

from __future__ import annotations

import orjson
import pytest

from jobkit import DeadReason, JobFailed, Status
from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import jobs


def test_retry_with_backoff_then_success(env: Env, start_worker: StartWorker) -> None:
    start_worker()
    handle = jobs.Flaky.dispatch(times_key="times", fail_times=2)

    assert handle.result(timeout=20) == "ok on attempt 3"
    assert handle.status is Status.SUCCEEDED
    assert handle.attempts == 3
    times = [float(t) for t in env.client.lrange("times", 0, -1)]
    assert len(times) == 3
    policy = jobs.Flaky.retry
    assert (policy.delay_for(1), policy.delay_for(2)) == (0.3, 0.6)
    assert times[1] - times[0] >= policy.delay_for(1)
    assert times[2] - times[1] >= policy.delay_for(2)
    stats = env.stats()
    assert stats.get("failed") == 2
    assert stats.get("succeeded") == 1
    assert stats.get("dead", 0) == 0
    # the errors of the attempts that failed no longer describe a job that succeeded
    rec = handle.record
    assert rec is not None and rec.error is None and rec.reason is None


def test_exhausted_job_is_dead_lettered_and_managed_by_the_cli(
    env: Env, start_worker: StartWorker
) -> None:
    start_worker()
    handle = jobs.NeedsFlag.dispatch(flag="flag")

    with pytest.raises(JobFailed) as failed:
        handle.result(timeout=20)
    assert failed.value.status == "dead"
    assert handle.status is Status.DEAD
    assert handle.attempts == 2
    rec = handle.record
    assert rec is not None
    assert rec.reason == DeadReason.EXCEPTION.value
    assert handle.error is not None
    assert handle.error.type == "ValueError"
    assert handle.error.message == "flag flag is not set"
    assert "Traceback (most recent call last)" in handle.error.traceback
    assert "NeedsFlag" in handle.error.traceback or "perform" in handle.error.traceback
    assert env.client.zscore(env.keys.shard("default").dead, handle.id) is not None
    assert env.client.ttl(env.keys.job(handle.id)) == -1  # dead jobs do not expire
    assert env.stats().get("dead") == 1

    listed = run_cli("dead", "list", "--json", url=env.url)
    assert listed.returncode == 0, listed.stderr
    entries = orjson.loads(listed.stdout)
    assert [e["id"] for e in entries] == [handle.id]
    assert entries[0]["status"] == "dead"
    assert entries[0]["reason"] == "exception"
    assert entries[0]["name"] == "tests.support.jobs.NeedsFlag"

    shown = run_cli("dead", "show", handle.id, "--json", url=env.url)
    assert shown.returncode == 0, shown.stderr
    detail = orjson.loads(shown.stdout)
    assert detail["id"] == handle.id
    assert detail["attempts"] == 2
    assert detail["params"] == {"flag": "flag"}
    assert detail["error"]["type"] == "ValueError"
    assert "Traceback" in detail["error"]["traceback"]

    env.client.set("flag", "1")  # the next run succeeds
    retried = run_cli("dead", "retry", handle.id, url=env.url)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "requeued 1 of 1" in retried.stdout
    assert env.client.zscore(env.keys.shard("default").dead, handle.id) is None

    assert handle.result(timeout=20) == "flag seen"
    assert handle.status is Status.SUCCEEDED
    assert handle.attempts == 1  # a revived job gets a fresh attempt budget
    assert run_cli("dead", "retry", handle.id, url=env.url).returncode == 1  # not dead

    empty = run_cli("dead", "list", "--json", url=env.url)
    assert orjson.loads(empty.stdout) == []


def test_dead_purge_all_empties_the_set(env: Env, start_worker: StartWorker) -> None:
    start_worker(concurrency=2)
    handles = [jobs.NeedsFlag.dispatch(flag="never") for _ in range(3)]
    for h in handles:
        with pytest.raises(JobFailed):
            h.result(timeout=20)
    assert env.client.zcard(env.keys.shard("default").dead) == 3

    purged = run_cli("dead", "purge", "--all", url=env.url)
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert "purged 3" in purged.stdout
    assert env.client.zcard(env.keys.shard("default").dead) == 0
    assert all(h.refresh().status is Status.UNKNOWN for h in handles)
    assert orjson.loads(run_cli("dead", "list", "--json", url=env.url).stdout) == []


def test_unknown_id_in_cli_show_exits_1(env: Env) -> None:
    shown = run_cli("dead", "show", "nope", "--json", url=env.url)
    assert shown.returncode == 1
    assert orjson.loads(shown.stdout) == {"id": "nope", "status": "unknown"}


def test_retry_later_reruns_the_job_after_its_delay(env: Env, start_worker: StartWorker) -> None:
    start_worker()
    handle = jobs.Later.dispatch(times_key="times", retry_in=1.5)
    wait_until(lambda: env.client.llen("times") == 1, timeout=15, what="attempt 1")
    wait_until(lambda: handle.status is not Status.RUNNING, timeout=5, what="attempt 1 to end")

    # between attempts the job waits in the scheduled set, due after its delay
    assert handle.status is Status.RETRYING
    due_ms = env.client.zscore(env.keys.shard("default").scheduled, handle.id)
    assert due_ms is not None
    assert due_ms / 1000 - float(env.client.lindex("times", 0) or 0) >= 1.5
    assert env.client.zscore(env.keys.queue("default"), handle.id) is None
    assert handle.error is not None
    assert handle.error.type == "RetryLater"
    assert handle.error.message == "not yet"

    assert handle.result(timeout=20) == 2
    assert handle.attempts == 2
    times = [float(t) for t in env.client.lrange("times", 0, -1)]
    assert len(times) == 2
    assert times[1] - times[0] >= 1.5
    assert handle.error is None  # it succeeded: the retry's reason is history
    assert env.client.zcard(env.keys.shard("default").scheduled) == 0
