"""jobkit behind Sentinel, on real processes: the primary is killed while jobs flow.

Workers, a scheduler and a producer find the new primary on their own (every new
connection asks the sentinels). With ``JOBKIT_DURABLE_REPLICAS=1`` no dispatch that
returned is lost in the failover; without it, the jobs the replica had not received yet
when the primary died are lost, and the test reports how many.

The loss window is made measurable: the replica is stopped (SIGSTOP) for a moment and
the primary is given more data to replicate than the kernel's socket buffers between them
hold (a big value written over and over), so the jobs dispatched behind it wait in the
primary's memory, as behind a replica lagging on a busy link; then the primary is killed.
Without that, on this machine, the replica is a fraction of a millisecond behind: stopping
it alone loses nothing, as what it has not read yet waits in its own socket buffer.

The Sentinel set is the session's: every test here leaves it healed (the old primary back
as a replica, every sentinel agreeing), whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from jobkit import NotDurable, Status
from jobkit.backend.keys import Keys
from jobkit.backend.store import Store
from jobkit.connection import connect
from jobkit.settings import load_settings
from tests.conftest import PREFIX, StartWorker, job_status, wait_until
from tests.integration.test_worker_log_level import _process
from tests.support import jobs
from tests.support.redis_server import RedisServer
from tests.support.sched_jobs import CRON_QUEUE
from tests.support.sentinel_server import SentinelSet
from tests.support.server_process import Address, node_client

KEYS = Keys(PREFIX)
CRON_KEY = (
    "tests.support.sched_jobs.TickOnce"  # a schedule of tests.support.sched_jobs, every second
)
REPLICA_PAUSE = 0.5  # seconds the replica is stopped before the primary dies
# more than the socket buffers between primary and replica hold (Linux lets a receive
# buffer grow to net.ipv4.tcp_rmem's 32 MiB here, a send buffer to 4 MiB)
BACKLOG_MB = 48
DURABLE_TIMEOUT_MS = 200


@dataclass
class Producer:
    """A thread dispatching ``jobs.Add`` to ``queue`` until stopped: the ids whose dispatch
    returned (acknowledged), and the errors of those that raised, by type."""

    store: Store
    queue: str
    acks: list[tuple[str, float]] = field(default_factory=list)  # id, monotonic time
    errors: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Producer:
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                handle = jobs.Add.dispatch(a=n, b=1, queue=self.queue, store=self.store)
            except (redis.RedisError, NotDurable) as exc:
                self.errors[type(exc).__name__] += 1
                time.sleep(0.02)  # Redis is away: the caller retries, as an app would
                continue
            self.acks.append((handle.id, time.monotonic()))

    @property
    def acknowledged(self) -> list[str]:
        return [job_id for job_id, _ in self.acks]

    def acked_after(self, moment: float) -> list[str]:
        return [job_id for job_id, at in self.acks if at > moment]

    def describe(self) -> str:
        """Its errors so far, and where its thread is now (for a failure message)."""
        thread = self._thread
        frame = sys._current_frames().get(thread.ident or 0) if thread else None
        where = "".join(traceback.format_stack(frame)[-6:]) if frame else "(not running)"
        return f"{len(self.acks)} acknowledged, errors {dict(self.errors)}; now at:\n{where}"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            assert not self._thread.is_alive(), "the producer did not stop"


@pytest.fixture
def sentinels(redis_sentinels: SentinelSet) -> Iterator[SentinelSet]:
    """The session's Sentinel set, flushed; healed afterwards, whatever the test did."""
    redis_sentinels.wait_ready()
    with redis_sentinels.client() as client:
        client.flushall()
    try:
        yield redis_sentinels
    finally:
        redis_sentinels.heal()


def _store(url: str, **settings: int) -> Store:
    return connect(load_settings(redis_url=url, **settings))


def _replica(sentinels: SentinelSet) -> Address:
    (replica,) = {node.address for node in sentinels.data if node.running} - {sentinels.primary()}
    return replica


def _pid(address: Address) -> int:
    with node_client(address) as client:
        return int(client.info("server")["process_id"])


@contextlib.contextmanager
def _paused(address: Address) -> Iterator[None]:
    """The server at ``address`` stopped (SIGSTOP) until the block ends: it reads nothing
    from the primary meanwhile, as a replica far behind."""
    pid = _pid(address)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _flood(address: Address) -> None:
    """Give the server at ``address`` :data:`BACKLOG_MB` MiB to replicate, in one key."""
    value = b"x" * 2**20
    with node_client(address, timeout=10) as client:
        pipe = client.pipeline(transaction=False)
        for _ in range(BACKLOG_MB):
            pipe.set("backlog", value)
        pipe.execute()


def _missing(address: Address, ids: list[str]) -> list[str]:
    """The ids of ``ids`` whose job the server at ``address`` does not hold."""
    with node_client(address) as client:
        pipe = client.pipeline(transaction=False)
        for job_id in ids:
            pipe.exists(KEYS.job(job_id))
        return [job_id for job_id, found in zip(ids, pipe.execute(), strict=True) if not found]


@contextlib.contextmanager
def _log_on_failure(name: str, log: Path, producer: Producer) -> Iterator[None]:
    """A failure inside the block carries the tail of ``log`` and the producer's state."""
    try:
        yield
    except Exception as exc:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-12:])
        raise AssertionError(
            f"{exc!r}\n--- producer: {producer.describe()}\n--- {name} log (tail)\n{tail}"
        ) from exc


def _fired(store: Store) -> int:
    return int(store.redis.hget(KEYS.shard(CRON_QUEUE).schedule(CRON_KEY), "fired") or 0)


def _all_succeeded(store: Store, ids: list[str]) -> bool:
    return all(job_status(store, job_id) is Status.SUCCEEDED for job_id in ids)


def test_workers_scheduler_and_producer_ride_out_a_failover(
    sentinels: SentinelSet, start_worker: StartWorker, tmp_path: Path
) -> None:
    store = _store(sentinels.url)
    workers = [start_worker(url=sentinels.url) for _ in range(2)]
    scheduler_args = ["scheduler", "-A", "tests.support.sched_jobs"]
    log = tmp_path / "scheduler.log"
    producer = Producer(store, "default")
    with (
        _process(scheduler_args, log, JOBKIT_REDIS_URL=sentinels.url) as scheduler,
        _log_on_failure("scheduler", log, producer),
    ):
        wait_until(lambda: _fired(store) >= 1, 15, what="the scheduler's first cron slot")
        producer.start()
        try:
            wait_until(lambda: len(producer.acknowledged) >= 50, 15, what="jobs dispatched")
            first = list(producer.acknowledged[:50])
            wait_until(lambda: _all_succeeded(store, first), 20, what="the first jobs to run")

            old = sentinels.kill_primary()
            new = sentinels.wait_failover(old)
            failed_over = time.monotonic()
            fired = _fired(store)

            # the producer reconnects by itself, and its new jobs run
            wait_until(lambda: len(producer.acked_after(failed_over)) >= 20, 20, what="dispatches")
        finally:
            producer.stop()
        after = producer.acked_after(failed_over)
        delayed = jobs.Add.dispatch(a=1, b=2, delay=0.3, store=store)
        wait_until(lambda: _all_succeeded(store, after), 30, what="jobs dispatched after")
        wait_until(lambda: _all_succeeded(store, [delayed.id]), 15, what="a delayed job")
        assert delayed.result(timeout=5) == 3
        # the scheduler goes on enqueuing cron slots on the new primary
        wait_until(lambda: _fired(store) >= fired + 2, 15, what="cron slots after failover")
        assert scheduler.poll() is None, log.read_text()

        # the same worker processes did the work: none died or was restarted
        for worker in workers:
            assert worker.alive(), worker.log_tail()
            assert worker.child_pids(), worker.log_tail()
        print(
            f"\nfailover {old} -> {new}: {len(producer.acknowledged)} dispatched, "
            f"{len(after)} after it; refused meanwhile: {dict(producer.errors)}"
        )
    store.redis.close()


def _role(address: Address) -> str:
    with node_client(address) as client:
        return str(client.execute_command("ROLE")[0])


def test_a_switchover_moves_dispatch_to_the_new_primary(sentinels: SentinelSet) -> None:
    # The old primary stays up and is demoted: the sentinels then close its clients'
    # connections (CLIENT KILL), so the wire's next connection asks them for the new
    # primary (the wire reads replies itself, bypassing redis-py's READONLY handling).
    # Until the demotion, the old primary still takes writes, and those are lost: only
    # a durable dispatch (WAIT) would notice.
    store = _store(sentinels.url)
    try:
        assert jobs.Add.dispatch(a=1, b=1, store=store).status is Status.QUEUED
        old = sentinels.primary()
        with node_client(sentinels.sentinels[0]) as client:
            client.execute_command("SENTINEL", "FAILOVER", sentinels.service)
        new = sentinels.wait_failover(old)
        wait_until(lambda: _role(old) == "slave", 20, what="the old primary's demotion")
        handle = jobs.Add.dispatch(a=1, b=1, store=store)
        assert _missing(new, [handle.id]) == []
    finally:
        store.redis.close()


@dataclass(frozen=True)
class Outcome:
    """What a producer saw through a failover, and what the new primary holds."""

    acknowledged: int
    lost: list[str]
    refused: dict[str, int]


def _failover_under_load(sentinels: SentinelSet, queue: str, **settings: int) -> Outcome:
    """Dispatch continuously, stop the replica for a moment, kill the primary while it is
    stopped, and count the acknowledged jobs the new primary does not hold."""
    store = _store(sentinels.url, **settings)
    producer = Producer(store, queue).start()
    try:
        wait_until(lambda: len(producer.acknowledged) >= 50, 15, what="jobs dispatched")
        replica = _replica(sentinels)
        with _paused(replica):
            _flood(sentinels.primary())
            time.sleep(REPLICA_PAUSE)
            old = sentinels.kill_primary()
        new = sentinels.wait_failover(old)
        assert new == replica
        failed_over = time.monotonic()
        # the new primary has no replica until the old one rejoins: a durable dispatch
        # is refused until then
        sentinels.restart(old.port)
        wait_until(
            lambda: len(producer.acked_after(failed_over)) >= 20,
            20,
            what=f"dispatches after the failover (refused: {dict(producer.errors)})",
        )
    finally:
        producer.stop()
        store.redis.close()
    lost = _missing(new, producer.acknowledged)
    with node_client(new) as client:
        client.delete("backlog")  # what reached the replica of it
    return Outcome(len(producer.acknowledged), lost, dict(producer.errors))


def test_durable_dispatch_loses_no_acknowledged_job(sentinels: SentinelSet) -> None:
    outcome = _failover_under_load(
        sentinels, "durable", durable_replicas=1, durable_timeout=DURABLE_TIMEOUT_MS
    )
    print(
        f"\nwith JOBKIT_DURABLE_REPLICAS=1: {outcome.acknowledged} acknowledged, "
        f"{len(outcome.lost)} lost; refused: {outcome.refused}"
    )
    assert outcome.lost == []
    # the replica was stopped: dispatches meanwhile were refused, not acknowledged
    assert outcome.refused.get("NotDurable", 0) >= 1


def test_dispatch_without_durable_replicas_reports_its_loss(sentinels: SentinelSet) -> None:
    outcome = _failover_under_load(sentinels, "async")
    print(
        f"\nwithout JOBKIT_DURABLE_REPLICAS: {outcome.acknowledged} acknowledged, "
        f"{len(outcome.lost)} lost in the failover; refused: {outcome.refused}"
    )
    assert outcome.acknowledged >= 70  # 50 before, 20 after the failover
    assert 0 <= len(outcome.lost) < outcome.acknowledged
    assert "NotDurable" not in outcome.refused


def test_every_dispatch_form_waits_for_a_replica(sentinels: SentinelSet) -> None:
    store = _store(sentinels.url, durable_replicas=1)
    try:
        one = jobs.Add.dispatch(a=1, b=1, store=store)
        chosen = jobs.Add.dispatch(a=1, b=1, job_id="k1", store=store)
        again = jobs.Add.dispatch(a=9, b=9, job_id="k1", store=store)  # exists: not rewritten
        later = jobs.Add.dispatch(a=1, b=1, delay=60, store=store)
        many = jobs.Add.dispatch_many([{"a": i, "b": 1} for i in range(450)], store=store)
        ids = [one.id, chosen.id, later.id, *(h.id for h in many)]
        assert again.id == chosen.id
        assert later.status is Status.SCHEDULED
        # each returned once the replica held it: nothing missing there right now
        assert _missing(_replica(sentinels), ids) == []
    finally:
        store.redis.close()


def test_a_dispatch_no_replica_acknowledges_raises_not_durable(redis_server: RedisServer) -> None:
    store = _store(redis_server.url, durable_replicas=1, durable_timeout=50)
    try:
        started = time.monotonic()
        with pytest.raises(NotDurable, match="0 of 1 replica") as caught:
            jobs.Add.dispatch(a=1, b=2, queue="lonely", store=store)
        assert time.monotonic() - started < 2
        assert "may exist" in str(caught.value)
        (job_id,) = caught.value.job_ids
        assert job_status(store, job_id) is Status.QUEUED  # written, not acknowledged
        with pytest.raises(NotDurable) as many:
            jobs.Add.dispatch_many([{"a": 1, "b": 2}] * 3, queue="lonely", store=store)
        assert len(many.value.job_ids) == 3
        assert (many.value.acknowledged, many.value.required) == (0, 1)
        store.redis.script_flush()  # refused for want of the script: loaded, sent again
        with pytest.raises(NotDurable) as flushed:
            jobs.Add.dispatch(a=1, b=2, queue="lonely", store=store)
        assert job_status(store, flushed.value.job_ids[0]) is Status.QUEUED
    finally:
        store.redis.close()


def test_a_store_reconnects_more_often_than_its_pool_holds_connections(
    redis_server: RedisServer,
) -> None:
    # A failover costs a producer a reconnection per retry; the direct connections must
    # not count against redis-py's pool limit (100), or every later one is refused.
    store = _store(redis_server.url)
    limit = store.redis.connection_pool.max_connections
    try:
        with redis_server.client(decode_responses=True) as killer:
            for n in range(limit + 20):
                handle = jobs.Add.dispatch(a=n, b=1, queue="again", store=store)
                assert handle.status is Status.QUEUED
                killer.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    finally:
        store.redis.close()
