"""jobkit on a real Redis Cluster (three masters, three replicas, started by the tests): the
lifecycle, retries, delayed and cron jobs, kill -9 recovery, tags, dead retry and the CLI
views, with three queues whose shards sit on three different masters; and a slot of a busy
queue moved to another master while jobs flow."""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

import jobkit
from jobkit import Status
from jobkit.backend.keys import Keys
from jobkit.backend.store import Store
from jobkit.backend.transport import make_client
from tests import jobs
from tests.cluster_server import ClusterServers
from tests.conftest import HEARTBEAT, LEASE, PREFIX, StartWorker, run_cli, wait_until
from tests.servers import spread_names


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
        return dict(self.store.counts().totals)


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
