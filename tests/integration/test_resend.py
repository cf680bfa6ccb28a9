"""Calls sent again after a lost reply: each has the effect of one call, or is refused a
blind re-send. A reply is "lost" here the way a proxy or a socket timeout loses it: the
command reaches Redis and runs, the client never reads the answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

import jobkit
from jobkit import CancelOutcome, Status
from jobkit.backend import scripts
from jobkit.backend.socket_link import Link, ReplyLost
from jobkit.backend.store import Store
from jobkit.models import Claimed
from tests.conftest import Env
from tests.support import jobs

LoseReply = Callable[..., None]


@pytest.fixture
def lose_reply(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoseReply]:
    """``lose_reply(meanwhile, error)``: the next reply read on any direct connection is
    lost after Redis ran the command, and ``error`` raised (default: the connection was
    reset); ``meanwhile()`` runs in between (another client acting while the first waits
    for its answer)."""
    read = Link.read

    def arm(
        meanwhile: Callable[[], object] = lambda: None,
        error: redis.RedisError = redis.ConnectionError("Connection reset by peer"),
    ) -> None:
        armed = [True]

        def lossy(self: Link) -> object:
            if armed[0]:
                armed[0] = False
                read(self)  # Redis answered: the command ran ...
                meanwhile()
                raise error  # ... we never knew
            return read(self)

        monkeypatch.setattr(Link, "read", lossy)

    yield arm


def _other_store(env: Env) -> Store:
    """A second client, as another process (a worker) would have."""
    return Store(redis.Redis.from_url(env.url, decode_responses=True))


def test_every_script_is_classified() -> None:
    assert set(scripts.NAMES) == scripts.REPEATABLE | scripts.UNREPEATABLE
    assert {"revive", "purge", "cancel", "drain"} == scripts.UNREPEATABLE


def test_a_resent_dispatch_never_resets_a_job_a_worker_claimed(
    env: Env, lose_reply: LoseReply
) -> None:
    env.store.load_scripts()  # so the reply lost is the enqueue's, not a NOSCRIPT
    worker = _other_store(env)
    claimed: list[Claimed] = []
    lose_reply(lambda: claimed.extend(worker.leasing.claim("w1", 30_000, 1, [["default"]])))

    handle = jobs.Add.dispatch(a=1, b=2)  # sent, claimed by w1, its reply lost, sent again

    [job] = claimed
    assert job.id == handle.id and job.token == "1"
    rec = env.store.reads.get(handle.id)
    assert rec is not None and rec.status is Status.RUNNING and rec.attempts == 1
    assert env.client.hget(env.keys.job(handle.id), "lease") == "1"
    assert env.client.zcard(env.keys.queue("default")) == 0
    assert worker.leasing.claim("w2", 30_000, 1, [["default"]]) == []  # nothing for a second worker


def test_a_resent_dispatch_many_creates_each_job_once(env: Env, lose_reply: LoseReply) -> None:
    env.store.load_scripts()
    lose_reply()
    handles = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(450)])  # 3 chunks
    assert len({h.id for h in handles}) == 450
    assert env.client.zcard(env.keys.queue("default")) == 450
    assert int(env.client.get(env.keys.shard("default").seq) or 0) >= 450


def test_a_resent_claim_answers_with_the_jobs_it_leased(env: Env, lose_reply: LoseReply) -> None:
    jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(5)])
    env.store.load_scripts()
    lose_reply(error=redis.TimeoutError("Timeout reading from socket"))
    # leased 3, reply lost, sent again
    first = env.store.leasing.claim("w", 30_000, 3, [["default"]])

    assert len(first) == 3
    assert (
        env.client.zcard(env.keys.shard("default").running) == 3
    )  # no lease stranded by the lost reply
    assert {c.token for c in first} == {"1"}
    rest = env.store.leasing.claim("w", 30_000, 10, [["default"]])
    assert len(rest) == 2 and not {c.id for c in rest} & {c.id for c in first}


def test_a_refill_whose_replies_are_lost_is_sent_again(env: Env, lose_reply: LoseReply) -> None:
    jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(6)])
    [first] = env.store.leasing.claim("w", 30_000, 1, [["default"]])
    done = [(first.id, first.token, "1", 60)]
    refill = env.store.leasing.send_refill(done, "w", 30_000, 2, [["default"]])
    lose_reply(error=redis.TimeoutError("Timeout"))  # Redis ran both; the replies never came

    flags, claimed = env.store.leasing.finish_refill(refill)

    assert flags == [True]
    assert len(claimed) == 2
    assert set(env.client.zrange(env.keys.shard("default").running, 0, -1)) == {
        c.id for c in claimed
    }
    assert env.client.zcard(env.keys.queue("default")) == 3
    assert env.stats()["succeeded"] == 1


def test_outcomes_sent_twice_are_recorded_once(env: Env) -> None:
    done, failed, handed_back = (jobs.Add.dispatch(a=i, b=0) for i in range(3))
    store = env.store
    leased = {c.id: c for c in store.leasing.claim("w", 30_000, 3, [["default"]])}
    d, f, h = leased[done.id], leased[failed.id], leased[handed_back.id]

    for _ in range(2):
        assert store.leasing.complete(d.id, d.token, b"0", 60) is True
        assert store.leasing.fail(f.id, f.token, dead=False, delay_ms=0, reason="exception",
                          error_json=b"{}", ttl=60) is True  # fmt: skip
        assert store.leasing.requeue(h.id, h.token, uncount=True) is True

    assert env.stats() == {"succeeded": 1, "failed": 1}
    assert env.client.zcard(env.keys.queue("default")) == 2  # each back once
    assert env.client.zcard(env.keys.shard("default").running) == 0
    # a job handed back unrun shows no worker and no start time, and no attempt used
    back = env.client.hgetall(env.keys.job(h.id))
    assert "worker" not in back and "started_at" not in back and back["attempts"] == "0"


def test_a_dispatch_whose_reply_times_out_raises_and_stores_one_job(
    env: Env, lose_reply: LoseReply
) -> None:
    env.store.load_scripts()
    lose_reply(error=redis.TimeoutError("Timeout reading from socket"))
    with pytest.raises(redis.TimeoutError):  # not sent again: Redis may be frozen
        jobs.Add.dispatch(a=1, b=2)
    assert env.client.zcard(env.keys.queue("default")) == 1


def test_a_call_that_must_not_run_twice_raises_when_its_reply_is_lost(
    env: Env, lose_reply: LoseReply
) -> None:
    handle = jobs.Add.dispatch(a=1, b=1)
    [job] = env.store.leasing.claim("w", 30_000, 1, [["default"]])
    env.store.leasing.fail(job.id, job.token, dead=True, delay_ms=0, reason="exception",
                   error_json=b"{}", ttl=60)  # fmt: skip
    env.store.load_scripts()
    lose_reply()
    with pytest.raises(ReplyLost, match="may or may not have run"):
        env.store.revive(handle.id)
    # it ran once: queued once, and the connection is usable again
    assert handle.status is Status.QUEUED
    assert env.client.zcard(env.keys.queue("default")) == 1
    assert env.store.revive(handle.id) is False  # not dead any more


def test_an_unrepeatable_call_goes_out_on_a_live_connection(env: Env) -> None:
    handle = jobs.Add.dispatch(a=1, b=1)  # this thread's connection is open now
    assert env.client.client_kill_filter(_type="normal", skipme=True) >= 1  # idle, then closed
    assert (
        env.store.cancel(handle.id, 60) is CancelOutcome.CANCELLED
    )  # seen dead before sending: a fresh one
    assert handle.status is Status.CANCELLED


def test_a_job_whose_hand_back_reply_is_lost_is_never_run_by_the_child(
    env: Env, lose_reply: LoseReply
) -> None:
    """A child hands unstarted jobs back (every runner stuck in a long job); the reply of
    one requeue is lost, but Redis ran it and another worker claims the job. The child
    must not keep that job to run it itself: two runs at once, under two tokens."""
    import os

    from jobkit.worker.child import Child
    from jobkit.worker.slot import Slots

    jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(3)])
    read_fd, write_fd = os.pipe()
    try:
        child = Child(jobkit.get_settings(), "w", [["default"]], write_fd, Slots(1))
        child.store = env.store
        entries = child.link.claimed(env.store.leasing.claim("w", 30_000, 3, [["default"]]))
        env.store.load_scripts()
        other = _other_store(env)
        taken: list[Claimed] = []
        # the first requeue runs, its reply times out, and another worker takes the job
        lose_reply(
            lambda: taken.extend(other.leasing.claim("w2", 30_000, 1, [["default"]])),
            error=redis.TimeoutError("Timeout reading from socket"),
        )

        with pytest.raises(redis.TimeoutError):
            child.release(entries)

        kept = [job.id for _, job in child.batch]
        assert [t.id for t in taken] == [entries[0][1].id]
        assert taken[0].id not in kept  # never run by two workers at once
        assert kept == [job.id for _, job in entries[1:]]  # those never sent stay the child's
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_a_resent_run_now_creates_one_job_counted_once(env: Env, lose_reply: LoseReply) -> None:
    from jobkit.cron import collect
    from jobkit.ops.schedules import find_schedule, run_schedule_now
    from tests.support import sched_jobs

    bound = find_schedule(collect([sched_jobs.TickSkip]), "tests.support.sched_jobs.TickSkip#eu")
    env.store.load_scripts()
    env.store.register_queues([sched_jobs.CRON_QUEUE])  # so the reply lost is the script's
    worker = _other_store(env)
    claimed: list[Claimed] = []
    # it runs, a worker claims the job, the reply is lost: sent again, it finds the job
    lanes = [[sched_jobs.CRON_QUEUE]]
    lose_reply(lambda: claimed.extend(worker.leasing.claim("w1", 30_000, 1, lanes)))

    job_id = run_schedule_now(env.store, bound)

    assert [c.id for c in claimed] == [job_id]
    shard = env.keys.shard(sched_jobs.CRON_QUEUE)
    state = env.client.hgetall(shard.schedule(bound.key))
    assert (state["runs_now"], state["last_job"]) == ("1", job_id)
    assert env.client.hget(env.keys.job(job_id), "status") == "running"  # not reset
    assert env.client.zcard(env.keys.queue(sched_jobs.CRON_QUEUE)) == 0
    assert env.client.zcard(shard.running) == 1


def test_a_resent_pause_or_resume_changes_the_schedule_once(
    env: Env, lose_reply: LoseReply
) -> None:
    from jobkit.cron import collect
    from jobkit.ops.schedules import find_schedule, pause_schedule, resume_schedule
    from tests.support import sched_jobs

    bound = find_schedule(collect([sched_jobs.TickOnce]), "tests.support.sched_jobs.TickOnce")
    key = env.keys.shard(sched_jobs.CRON_QUEUE).schedule(bound.key)
    env.store.load_scripts()
    lose_reply()
    pause_schedule(env.store, bound)  # paused, reply lost, sent again: found paused
    paused = env.client.hget(key, "paused")
    assert paused is not None
    assert pause_schedule(env.store, bound) is False
    assert env.client.hget(key, "paused") == paused  # since the first pause
    lose_reply()
    resume_schedule(env.store, bound)
    assert env.client.hget(key, "paused") is None
    resumed = env.client.hget(key, "resumed_at")
    assert resumed is not None and int(resumed) >= int(paused)
    assert resume_schedule(env.store, bound) is False
    assert env.client.hget(key, "resumed_at") == resumed
