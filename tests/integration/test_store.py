"""Store behaviour that only shows against a real Redis: script cache loss, batches."""

from __future__ import annotations

from collections import UserList
from datetime import timedelta

import orjson
import pytest
import redis

import jobkit
from tests.conftest import Env
from tests.support import jobs


def test_a_lost_script_cache_never_strands_a_claimed_batch(env: Env) -> None:
    handles = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(6)])
    env.client.script_flush()  # as on a fresh or restarted Redis: nothing cached
    # a claim caches the claim script, but not the complete script
    [first] = env.store.leasing.claim("w", 30_000, 1, [["default"]])

    done = [(first.id, first.token, "1", 60)]
    flags, claimed = env.store.leasing.finish_refill(
        env.store.leasing.send_refill(done, "w", 30_000, 2, [["default"]])
    )

    assert flags == [True]
    assert len(claimed) == 2
    # exactly the jobs handed out are running: none was leased by a call that got retried
    running = set(env.client.zrange(env.keys.shard("default").running, 0, -1))
    assert running == {c.id for c in claimed}
    assert env.client.zcard(env.keys.queue("default")) == len(handles) - 3


def test_dispatch_many_survives_a_lost_script_cache(env: Env) -> None:
    env.client.script_flush()
    handles = jobs.Add.dispatch_many([{"a": i, "b": i} for i in range(450)])  # 3 chunks
    assert len({h.id for h in handles}) == 450
    assert env.client.zcard(env.keys.queue("default")) == 450


def test_dispatch_many_returns_each_jobs_status(env: Env) -> None:
    now = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(450)])  # 3 chunks
    later = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(250)], delay=60)
    # the handles carry the status Redis returned (repr does not re-read it)
    assert {repr(h).split()[-1] for h in now} == {"queued>"} and len(now) == 450
    assert {repr(h).split()[-1] for h in later} == {"scheduled>"} and len(later) == 250
    assert env.client.zcard(env.keys.queue("default")) == 450
    assert env.client.zcard(env.keys.shard("default").scheduled) == 250
    record = later[-1].record
    assert record is not None and record.due_at is not None and record.created_at is not None
    assert record.due_at - record.created_at == timedelta(seconds=60)


def test_dispatch_many_takes_any_sequence(env: Env) -> None:
    items = UserList([{"a": 1, "b": 2}, {"a": 3, "b": 4}])  # a Sequence, not a list
    assert len(jobs.Add.dispatch_many(items)) == 2
    assert len(jobs.Add.dispatch_many(tuple(items))) == 2
    assert env.client.zcard(env.keys.queue("default")) == 4


def test_thousands_of_jobs_claimed_and_completed_in_single_calls(env: Env) -> None:
    jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(2500)])
    claim = env.store.leasing.claim
    claimed = [c for _ in range(3) for c in claim("w", 30_000, 1000, [["default"]])]
    assert len(claimed) == 2500
    assert env.client.zcard(env.keys.shard("default").running) == 2500
    flags = env.store.leasing.complete_many([(c.id, c.token, "1", 60) for c in claimed])  # one call
    assert all(flags) and len(flags) == 2500
    assert env.client.zcard(env.keys.shard("default").running) == 0


def test_dispatch_survives_a_lost_script_cache(env: Env) -> None:
    jobs.Add.dispatch(a=1, b=1)  # the enqueue command's fixed part is packed and kept
    env.client.script_flush()
    handle = jobs.Add.dispatch(a=2, b=2)
    assert env.client.zscore(env.keys.queue("default"), handle.id) is not None
    assert env.client.zcard(env.keys.queue("default")) == 2


def test_dispatch_keeps_multibyte_text_intact(env: Env) -> None:
    text = "héllo ✓ 日本 🚀 " * 50  # byte length differs from character length
    handle = jobs.AsyncEcho.dispatch(text=text)
    stored = env.client.hget(env.keys.job(handle.id), "params")
    assert stored is not None
    assert orjson.loads(stored) == {"text": text}


def test_a_connection_the_server_closed_is_replaced(env: Env) -> None:
    jobs.Add.dispatch(a=1, b=1)  # this thread's direct connection is open now
    killed = env.client.client_kill_filter(_type="normal", skipme=True)  # as a timeout would
    assert killed >= 1
    handle = jobs.Add.dispatch(a=2, b=2)  # sent on a fresh connection, once
    assert env.client.zcard(env.keys.queue("default")) == 2
    assert handle.status is jobkit.Status.QUEUED


def test_an_error_reply_is_raised_with_its_message(env: Env) -> None:
    env.client.set("plain", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        env.store.wire.execute("LPUSH", "plain", "y")
    assert env.store.wire.execute("GET", "plain") == "x"  # the connection is still in step


def test_dispatch_many_on_a_connection_the_server_closed(env: Env) -> None:
    jobs.Add.dispatch_many([{"a": 0, "b": 0}] * 2)  # this thread's connection is open now
    assert env.client.client_kill_filter(_type="normal", skipme=True) >= 1
    handles = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(450)])  # 3 requests
    # sent again on a fresh connection, once: no job lost, none stored twice
    assert env.client.zcard(env.keys.queue("default")) == 452
    assert {h.status for h in handles} == {jobkit.Status.QUEUED}


def test_times_scores_and_counters_are_written_as_whole_numbers(env: Env) -> None:
    # the scripts hand Redis some values as strings they format once per call: what lands
    # must read exactly as the numbers it stands for
    plain = jobs.Add.dispatch(a=1, b=1)
    urgent = jobs.Add.dispatch(a=2, b=2, priority=3)
    batch = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(3)])
    queue = env.keys.queue("default")
    for handle in [plain, urgent, *batch]:
        job = env.client.hgetall(env.keys.job(handle.id))
        assert job["created_at"].isdigit() and job["seq"].isdigit()
        priority = int(job["priority"])
        expected = -priority * 2**40 + int(job["seq"])
        assert env.client.zscore(queue, handle.id) == expected
    claimed = env.store.leasing.claim("w", 30_000, 5, [["default"]])
    assert claimed[0].id == urgent.id  # the higher priority first, then FIFO
    assert [c.id for c in claimed[1:]] == [plain.id, *(h.id for h in batch)]
    for job in claimed:
        started = env.client.hget(env.keys.job(job.id), "started_at")
        assert started is not None and started.isdigit()
        assert env.client.zscore(env.keys.shard("default").running, job.id) == int(started) + 30_000
    done = [(c.id, c.token, "1", 60) for c in claimed]
    assert env.store.leasing.complete_many(done) == [True] * 5
    for job in claimed:
        finished = env.client.hget(env.keys.job(job.id), "finished_at")
        assert finished is not None and finished.isdigit()
        assert 0 < env.client.ttl(env.keys.job(job.id)) <= 60
