"""A worker rides out a Redis restart and keeps serving jobs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

import jobkit
from jobkit import Status
from tests.conftest import HEARTBEAT, LEASE, StartWorker, wait_until
from tests.support import jobs
from tests.support.redis_server import RedisServer


@pytest.fixture
def aof_server() -> Iterator[RedisServer]:
    """A server of its own (with AOF, so data survives restarts), jobkit configured on it."""
    with RedisServer(appendonly=True) as server:
        jobkit.configure(redis_url=server.url, lease=LEASE, heartbeat=HEARTBEAT)
        try:
            yield server
        finally:
            jobkit.get_store().redis.close()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_worker_reconnects_after_redis_restart(
    aof_server: RedisServer, start_worker: StartWorker
) -> None:
    worker = start_worker()
    [child] = worker.child_pids()
    before = jobs.Add.dispatch(a=1, b=1)
    assert before.result(timeout=15) == 2
    queued = jobs.Stamp.dispatch(delay=3)  # in the scheduled set across the restart

    aof_server.restart()
    client = aof_server.client(decode_responses=True)
    try:
        wait_until(lambda: _pings(client), timeout=10, what="Redis to be back")
        keys = jobkit.get_store().keys
        assert client.hget(keys.job(before.id), "status") == "succeeded"  # kept by the AOF
        assert client.zscore(keys.shard("default").scheduled, queued.id) is not None

        after = jobs.Add.dispatch(a=20, b=22)
        assert after.result(timeout=30) == 42
        assert queued.result(timeout=30) > 0
        assert queued.status is Status.SUCCEEDED
        assert before.refresh().status is Status.SUCCEEDED
        # the same processes reconnected: nothing was restarted or replaced
        assert worker.alive()
        assert jobs.WhoAmI.dispatch().result(timeout=15) == {"pid": child, "ppid": worker.pid}
        assert worker.child_pids() == [child]
    finally:
        client.close()
