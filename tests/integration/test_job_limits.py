"""Fleet-wide limits a job class declares, enforced by the claim and dispatch scripts:
``concurrency``, ``rate_limit``, ``unique`` / ``unique_for``."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from jobkit import BaseJob, InvalidLimit, Status
from jobkit.models import Claimed
from tests.conftest import Env, StartWorker, wait_until
from tests.integration.test_resend import LoseReply, lose_reply  # noqa: F401 (registers the fixture)
from tests.support import limit_jobs as lj

LIMITS_APP = ("-A", "tests.support.limit_jobs")
# Tests that claim themselves use a queue no worker serves: a worker killed at the end of
# the test before may still have a claim queued behind its wait in Redis.
ALONE = "limits-alone"
LANE = [[ALONE]]


def _claim(env: Env, want: int = 10, lease_ms: int = 30_000) -> list[Claimed]:
    return env.store.leasing.claim("w", lease_ms, want, LANE)


def _active(env: Env, job_class: type[BaseJob]) -> int:
    return int(env.client.scard(env.keys.shard(ALONE).active(job_class.name)))


# -- declaring limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"concurrency": 0}, "concurrency must be a whole number from 1 up"),
        ({"concurrency": 1.5}, "concurrency must be a whole number"),
        ({"rate_limit": "100/x"}, "rate_limit must be '<count>/<s|m|h>'"),
        ({"rate_limit": "0/m"}, "rate_limit must allow"),
        ({"rate_limit": "5000/s"}, "rate_limit must allow"),
        ({"unique_for": 0}, "unique_for must be a positive"),
        ({"unique": "yes"}, "unique must be True or False"),
    ],
)
def test_a_bad_limit_fails_when_the_class_is_defined(
    attrs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidLimit, match=message):
        type("Bad", (BaseJob,), {"name": "tests.bad_limit", **attrs})


# -- concurrency --------------------------------------------------------------------------


def test_a_class_at_its_limit_is_held_back_in_place_and_others_pass(env: Env) -> None:
    pairs = [lj.Pair.dispatch(queue=ALONE) for _ in range(3)]
    quick = lj.Quick.dispatch(queue=ALONE)
    ready = env.keys.queue(ALONE)
    third_score = env.client.zscore(ready, pairs[2].id)

    got = _claim(env)
    assert [c.id for c in got] == [pairs[0].id, pairs[1].id, quick.id]
    assert _active(env, lj.Pair) == 2
    # held back, not popped for good: still queued, in its place
    assert env.client.zrange(ready, 0, -1) == [pairs[2].id]
    assert env.client.zscore(ready, pairs[2].id) == third_score
    assert pairs[2].status is Status.QUEUED
    assert _claim(env) == []  # and again, however often asked

    # an attempt ends: its slot frees, and an idle worker of the lane is woken for it
    env.client.delete(env.keys.wake(ALONE))
    assert env.store.leasing.complete(got[0].id, got[0].token, "null", 60)
    assert env.client.llen(env.keys.wake(ALONE)) >= 1
    # sent twice: no more freed
    assert env.store.leasing.complete(got[0].id, got[0].token, "null", 60)
    assert _active(env, lj.Pair) == 1
    [third] = _claim(env)
    assert third.id == pairs[2].id
    assert _active(env, lj.Pair) == 2


def test_every_end_of_an_attempt_frees_its_slot_once(env: Env) -> None:
    for _ in range(2):
        lj.Pair.dispatch(queue=ALONE)
    a, b = _claim(env, lease_ms=200)
    # a retry, sent twice: the second finds its outcome applied and frees nothing more
    for _ in range(2):
        assert env.store.leasing.fail(a.id, a.token, dead=False, delay_ms=0, reason="exception",
                              error_json="{}", ttl=60)  # fmt: skip
    assert _active(env, lj.Pair) == 1
    # a lease that lapses (the worker died): the reaper ends the attempt
    time.sleep(0.3)
    assert env.store.leasing.reap(2, [ALONE]) == [(b.id, "returned")]
    assert _active(env, lj.Pair) == 0
    # handed back, and cancelled while running
    c, d = _claim(env)
    assert env.store.leasing.requeue(c.id, c.token, uncount=True)
    assert env.store.leasing.requeue(c.id, c.token, uncount=True)
    assert _active(env, lj.Pair) == 1
    env.store.cancel(d.id, 60)
    assert env.store.leasing.end_cancelled(d.id, d.token, 60)
    assert _active(env, lj.Pair) == 0


def test_a_slot_lost_to_garbage_is_healed_by_the_claim(env: Env) -> None:
    active = env.keys.shard(ALONE).active(lj.Pair.name)
    env.client.sadd(active, "limits:gone-1", "limits:gone-2")  # jobs that no longer run
    job = lj.Pair.dispatch(queue=ALONE)
    assert [c.id for c in _claim(env)] == [job.id]
    assert env.client.smembers(active) == {job.id}


def test_the_concurrency_limit_holds_across_two_workers(
    env: Env, start_worker: StartWorker
) -> None:
    pairs = [lj.Pair.dispatch(seconds=0.3) for _ in range(12)]
    quick = [lj.Quick.dispatch() for _ in range(6)]
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:  # from outside: how many of the class the records say run
        while not stop.is_set():
            pipe = env.client.pipeline(transaction=True)  # every record at one instant
            for p in pairs:
                pipe.hget(env.keys.job(p.id), "status")
            samples.append(pipe.execute().count("running"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        for _ in range(2):
            start_worker(queues=lj.QUEUE, concurrency=3, extra=LIMITS_APP)
        # the unlimited jobs behind them are not held up by the class at its limit
        wait_until(lambda: env.client.llen("quick:done") == 6, timeout=10, what="quick jobs")
        assert sum(p.status is Status.SUCCEEDED for p in pairs) < len(pairs)
        for p in pairs:
            p.result(timeout=30)
    finally:
        stop.set()
        sampler.join()
    seen = [int(n) for n in env.client.lrange("pair:seen", 0, -1)]
    assert len(seen) == 12 and max(seen) <= 2  # counted by the jobs themselves
    assert max(samples) == 2  # the limit was reached, never passed
    assert _active(env, lj.Pair) == 0
    assert all(q.status is Status.SUCCEEDED for q in quick)


# -- rate ---------------------------------------------------------------------------------


def test_the_rate_limit_spaces_starts_evenly(env: Env, start_worker: StartWorker) -> None:
    handles = [lj.Paced.dispatch() for _ in range(6)]
    for _ in range(2):
        start_worker(queues=lj.QUEUE, concurrency=2, extra=LIMITS_APP)
    for h in handles:
        h.result(timeout=30)
    # claim times, by Redis's clock: one every 200 ms at most
    records = [h.record for h in handles]
    starts = sorted(r.started_at.timestamp() for r in records if r and r.started_at)
    assert len(starts) == 6
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.199, gaps
    # a held-back job is asked for again when the rate allows it, not after an idle wait
    assert sum(gaps) / len(gaps) < 0.5, gaps


def test_a_rate_held_claim_says_when_to_ask_again(env: Env) -> None:
    first, second = lj.Paced.dispatch(queue=ALONE), lj.Paced.dispatch(queue=ALONE)
    asked = time.monotonic()
    assert [c.id for c in _claim(env)] == [first.id]
    due = env.store.leasing._rate_due
    assert asked < due <= time.monotonic() + 0.2, due - asked
    assert second.status is Status.QUEUED
    time.sleep(0.2)
    assert [c.id for c in _claim(env)] == [second.id]


# -- unique -------------------------------------------------------------------------------


def test_an_equal_dispatch_returns_the_active_job(env: Env, start_worker: StartWorker) -> None:
    a = lj.Once.dispatch(key="a", seconds=0.5)
    assert lj.Once.dispatch(key="a", seconds=0.5).id == a.id
    b = lj.Once.dispatch(key="b")
    assert b.id != a.id
    assert [h.id for h in lj.Once.dispatch_many([{"key": "c"}, {"key": "c"}])] == [
        lj.Once.dispatch(key="c").id
    ] * 2

    start_worker(queues=lj.QUEUE, concurrency=1, extra=LIMITS_APP)
    wait_until(lambda: a.status is Status.RUNNING, what="a running")
    assert lj.Once.dispatch(key="a", seconds=0.5).id == a.id  # running: still the one
    assert a.result(timeout=20) == "a"
    again = lj.Once.dispatch(key="a", seconds=0.5)  # finished: a new job
    assert again.id != a.id
    assert again.result(timeout=20) == "a"


def test_a_unique_lock_ends_with_its_job_however_it_ends(env: Env) -> None:
    job = lj.Once.dispatch(key="x", queue=ALONE)
    assert job.cancel()
    fresh = lj.Once.dispatch(key="x", queue=ALONE)
    assert fresh.id != job.id
    # a job removed behind jobkit's back leaves a lock with no active holder: taken over
    env.client.delete(env.keys.job(fresh.id))
    assert lj.Once.dispatch(key="x", queue=ALONE).id != fresh.id


def test_unique_for_lasts_at_most_its_window(env: Env) -> None:
    first = lj.OncePerSecond.dispatch(key="k", queue=ALONE)
    assert lj.OncePerSecond.dispatch(key="k", queue=ALONE).id == first.id
    time.sleep(1.1)
    # the first is still queued, but the window is over
    later = lj.OncePerSecond.dispatch(key="k", queue=ALONE)
    assert later.id != first.id
    assert first.status is Status.QUEUED


# -- sent twice after a lost reply ---------------------------------------------------------


def _lose_reply(request: pytest.FixtureRequest) -> LoseReply:
    """test_resend.py's fixture: the next reply read is lost after Redis ran it."""
    arm: LoseReply = request.getfixturevalue("lose_reply")
    return arm


def test_a_unique_dispatch_sent_again_creates_one_job(
    env: Env, request: pytest.FixtureRequest
) -> None:
    env.store.load_scripts()  # so the reply lost is the enqueue's, not a NOSCRIPT
    _lose_reply(request)()
    job = lj.Once.dispatch(key="r", queue=ALONE)
    assert lj.Once.dispatch(key="r", queue=ALONE).id == job.id
    assert env.client.zrange(env.keys.queue(ALONE), 0, -1) == [job.id]


def test_a_claim_sent_again_holds_back_and_counts_once(
    env: Env, request: pytest.FixtureRequest
) -> None:
    pairs = [lj.Pair.dispatch(queue=ALONE) for _ in range(3)]
    env.store.load_scripts()
    _lose_reply(request)()
    assert [c.id for c in _claim(env)] == [pairs[0].id, pairs[1].id]
    assert _active(env, lj.Pair) == 2
    assert env.client.zrange(env.keys.queue(ALONE), 0, -1) == [pairs[2].id]
