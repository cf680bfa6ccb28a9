"""Garbage in Redis (keys of the wrong type, job hashes with missing or mangled fields)
never strands or kills an innocent job: the scripts validate what they read, dead-letter
the one bad job with reason ``invalid_record``, and set aside a shared key that holds
garbage (test_set_aside.py). The CLI reports what it cannot read instead of crashing
(the listings one by one: test_garbage_listings.py)."""

from __future__ import annotations

import time

import orjson
import pytest
import redis

from jobkit import DeadReason, Status
from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import jobs


def _dead_invalid(env: Env, job_id: str) -> str:
    """The message of a job dead-lettered as invalid_record."""
    rec = env.store.reads.get(job_id)
    assert rec is not None
    assert rec.status is Status.DEAD and rec.reason == DeadReason.INVALID_RECORD.value
    assert env.client.zscore(env.keys.shard("default").dead, job_id) is not None
    assert rec.error is not None and rec.error.type == "InvalidRecord"
    return rec.error.message


def _nothing_stranded(env: Env) -> None:
    assert env.client.zcard(env.keys.shard("default").running) == 0
    assert env.client.zcard(env.keys.queue("default")) == 0


def test_a_job_key_of_the_wrong_type_strands_no_innocent_job(
    env: Env, start_worker: StartWorker
) -> None:
    handles = jobs.Add.dispatch_many([{"a": i, "b": 1} for i in range(30)])
    bad = handles[7].id
    env.client.delete(env.keys.job(bad))
    env.client.set(env.keys.job(bad), "not a hash")  # popped in the first claimed batch

    start_worker()
    for i, h in enumerate(handles):
        if h.id != bad:
            assert h.result(timeout=20) == i + 1
            assert h.attempts == 1
    assert "not a hash" in _dead_invalid(env, bad)
    assert env.client.get(env.keys.shard("default").corrupt(bad)) == "not a hash"  # kept, renamed
    _nothing_stranded(env)


def test_a_timeout_that_is_no_number_hurts_only_its_own_job(
    env: Env, start_worker: StartWorker
) -> None:
    handles = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(16)])
    bad = handles[3].id
    env.client.hset(env.keys.job(bad), "timeout", "soon")

    start_worker()
    for i, h in enumerate(handles):
        if h.id != bad:
            assert h.result(timeout=20) == i
            rec = h.record
            assert rec is not None and rec.attempts == 1 and rec.crashes == 0
    assert "timeout" in _dead_invalid(env, bad)
    _nothing_stranded(env)

    listed = run_cli("dead", "list", url=env.url)
    assert listed.returncode == 0, listed.stderr
    assert bad in listed.stdout and "invalid_record" in listed.stdout
    as_json = run_cli("dead", "list", "--json", url=env.url)
    assert [row["id"] for row in orjson.loads(as_json.stdout)] == [bad]


def test_reap_dead_letters_a_crashed_job_without_max_attempts_and_goes_on(env: Env) -> None:
    innocent, bad = jobs.Add.dispatch(a=1, b=1), jobs.Add.dispatch(a=2, b=2)
    claimed = env.store.leasing.claim("w", 1, 2, [["default"]])
    env.store.leasing.mark_started([(c.id, c.token) for c in claimed])
    env.client.hdel(env.keys.job(bad.id), "max_attempts")
    time.sleep(0.02)  # both leases run out

    outcomes = dict(env.store.leasing.reap(max_crashes=3, queues=["default"]))

    assert outcomes == {innocent.id: "requeued", bad.id: "invalid"}
    assert "max_attempts" in _dead_invalid(env, bad.id)
    assert innocent.status is Status.QUEUED


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("lane", None, "no lane"), ("priority", "high", "priority"), ("priority", None, "priority")],
)
def test_promote_dead_letters_a_retrying_job_it_cannot_queue(
    env: Env, field: str, value: str | None, expected: str
) -> None:
    bad, innocent = (jobs.Add.dispatch(a=i, b=0, delay=0.01) for i in range(2))
    key = env.keys.job(bad.id)
    if value is None:
        env.client.hdel(key, field)
    else:
        env.client.hset(key, field, value)
    env.client.hset(key, "status", "retrying")
    time.sleep(0.02)

    assert env.store.leasing.promote(["default"]) == (1, -1)
    assert expected in _dead_invalid(env, bad.id)
    assert innocent.status is Status.QUEUED


def test_an_invalid_record_is_dead_on_its_own_record_when_the_dead_set_is_garbage(
    env: Env,
) -> None:
    good, bad = jobs.Add.dispatch(a=1, b=1), jobs.Add.dispatch(a=2, b=2)
    env.client.hset(env.keys.job(bad.id), "timeout", "soon")
    env.client.set(env.keys.shard("default").dead, "garbage")
    env.client.set(env.keys.shard("default").stats, "garbage")
    [job] = env.store.leasing.claim("w", 30_000, 2, [["default"]])
    assert job.id == good.id
    assert bad.status is Status.DEAD  # its own record says so; the dead set is unusable
    assert env.store.leasing.complete(job.id, job.token, b"2", 60) is True  # counters or not


def test_a_queue_key_of_the_wrong_type_is_skipped_by_claim(env: Env) -> None:
    good = jobs.Add.dispatch(a=1, b=1)
    env.client.set(env.keys.queue("low"), "garbage")
    [job] = env.store.leasing.claim("w", 30_000, 2, [["low"], ["default"]])
    assert job.id == good.id


def test_cli_reports_unreadable_keys_instead_of_crashing(env: Env) -> None:
    jobs.Add.dispatch(a=1, b=1)
    for key in (
        env.keys.shard("default").running,
        env.keys.shard("default").scheduled,
        env.keys.workers,
        env.keys.shard("default").stats,
    ):
        env.client.set(key, "garbage")

    info = run_cli("info", url=env.url)
    assert info.returncode == 1, info.stderr
    assert f"unreadable key {env.keys.shard('default').running}" in info.stderr
    as_json = orjson.loads(run_cli("info", "--json", url=env.url).stdout)
    assert as_json["fleet"]["running"] is None and as_json["lanes"] == {"default": 1}

    workers = run_cli("workers", url=env.url)
    assert workers.returncode == 1 and "Traceback" not in workers.stderr + workers.stdout
    assert f"unreadable key {env.keys.workers}: holds a string, not a zset" in workers.stderr

    env.client.set(env.keys.shard("default").dead, "garbage")
    dead = run_cli("dead", "list", url=env.url)
    assert dead.returncode == 1 and "Traceback" not in dead.stderr + dead.stdout
    assert f"{env.keys.shard('default').dead}: holds a string, not a zset" in dead.stderr


def test_a_job_key_that_is_no_hash_reads_as_unreadable(env: Env) -> None:
    env.client.set(env.keys.job("default:odd"), "x")
    rec = env.store.reads.get("default:odd")
    assert rec is not None and rec.reason == DeadReason.INVALID_RECORD.value
    [many] = env.store.reads.get_many(["default:odd"])
    assert many == rec
    shown = run_cli("job", "default:odd", url=env.url)
    assert "Traceback" not in shown.stderr and "InvalidRecord" in shown.stdout


def test_prefetched_jobs_that_never_started_count_no_crash_when_the_worker_dies(
    env: Env, start_worker: StartWorker
) -> None:
    handles = [jobs.Sleepy.dispatch(marker=f"m{i}", seconds=0.05) for i in range(40)]
    worker = start_worker(extra=("--prefetch", "16"))
    wait_until(lambda: env.client.exists("m3"), timeout=10, what="a few jobs to run")
    worker.kill()  # the whole worker, with a batch claimed and mostly not started

    # what the supervisor told Redis had started before it died (its slot showed them)
    begun = env.client.hkeys(env.keys.shard("default").started)
    leases = [env.client.hget(env.keys.job(h.id), "lease") for h in handles]
    marked = {h.id for h, lease in zip(handles, leases, strict=True) if f"{lease}:{h.id}" in begun}
    time.sleep(1.6)  # the leases (1.5 s) run out
    env.store.leasing.reap(max_crashes=2, queues=["default"])
    records = [h.record for h in handles]
    assert all(r is not None for r in records)
    never_ran = [
        r
        for i, r in enumerate(records)
        if r and not env.client.exists(f"m{i}") and r.id not in marked
    ]
    assert never_ran, "the kill left no unstarted job: the test needs a slower worker"
    for rec in never_ran:
        assert rec.status is Status.QUEUED, rec
        assert rec.crashes == 0 and rec.attempts == 0 and rec.worker is None
    # a crash is counted only for an attempt that started: the one running at the kill,
    # and one that ran to its end whose outcome the kill kept from being recorded
    started = {h.id for i, h in enumerate(handles) if h.id in marked or env.client.exists(f"m{i}")}
    crashed = [r for r in records if r and r.crashes]
    assert len(crashed) <= 2
    assert {r.id for r in crashed} <= started

    start_worker()
    for h in handles:
        assert h.result(timeout=20) is not None
    wait_until(lambda: all(h.status is Status.SUCCEEDED for h in handles), timeout=5)


def test_a_wake_key_of_the_wrong_type_costs_only_the_wake_up(env: Env) -> None:
    env.client.set(env.keys.wake("default"), "garbage")
    handle = jobs.Add.dispatch(a=1, b=1)
    assert handle.status is Status.QUEUED
    assert [j.id for j in env.store.leasing.claim("w", 30_000, 1, [["default"]])] == [handle.id]


def test_params_that_are_not_utf8_dead_letter_only_their_job(env: Env) -> None:
    handles = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(5)])
    bad = handles[2].id
    raw = redis.Redis.from_url(env.url)
    try:
        raw.hset(env.keys.job(bad), "params", b'{"a": "\xff\xfe", "b": 0}')
        claimed = env.store.leasing.claim("w", 30_000, 5, [["default"]])  # one reply, undecodable
    finally:
        raw.close()
    assert sorted(c.id for c in claimed) == sorted(h.id for h in handles if h.id != bad)
    assert {c.token for c in claimed} == {"1"}  # leased once: the request was answered again
    assert "params are not UTF-8" in _dead_invalid(env, bad)
    assert env.client.zscore(env.keys.shard("default").running, bad) is None


def test_a_job_leased_ten_times_and_never_started_is_dead_lettered(env: Env) -> None:
    handle = jobs.Add.dispatch(a=1, b=1)
    for i in range(10):
        [job] = env.store.leasing.claim("w", 1, 1, [["default"]])
        time.sleep(0.005)
        outcome = env.store.leasing.reap(max_crashes=2, queues=["default"])
        assert outcome == [(job.id, "invalid" if i == 9 else "returned")]
    assert "never started" in _dead_invalid(env, handle.id)
    rec = handle.record
    assert rec is not None and rec.attempts == 0 and rec.crashes == 0
