"""The scheduler's store calls on a Redis Cluster, where redis-py refuses scripts and keyless
commands (TIME) inside a cluster pipeline: due delayed jobs on three masters are promoted
and Redis time is read, one call at a time there."""

from __future__ import annotations

import time

from jobkit.backend.cron import ScheduleStore
from jobkit.backend.store import Store
from jobkit.backend.transport import make_client
from tests.support import jobs
from tests.support.cluster_server import ClusterServers
from tests.support.servers import spread_names

PREFIX = "schedcluster"


def test_due_delayed_jobs_on_every_master_are_promoted(redis_cluster: ClusterServers) -> None:
    url = "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in redis_cluster.startup_nodes)
    store = Store(make_client(url, {"decode_responses": True}), PREFIX)
    queues = spread_names(redis_cluster, PREFIX, 3)
    ids = [jobs.Add.dispatch(a=1, b=2, delay=0.2, queue=q, store=store).id for q in queues]
    sched = ScheduleStore(store)
    time.sleep(0.3)
    moved, wait_ms, now = sched.promote_and_time(queues, 100)
    assert moved == 3 and wait_ms == -1
    assert abs(now - time.time()) < 5
    statuses = [store.redis.hget(store.keys.job(job_id), "status") for job_id in ids]
    assert statuses == ["queued"] * 3
