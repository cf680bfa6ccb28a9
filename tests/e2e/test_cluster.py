"""jobkit on a real Redis Cluster (three masters, three replicas, started by the tests): the
lifecycle, retries, delayed and cron jobs, kill -9 recovery, tags, dead retry and the CLI
views, with three queues whose shards sit on three different masters; and a slot of a busy
queue moved to another master while jobs flow."""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import OperationalError

import jobkit
from jobkit import JobFailed, Status
from jobkit.archive.schema import jobs as archive_jobs
from jobkit.backend.cluster import ClusterWire
from jobkit.backend.keys import Keys
from jobkit.backend.socket_link import ReplyLost
from jobkit.backend.store import Store
from jobkit.backend.transport import make_client
from jobkit.connection import connect
from jobkit.outage import TROUBLE
from tests.conftest import (
    HEARTBEAT,
    LEASE,
    PREFIX,
    REPO_ROOT,
    StartWorker,
    clean_env,
    run_cli,
    wait_until,
)
from tests.integration.test_listing import check_paging_while_jobs_move
from tests.integration.test_scheduler_process import Proc
from tests.support import jobs
from tests.support.cluster_server import ClusterServers
from tests.support.sched_jobs import CRON_QUEUE
from tests.support.servers import spread_names


@dataclass
class ClusterEnv:
    """A flushed cluster, jobkit configured on it, and three queues on three masters."""

    cluster: ClusterServers
    url: str
    client: RedisCluster
    store: Store
    keys: Keys
    queues: list[str]

    def stats(self) -> dict[str, int]:
        return dict(self.store.reads.counts().totals)


def cluster_url(cluster: ClusterServers) -> str:
    """The ``redis+cluster://`` URL of every startup node."""
    return "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in cluster.startup_nodes)


@pytest.fixture
def cenv(redis_cluster: ClusterServers) -> Iterator[ClusterEnv]:
    redis_cluster.wait_ok()
    redis_cluster.flushall()
    url = cluster_url(redis_cluster)
    jobkit.configure(redis_url=url, lease=LEASE, heartbeat=HEARTBEAT)
    store = jobkit.get_store()
    client = make_client(url, {"decode_responses": True})
    try:
        yield ClusterEnv(
            redis_cluster, url, client, store, Keys(PREFIX), spread_names(redis_cluster, PREFIX)
        )
    finally:
        client.close()
        store.redis.close()


def test_three_queues_live_on_three_masters(cenv: ClusterEnv, start_worker: StartWorker) -> None:
    """Every key of a queue lives on its shard's master; three queues, three masters."""
    handles = {q: jobs.Add.dispatch(a=1, b=index, queue=q) for index, q in enumerate(cenv.queues)}
    late = {q: jobs.Add.dispatch(a=2, b=0, queue=q, delay=60) for q in cenv.queues}
    owners = set()
    for queue, handle in handles.items():
        shard = cenv.keys.shard(queue)
        owner = cenv.cluster.node_for_key(shard.base)
        owners.add(owner)
        for key in (shard.job(handle.id), shard.queue_key(queue), shard.scheduled, shard.seq):
            assert cenv.client.exists(key), key
            assert cenv.cluster.node_for_key(key) == owner
        assert cenv.cluster.node_for_key(shard.job(late[queue].id)) == owner
    assert len(owners) == 3
    assert owners == set(cenv.cluster.masters())

    start_worker(queues=",".join(cenv.queues), concurrency=2)
    assert [h.result(timeout=20) for h in handles.values()] == [1, 2, 3]
    info = run_cli("info", "--json", url=cenv.url)
    assert info.returncode == 0, info.stderr
    shown = orjson.loads(info.stdout)
    assert shown["lanes"] == {q: 0 for q in cenv.queues}
    assert shown["fleet"]["scheduled"] == 3
    assert cenv.stats()["succeeded"] == 3


def test_lifecycle_and_cli_on_a_cluster(cenv: ClusterEnv, start_worker: StartWorker) -> None:
    start_worker(queues=",".join(cenv.queues), concurrency=2)
    handles = [
        h
        for q in cenv.queues
        for h in jobs.Add.dispatch_many([{"a": i, "b": 1} for i in range(40)], queue=q)
    ]
    assert [h.result(timeout=30) for h in handles] == [i + 1 for i in range(40)] * 3
    assert all(h.status is Status.SUCCEEDED and h.attempts == 1 for h in handles)
    found = jobkit.get_job(handles[-1].id)  # found from its id alone: the id names its shard
    assert found.status is Status.SUCCEEDED and found.result() == 40
    assert jobkit.get_job(f"{cenv.queues[1]}:no-such-job").status is Status.UNKNOWN
    assert jobkit.get_job("no-queue-named").status is Status.UNKNOWN

    shown = run_cli("job", handles[0].id, "--json", url=cenv.url)
    assert shown.returncode == 0, shown.stderr
    assert orjson.loads(shown.stdout)["status"] == "succeeded"
    listed = run_cli("workers", "--json", url=cenv.url)
    assert listed.returncode == 0, listed.stderr
    assert len(orjson.loads(listed.stdout)) == 1
    assert cenv.stats()["succeeded"] == 120


def test_retries_dead_letters_and_dead_retry_on_a_cluster(
    cenv: ClusterEnv, start_worker: StartWorker
) -> None:
    q0, q1, _ = cenv.queues
    start_worker(queues=f"{q0},{q1}", concurrency=2)
    flaky = jobs.Flaky.dispatch(times_key="flaky-times", fail_times=2, queue=q0)
    needs = jobs.NeedsFlag.dispatch(flag="cluster-flag", queue=q1)

    assert flaky.result(timeout=20) == "ok on attempt 3"
    times = [float(t) for t in cenv.client.lrange("flaky-times", 0, -1)]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.3 and times[2] - times[1] >= 0.6  # back-off, doubling
    with pytest.raises(JobFailed):
        needs.result(timeout=20)
    assert needs.status is Status.DEAD
    assert cenv.client.zscore(cenv.keys.shard(q1).dead, needs.id) is not None

    listed = run_cli("dead", "list", "--json", url=cenv.url)
    assert [e["id"] for e in orjson.loads(listed.stdout)] == [needs.id]
    cenv.client.set("cluster-flag", "1")
    retried = run_cli("dead", "retry", "--all", url=cenv.url)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert needs.result(timeout=20) == "flag seen"
    assert orjson.loads(run_cli("dead", "list", "--json", url=cenv.url).stdout) == []


def test_delayed_and_retry_later_jobs_on_a_cluster(
    cenv: ClusterEnv, start_worker: StartWorker
) -> None:
    q0, q1, q2 = cenv.queues
    start_worker(queues=f"{q0},{q1},{q2}")
    dispatched_at = time.time()
    stamps = [jobs.Stamp.dispatch(delay=0.5, queue=q) for q in (q0, q1, q2)]
    later = jobs.Later.dispatch(times_key="later-times", retry_in=0.4, queue=q2)
    for handle in stamps:
        ran_at = handle.result(timeout=15)
        assert 0.5 <= ran_at - dispatched_at < 5
    assert later.result(timeout=15) == 2
    first, second = (float(t) for t in cenv.client.lrange("later-times", 0, -1))
    assert second - first >= 0.4


def test_cron_schedules_fire_once_per_slot_with_two_schedulers(
    cenv: ClusterEnv, tmp_path: Path
) -> None:
    started = [
        Proc(["scheduler", "-A", "tests.support.sched_jobs"], cenv.url, tmp_path / f"sched{i}.log")
        for i in range(2)
    ]
    try:
        ready = cenv.keys.queue(CRON_QUEUE)
        wait_until(lambda: cenv.client.zcard(ready) >= 8, timeout=20, what="cron jobs")
    finally:
        for proc in started:
            proc.signal(signal.SIGKILL)
            proc.popen.wait(10)
    ids = cenv.client.zrange(ready, 0, -1)
    for key in ("TickOnce", "TickAll"):
        slots = sorted(int(i.rsplit(":", 1)[1]) for i in ids if f".{key}:" in i)
        assert len(slots) >= 3, ids
        assert slots == list(range(slots[0], slots[0] + len(slots)))  # one job per second
    fired = [line for p in started for line in p.text().splitlines() if " fired " in line]
    assert len(fired) == len(ids)  # each slot fired by one scheduler only


def test_sigkilled_worker_job_recovers_on_a_cluster(
    cenv: ClusterEnv, start_worker: StartWorker
) -> None:
    queue = cenv.queues[2]
    first = start_worker(queues=queue)
    handle = jobs.CountOnce.dispatch(
        marker="cl-started", counter="cl-done", first_sleep=30, queue=queue
    )
    started = cenv.keys.shard(queue).started  # attempt 1 (token 1) marked begun
    wait_until(lambda: cenv.client.hexists(started, f"1:{handle.id}"), 15, what="the start")
    first.kill()
    start_worker(queues=queue)
    assert handle.result(timeout=LEASE + 20) == 2
    assert cenv.client.get("cl-done") == "1"
    record = handle.record
    assert record is not None and record.crashes == 1
    assert cenv.stats()["succeeded"] == 1
    assert cenv.client.zcard(cenv.keys.shard(queue).running) == 0


def test_tagged_jobs_run_only_on_tagged_workers_on_a_cluster(
    cenv: ClusterEnv, start_worker: StartWorker
) -> None:
    queue = cenv.queues[1]
    start_worker(queues=queue, concurrency=1)
    gpu = jobs.OnGpu.dispatch(queue=queue)
    plain = jobs.Add.dispatch(a=1, b=1, queue=queue)
    assert plain.result(timeout=15) == 2
    time.sleep(0.5)
    assert gpu.status is Status.QUEUED  # the untagged worker left it
    start_worker(queues=queue, extra=("--tags", "gpu"))
    assert gpu.result(timeout=15) == "ran on a gpu worker"


def test_an_idle_worker_wakes_for_any_of_its_queues(
    cenv: ClusterEnv, start_worker: StartWorker
) -> None:
    """One BLPOP per master: a job on any queue wakes the worker, not its wait timeout."""
    start_worker(queues=",".join(cenv.queues))
    time.sleep(0.3)  # the worker is blocked, waiting
    for queue in reversed(cenv.queues):
        dispatched = time.monotonic()
        handle = jobs.Add.dispatch(a=1, b=1, queue=queue)
        assert handle.result(timeout=10) == 2
        record = handle.record
        assert record is not None and record.started_at is not None
        assert time.monotonic() - dispatched < 1.5  # below the wait's 2 s timeout


def test_events_and_views_on_a_cluster(cenv: ClusterEnv, start_worker: StartWorker) -> None:
    """The event streams, a job's history, a worker's last jobs and the queue overview,
    read from three masters."""
    worker = start_worker(queues=",".join(cenv.queues))
    handles = [jobs.Add.dispatch(a=i, b=1, queue=q) for i, q in enumerate(cenv.queues)]
    flaky = jobs.Flaky.dispatch(times_key="cl-flaky", fail_times=1, queue=cenv.queues[2])
    for handle in handles:
        handle.result(timeout=20)
    flaky.result(timeout=20)

    shown = orjson.loads(run_cli("job", flaky.id, "--json", url=cenv.url).stdout)
    assert [(e["from"], e["to"]) for e in shown["history"] if e["from"] == "running"] == [
        ("running", "retrying"),
        ("running", "succeeded"),
    ]
    shown = run_cli("workers", "show", worker.name, "--json", url=cenv.url).stdout
    done = orjson.loads(shown)["jobs"]
    assert {e["id"] for e in done} == {h.id for h in handles} | {flaky.id}
    assert {e["queue"] for e in done} == set(cenv.queues)
    info = orjson.loads(run_cli("info", "--json", url=cenv.url).stdout)
    for queue in cenv.queues:
        [view] = [q for q in info["queues"] if q["queue"] == queue]
        assert view["per_minute"]["done"]["1m"] >= 1
        assert view["workers"] == [worker.name]


def test_a_process_started_during_a_failover_waits_for_the_new_master(
    cenv: ClusterEnv,
) -> None:
    """A cluster client asks slot 0's master for the command table as it is built; with
    that master just killed, building it waits out the failover instead of failing."""
    dead = cenv.cluster.master_of_slot(0)
    queue = next(
        q for q in cenv.queues if cenv.cluster.node_for_key(cenv.keys.shard(q).base) != dead
    )
    cenv.cluster.kill(dead.port)
    try:
        store = connect(jobkit.get_settings())
        handle = jobs.Add.dispatch(a=1, b=2, queue=queue, store=store)
        assert store.reads.get(handle.id) is not None
        assert cenv.cluster.master_of_slot(0) != dead  # it took a failover
    finally:
        cenv.cluster.heal()


def queue_in_slot(slot: int) -> str:
    """A queue name whose shard hashes to ``slot``."""
    return next(f"r{i}" for i in itertools.count() if key_slot(f"{PREFIX}:r{i}".encode()) == slot)


def test_a_slot_of_a_busy_queue_moves_while_jobs_flow(
    cenv: ClusterEnv, start_worker: StartWorker
) -> None:
    """``redis-cli --cluster reshard`` moves a master's lowest slot; the queue is one whose
    shard hashes there, so the move carries it, keys and all, while it is busy."""
    source = cenv.cluster.masters()[0]
    slot = next(r.start for r in cenv.cluster.slot_map() if r.master == source)
    queue = queue_in_slot(slot)
    target = next(m for m in cenv.cluster.masters() if m != source)
    jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(1000)], queue=queue)  # keys to move
    worker = start_worker(queues=queue, concurrency=2)
    handles: list[jobkit.JobHandle] = []
    stop = threading.Event()

    def produce() -> None:
        index = 0
        while not stop.is_set():
            handles.append(jobs.Record.dispatch(key="ran", tag=str(index), queue=queue))
            index += 1
            time.sleep(0.002)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_until(lambda: len(handles) > 100, timeout=20, what="jobs flowing")
        cenv.cluster.reshard(source.port, target.port, 1)
        assert cenv.cluster.master_of_slot(slot) == target
        moved_at = len(handles)
        wait_until(lambda: len(handles) > moved_at + 300, timeout=20, what="jobs after the move")
    finally:
        stop.set()
        producer.join()

    for handle in handles:
        handle.result(timeout=30)
    statuses = collections.Counter(h.status for h in handles)
    assert statuses == {Status.SUCCEEDED: len(handles)}, statuses
    ran = collections.Counter(cenv.client.lrange("ran", 0, -1))
    assert len(ran) == len(handles)
    assert max(ran.values()) == 1  # no job ran twice
    stats = cenv.stats()
    assert stats.get("dead", 0) == 0
    assert stats["succeeded"] == len(handles) + 1000
    assert cenv.cluster.node_for_key(cenv.keys.job(handles[-1].id)) == target
    assert worker.alive()
    print(worker.log_text().count("WARNING"), "warnings;", "moved at job", moved_at)


def test_listing_with_paging_while_jobs_move_on_a_cluster(
    cenv: ClusterEnv, start_worker: StartWorker
) -> None:
    cenv.store.register_queues(cenv.queues)
    start_worker(queues=",".join(cenv.queues[1:]), concurrency=2)
    check_paging_while_jobs_move(cenv.store, cenv.queues)
    shown = run_cli("jobs", "--queue", cenv.queues[0], "--limit", "5", "--json", url=cenv.url)
    data = orjson.loads(shown.stdout)
    assert len(data["jobs"]) == 5 and isinstance(data["next_cursor"], str)
    assert {j["queue"] for j in data["jobs"]} == {cenv.queues[0]}


def test_a_cluster_no_node_answers_is_an_outage_to_the_worker(
    cenv: ClusterEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py's cluster client raises its own exception (no RedisError) when no node
    answers: the transport turns it into a connection error, which workers ride out as
    an outage (a runner thread once died of it), and a call that may not be sent twice
    into ReplyLost."""
    wire = ClusterWire(cenv.client)

    def unreachable(*args: object, **kwargs: object) -> None:
        raise RedisClusterException("Redis Cluster cannot be connected")

    monkeypatch.setattr(wire.client, "execute_command", unreachable)
    with pytest.raises(redis.ConnectionError) as lost:
        wire.execute("GET", "k")
    assert isinstance(lost.value, TROUBLE)
    with pytest.raises(ReplyLost):
        wire.execute("GET", "k", repeatable=False)
    assert issubclass(RedisClusterException, TROUBLE)


def test_the_history_archive_on_a_cluster(
    cenv: ClusterEnv, start_worker: StartWorker, tmp_path: Path
) -> None:
    """An archiver reads every queue's stream from its master and archives every job."""
    url = f"sqlite:///{tmp_path / 'history.db'}"
    log = tmp_path / "archiver.log"
    with log.open("ab") as out:
        archiver = subprocess.Popen(
            [sys.executable, "-m", "jobkit", "archiver"],
            cwd=REPO_ROOT,
            env=clean_env(JOBKIT_REDIS_URL=cenv.url, JOBKIT_HISTORY_URL=url),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        start_worker(queues=",".join(cenv.queues), concurrency=2)
        ids = [jobs.Add.dispatch(a=i, b=1, queue=q).id for i, q in enumerate(cenv.queues * 5)]
        engine = create_engine(url)

        def archived() -> int:
            with contextlib.suppress(OperationalError), engine.connect() as conn:
                done = archive_jobs.c.status == "succeeded"
                return int(conn.execute(select(func.count()).where(done)).scalar_one())
            return 0

        wait_until(lambda: archived() == len(ids), 30, 0.2, log.read_text(errors="replace"))
        with engine.connect() as conn:
            queues = {r.queue for r in conn.execute(select(archive_jobs.c.queue))}
        assert queues == set(cenv.queues)
        engine.dispose()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(archiver.pid, signal.SIGKILL)
        archiver.wait(10)
