"""Redis that comes back empty (restarted without persistence, or flushed) is reported."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import jobkit
from tests.conftest import HEARTBEAT, LEASE, StartWorker, wait_until
from tests.support import jobs
from tests.support.redis_server import RedisServer

LOST = "Redis lost its data"


@pytest.fixture
def bare_server() -> Iterator[RedisServer]:
    """A server of its own without persistence (no AOF, no RDB), jobkit configured on it."""
    with RedisServer(appendonly=False) as server:
        jobkit.configure(redis_url=server.url, lease=LEASE, heartbeat=HEARTBEAT)
        try:
            yield server
        finally:
            jobkit.get_store().redis.close()


@pytest.mark.parametrize("how", ["restart", "flush"])
def test_redis_that_lost_its_data_is_reported_once_by_each_worker(
    bare_server: RedisServer, start_worker: StartWorker, how: str
) -> None:
    busy, idle = start_worker(concurrency=1), start_worker(concurrency=1)
    client = bare_server.client(decode_responses=True)
    try:
        assert jobs.Add.dispatch(a=1, b=1).result(timeout=10) == 2
        jobs.SleepThenMark.dispatch(marker="started", after="finished", seconds=2.0)
        wait_until(lambda: client.exists("started"), timeout=10, what="the job to start")
        if int(client.get("started") or 0) in idle.child_pids():
            busy, idle = idle, busy
        assert LOST not in busy.log_text() + idle.log_text()

        if how == "restart":
            bare_server.restart()  # comes back empty
        else:
            client.flushall()
        # each worker says so, the one that wrote the marker again first and the other
        for worker, held in ((busy, 1), (idle, 0)):
            wait_until(lambda w=worker: LOST in w.log_text(), timeout=10, what="a report")
            [line] = [ln for ln in worker.log_text().splitlines() if LOST in ln]
            assert " ERROR " in line
            cause = "restarted without persistence" if how == "restart" else "flushed"
            assert cause in line
            assert f"{held} job(s) this worker holds" in line

        # the workers serve on, and say it once, not at every beat
        assert jobs.Add.dispatch(a=2, b=3).result(timeout=20) == 5
        time.sleep(2 * HEARTBEAT + 2.0)  # the orphaned job ends too: its result is dropped
        for worker in (busy, idle):
            assert worker.log_text().count(LOST) == 1
            assert "lease lost" not in worker.log_text()  # counted in the report instead
            assert worker.alive()
    finally:
        client.close()
