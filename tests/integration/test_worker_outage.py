"""Processes started while Redis is down wait for it quietly, then serve."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobkit
from jobkit import Status
from tests.conftest import HEARTBEAT, LEASE, StartWorker, wait_until
from tests.integration.test_worker_log_level import _process
from tests.support import jobs
from tests.support.redis_server import RedisServer


@pytest.fixture
def down_server() -> Iterator[RedisServer]:
    """A server with a port and no process yet; jobkit configured on it."""
    server = RedisServer()
    jobkit.configure(redis_url=server.url, lease=LEASE, heartbeat=HEARTBEAT)
    try:
        yield server
    finally:
        jobkit.get_store().redis.close()
        server.close()


@pytest.mark.slow
def test_worker_and_scheduler_wait_for_redis_at_start(
    down_server: RedisServer, start_worker: StartWorker, tmp_path: Path
) -> None:
    worker = start_worker(url=down_server.url, concurrency=2, ready=False)
    sched_log = tmp_path / "scheduler.log"
    sched_args = ["scheduler", "-A", "tests.support.jobs"]
    with _process(sched_args, sched_log, JOBKIT_REDIS_URL=down_server.url):
        time.sleep(2)
        children = sorted(worker.child_pids())
        assert len(children) == 2
        time.sleep(6)

        # alive, the same children (no crash loop), a bounded log without tracebacks
        assert worker.alive()
        assert sorted(worker.child_pids()) == children
        log = worker.log_text()
        assert "Traceback" not in log
        retries = [line for line in log.splitlines() if "Redis unreachable" in line]
        # three processes, each one line per retry: 0.1, 0.2, 0.4 ... 5 s apart
        assert 3 <= len(retries) <= 3 * 9, "\n".join(retries)
        assert len(log.splitlines()) <= len(retries) + 12
        sched = sched_log.read_text()
        assert "Traceback" not in sched
        assert 2 <= sched.count("Redis unreachable") <= 9, sched

        down_server.start()
        assert jobs.Add.dispatch(a=1, b=2).result(timeout=20) == 3
        delayed = jobs.Stamp.dispatch(delay=0.5)
        assert delayed.result(timeout=20) > 0
        assert worker.alive()
        assert sorted(worker.child_pids()) == children
        wait_until(lambda: "Redis reachable again" in sched_log.read_text(), timeout=10)
    # one 'reachable again' line per process that saw the outage, at its next retry
    wait_until(lambda: worker.log_text().count("Redis reachable again") == 3, timeout=10)
    time.sleep(0.5)
    assert worker.log_text().count("Redis reachable again") == 3
    assert sched_log.read_text().count("Redis reachable again") == 1
    assert delayed.status is Status.SUCCEEDED
