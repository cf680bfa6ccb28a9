"""Dispatch -> worker process -> result; unknown ids; bulk dispatch; idempotency; order."""

from __future__ import annotations

import hashlib
import time

import pytest
import redis

import jobkit
from jobkit import Status
from jobkit.backend import scripts
from tests.conftest import Env, StartWorker, wait_until
from tests.support import jobs


def test_dispatch_runs_in_a_worker_and_returns_the_result(
    env: Env, start_worker: StartWorker
) -> None:
    handle = jobs.Add.dispatch(a=2, b=3)
    assert handle.status is Status.QUEUED
    start_worker()

    assert handle.result(timeout=15) == 5
    assert handle.status is Status.SUCCEEDED
    assert handle.attempts == 1
    assert handle.error is None
    rec = handle.record
    assert rec is not None
    assert rec.name == "tests.support.jobs.Add"
    assert rec.started_at is not None and rec.finished_at is not None
    assert rec.finished_at >= rec.started_at
    assert env.stats().get("succeeded") == 1


def test_async_perform(env: Env, start_worker: StartWorker) -> None:
    start_worker()
    handle = jobs.AsyncEcho.dispatch(text="hi")
    assert handle.result(timeout=15) == {"echo": "hi", "attempt": 1}
    assert handle.status is Status.SUCCEEDED
    # the child keeps one event loop: a second async job on it works too
    assert jobs.AsyncEcho.dispatch(text="again").result(timeout=15)["echo"] == "again"


def test_unknown_job_id_reports_unknown(env: Env) -> None:
    handle = jobkit.get_job("no-such-job")
    assert handle.status is Status.UNKNOWN
    assert handle.record is None
    assert handle.attempts == 0


def test_get_job_finds_a_dispatched_job(env: Env) -> None:
    dispatched = jobs.Add.dispatch(a=1, b=1)
    found = jobkit.get_job(dispatched.id)
    assert found.status is Status.QUEUED
    assert found.record is not None
    assert found.record.name == "tests.support.jobs.Add"


def test_dispatch_many_all_succeed(env: Env, start_worker: StartWorker) -> None:
    handles = jobs.Add.dispatch_many([{"a": i, "b": 1000} for i in range(200)])
    assert len(handles) == 200
    assert len({h.id for h in handles}) == 200
    assert all(h.status is Status.QUEUED for h in handles)
    assert env.client.zcard(env.keys.queue("default")) == 200

    start_worker(concurrency=2)
    results = [h.result(timeout=60) for h in handles]

    assert results == [i + 1000 for i in range(200)]
    assert all(h.status is Status.SUCCEEDED for h in handles)
    assert env.stats().get("succeeded") == 200
    assert env.client.zcard(env.keys.queue("default")) == 0
    assert env.client.zcard(env.keys.shard("default").running) == 0


def test_job_id_is_an_idempotency_key(env: Env) -> None:
    first = jobs.Add.dispatch(a=1, b=2, job_id="order-42")
    assert first.id == "default:order-42"  # an id names its queue
    assert first.status is Status.QUEUED
    before = {key: env.client.dump(key) for key in env.client.keys("*")}

    second = jobs.Add.dispatch(a=100, b=200, job_id="order-42")

    assert second.id == "default:order-42"
    assert second.status is Status.QUEUED
    after = {key: env.client.dump(key) for key in env.client.keys("*")}
    assert after == before  # nothing new written, nothing changed
    assert env.client.zcard(env.keys.queue("default")) == 1
    rec = env.store.reads.get("default:order-42")
    assert rec is not None
    assert rec.params_json == '{"a":1,"b":2}'


def test_job_id_of_a_finished_job_returns_it(env: Env, start_worker: StartWorker) -> None:
    start_worker()
    assert jobs.Add.dispatch(a=1, b=2, job_id="once").result(timeout=15) == 3
    again = jobs.Add.dispatch(a=5, b=5, job_id="once")
    assert again.status is Status.SUCCEEDED
    assert again.result(timeout=1) == 3
    assert env.stats().get("succeeded") == 1


def test_priority_then_fifo(env: Env, start_worker: StartWorker) -> None:
    key = "order"
    for tag in ("low-1", "low-2"):
        jobs.Record.dispatch(key=key, tag=tag, priority=-5)
    for tag in ("normal-1", "normal-2"):
        jobs.Record.dispatch(key=key, tag=tag)
    for tag in ("high-1", "high-2", "high-3"):
        jobs.Record.dispatch(key=key, tag=tag, priority=10)
    last = jobs.Record.dispatch(key=key, tag="normal-3")

    start_worker(concurrency=1)
    assert last.result(timeout=15) == "normal-3"
    wait_until(lambda: env.client.llen(key) == 8, timeout=15, what="8 jobs to run")

    assert env.client.zcard(env.keys.queue("default")) == 0
    assert env.client.lrange(key, 0, -1) == [
        "high-1",
        "high-2",
        "high-3",
        "normal-1",
        "normal-2",
        "normal-3",
        "low-1",
        "low-2",
    ]


def test_queues_are_checked_in_the_order_given(env: Env, start_worker: StartWorker) -> None:
    key = "order"
    # the later queue holds higher-priority jobs: queue order still wins
    jobs.Record.dispatch(key=key, tag="second-a", queue="second", priority=100)
    jobs.Record.dispatch(key=key, tag="first-a", queue="first")
    jobs.Record.dispatch(key=key, tag="second-b", queue="second", priority=100)
    jobs.Record.dispatch(key=key, tag="first-b", queue="first", priority=-100)
    jobs.Record.dispatch(key=key, tag="other", queue="unserved")

    start_worker(queues="first,second", concurrency=1)

    wait_until(lambda: env.client.llen(key) == 4, timeout=15, what="4 jobs to run")
    assert env.client.lrange(key, 0, -1) == ["first-a", "first-b", "second-a", "second-b"]
    # a queue the worker does not serve is left alone
    assert env.client.zcard(env.keys.queue("unserved")) == 1


def test_tagged_jobs_need_a_worker_with_the_tags(env: Env, start_worker: StartWorker) -> None:
    start_worker()
    tagged = jobs.OnGpu.dispatch()
    plain = jobs.Add.dispatch(a=1, b=1)
    assert plain.result(timeout=15) == 2
    assert env.client.zscore(env.keys.queue("default|gpu"), tagged.id) is not None
    assert env.client.sismember(env.keys.shard("default").lanes, "default|gpu")
    time.sleep(0.3)
    assert tagged.status is Status.QUEUED  # the untagged worker leaves it alone

    start_worker(extra=("--tags", "gpu,cuda"))
    assert tagged.result(timeout=15) == "ran on a gpu worker"


def test_a_worker_with_all_tags_serves_every_tagged_lane(
    env: Env, start_worker: StartWorker
) -> None:
    start_worker(extra=("--tags", "*"))
    plain = jobs.Add.dispatch(a=2, b=2)
    tagged = jobs.OnGpu.dispatch()  # a lane the worker has never seen before
    assert plain.result(timeout=15) == 4
    assert tagged.result(timeout=15) == "ran on a gpu worker"


def test_prefetch_claims_several_jobs_at_once(env: Env, start_worker: StartWorker) -> None:
    handles = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(30)])
    start_worker(concurrency=1, extra=("--prefetch", "5"))
    assert [h.result(timeout=30) for h in handles] == list(range(30))
    assert env.client.zcard(env.keys.shard("default").running) == 0


def test_short_jobs_are_not_starved_behind_a_long_one(env: Env, start_worker: StartWorker) -> None:
    # A child that claimed (or asked ahead for) short jobs and then got stuck in a long
    # one hands them back after RELEASE_AFTER, and the other child runs them.
    start_worker(concurrency=2, extra=("--prefetch", "4"))
    for _ in range(2):
        long = jobs.Sleepy.dispatch(marker="long", seconds=2.5)
        short = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(6)])
        assert [h.result(timeout=2) for h in short] == list(range(6))
        assert long.status is Status.RUNNING
        assert all(h.attempts == 1 for h in short)  # handed back unstarted, not crashed
        assert long.result(timeout=10) >= 2.5


def test_a_result_is_recorded_while_the_next_job_of_its_batch_runs(
    env: Env, start_worker: StartWorker
) -> None:
    # All four are claimed in one batch, and with two still unstarted when the long one
    # begins, no refill carries the first one's result: the child's housekeeping thread
    # must record it within milliseconds, not when the long job ends.
    quick = jobs.Add.dispatch(a=1, b=2)
    long = jobs.Sleepy.dispatch(marker="long", seconds=3)
    rest = jobs.Add.dispatch_many([{"a": 2, "b": 0}, {"a": 3, "b": 0}])
    start_worker(concurrency=1, extra=("--prefetch", "4"))
    assert quick.result(timeout=2) == 3
    assert long.status is Status.RUNNING
    assert long.result(timeout=10) >= 3
    assert [h.result(timeout=10) for h in rest] == [2, 3]


def test_a_woken_worker_starts_a_lone_job_before_asking_for_more(
    env: Env, start_worker: StartWorker
) -> None:
    # An idle child claims with its wake-up. When that claim took all there was, the job
    # starts at once: a further claim first would only delay it (idle pickup latency).
    claim = hashlib.sha1(scripts.source("claim").encode()).hexdigest()
    start_worker(concurrency=1)
    assert jobs.Add.dispatch(a=1, b=1).result(timeout=20) == 2
    time.sleep(0.3)  # the child has recorded that result and waits for work
    with redis.Redis.from_url(env.url, socket_timeout=10).monitor() as monitor:
        handle = jobs.Record.dispatch(key="ran", tag="lone")
        claims = 0
        while True:
            command = monitor.next_command()
            called = command["command"].startswith(f"EVALSHA {claim}")
            claims += called and command["client_type"] != "lua"
            if command["command"].startswith("RPUSH ran"):  # the job runs
                break
    assert handle.result(timeout=10) == "lone"
    assert claims == 1  # the wake-up's own


def test_an_idle_child_asks_its_connection_id_once(env: Env, start_worker: StartWorker) -> None:
    # A runner going idle blocks for work on its own connection, whose id lets shutdown
    # end the wait: the id is asked for once per connection, not before every wait.
    start_worker(concurrency=1)
    assert jobs.Add.dispatch(a=0, b=0).result(timeout=20) == 0
    time.sleep(0.3)  # the child has gone idle once, asking for the id if it had not yet
    env.client.config_resetstat()
    for i in range(5):
        assert jobs.Add.dispatch(a=i, b=1).result(timeout=10) == i + 1
        time.sleep(0.05)  # the child records the result and waits for work again
    asked = env.client.info("commandstats").get("cmdstat_client|id", {}).get("calls", 0)
    assert asked == 0


def test_result_waits_longer_than_the_client_socket_timeout(env: Env) -> None:
    # redis-py 8 gives connections a 5 s socket timeout: a wait must block in shorter
    # slices, or a long wait ends in redis.TimeoutError instead of the job's outcome
    handle = jobs.Add.dispatch(a=1, b=1)  # no worker: it stays queued
    started = time.monotonic()
    try:
        handle.result(timeout=6)
    except jobkit.JobTimeout as exc:
        assert "still queued after 6" in str(exc)
    else:
        raise AssertionError("expected JobTimeout")
    assert time.monotonic() - started >= 6


def test_completion_token_only_for_jobs_someone_waits_for(
    env: Env, start_worker: StartWorker
) -> None:
    # a waiter registers before it reads the status, and its job's completion wakes it
    # with a token; a job nobody waits for costs Redis no token at all
    unwatched = jobs.Add.dispatch(a=1, b=1)
    watched = jobs.Sleepy.dispatch(marker="waited", seconds=0.5)
    start_worker()
    assert watched.result(timeout=15) == pytest.approx(0.5, abs=0.3)
    wait_until(lambda: unwatched.status is Status.SUCCEEDED)
    assert env.client.exists(env.keys.done(watched.id)) == 1
    assert env.client.exists(env.keys.done(unwatched.id)) == 0
    assert env.client.ttl(env.keys.waiter(watched.id)) > 0  # it lapses by itself
