"""Lease renewal tells an attempt that just ended from a lease that was lost."""

from __future__ import annotations

from jobkit.backend import scripts
from jobkit.backend.store import Lease
from tests.conftest import Env, StartWorker
from tests.support import jobs


def _heartbeat(env: Env, job_id: str, token: str) -> int:
    """heartbeat.lua's raw code for one lease: 1 renewed, 2 attempt ended, 0 lost."""
    [code] = env.client.eval(
        scripts.source("heartbeat"), 1, env.keys.shard("default").base, 1500, job_id, token
    )
    return int(code)


def test_heartbeat_codes(env: Env) -> None:
    handle = jobs.Add.dispatch(a=1, b=1)
    [first] = env.store.leasing.claim("w", 1500, 1, [["default"]])
    assert _heartbeat(env, handle.id, first.token) == 1
    assert env.store.leasing.complete(first.id, first.token, b"2", 60)
    assert _heartbeat(env, handle.id, first.token) == 2  # ended under this lease: no loss
    assert env.store.leasing.heartbeat(1500, [(handle.id, first.token)]) == [Lease.ENDED]

    again = jobs.Add.dispatch(a=1, b=2)
    [claimed] = env.store.leasing.claim("w", 1500, 1, [["default"]])
    assert env.store.leasing.requeue(claimed.id, claimed.token, uncount=False)
    [retaken] = env.store.leasing.claim("w", 1500, 1, [["default"]])
    assert retaken.id == again.id
    assert _heartbeat(env, again.id, claimed.token) == 0  # another attempt holds it: lost
    assert _heartbeat(env, again.id, retaken.token) == 1
    assert _heartbeat(env, "no-such-job", "1") == 0


def test_no_lease_lost_warning_for_jobs_that_just_succeeded(
    env: Env, start_worker: StartWorker
) -> None:
    """The supervisor renews what its children hold until it reads their 'done' lines,
    up to a tick after Redis recorded the results: such a renewal is no loss."""
    handles = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(6000)])
    worker = start_worker(concurrency=1, heartbeat=0.05, extra=("--no-log-jobs",))
    assert handles[-1].result(timeout=60) == 5999
    assert env.stats().get("succeeded") == 6000
    assert "lease lost" not in worker.log_text()
