"""A graceful stop that arrives while the supervisor replaces a child starts nothing new."""

from __future__ import annotations

import os
import signal
import time

from jobkit import Status
from tests.conftest import Env, StartWorker, wait_until
from tests.support import jobs


def test_sigterm_while_a_dead_child_is_replaced_starts_no_new_job(
    env: Env, start_worker: StartWorker
) -> None:
    trigger = jobs.TermDuringRespawn.dispatch(once="once", pids="pids")
    behind = jobs.StampStart.dispatch_many([{"key": "starts"} for _ in range(200)])
    worker = start_worker(concurrency=1, grace=3, ready=False)

    # the trigger's child dies; we SIGTERM the supervisor 50 ms after it collected the
    # child (a zombie keeps its /proc entry: gone means collected), while a replacement
    # is due; the worker must just stop
    child, supervisor = map(int, wait_until(lambda: env.client.lindex("pids", 0)).split())
    wait_until(lambda: not os.path.exists(f"/proc/{child}"), timeout=10, interval=0.002)
    time.sleep(0.05)
    signalled = time.time()
    os.kill(supervisor, signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    started = [float(t) for t in env.client.lrange("starts", 0, -1)]
    late = [t - signalled for t in started if t > signalled]
    assert late == [], f"{len(late)} job(s) started after SIGTERM"
    assert "replacing it" in worker.log_text()  # the stop did fall in the replacement
    assert worker.group_pids() == []

    # the jobs behind it wait in their queue for the next worker
    assert all(h.status is Status.QUEUED for h in behind)
    # the trigger crashed its child: its lease was expired at once, and is reaped now or
    # by the next worker
    assert trigger.status in {Status.RUNNING, Status.QUEUED}
    start_worker()
    wait_until(lambda: env.client.llen("starts") == 200, timeout=30, what="all jobs to run")
