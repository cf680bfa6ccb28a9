"""A script error (here: keys of the wrong type) never stops a worker, nor floods its log;
once the cause is gone, jobs flow again."""

from __future__ import annotations

import time

from tests.conftest import Env, StartWorker
from tests.support import jobs


def _errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if " ERROR " in line]


def test_supervisor_survives_keys_of_the_wrong_type(env: Env, start_worker: StartWorker) -> None:
    worker = start_worker(concurrency=1)
    [child] = worker.child_pids()
    assert jobs.Add.dispatch(a=1, b=1).result(timeout=10) == 2
    k = env.keys.shard("default")
    for key in (k.running, k.scheduled, env.keys.workers):
        env.client.delete(key)
        env.client.set(key, "not what a worker expects")

    time.sleep(3)  # promote runs every 50 ms, reap every 0.375 s, beats every 0.3 s
    assert worker.alive()
    assert worker.child_pids() == [child]
    errors = _errors(worker.log_text())
    assert any("promoting due jobs failed (ResponseError: WRONGTYPE" in e for e in errors)
    assert any("reaping lapsed leases failed" in e for e in errors)
    assert any("worker heartbeat failed" in e for e in errors)
    assert len(errors) <= 6, "\n".join(errors)  # once per kind, not once per tick
    assert "Traceback" not in worker.log_text()

    env.client.delete(k.running, k.scheduled, env.keys.workers)
    assert jobs.Add.dispatch(a=2, b=3).result(timeout=10) == 5
    assert jobs.Add.dispatch(a=1, b=2, delay=0.2).result(timeout=10) == 3  # promoted again
    time.sleep(1)
    assert "promoting due jobs works again" in worker.log_text()
    assert env.client.zscore(env.keys.workers, worker.name) is not None  # beating again
    assert worker.child_pids() == [child]


def test_a_queue_key_of_another_type_is_reported_and_skipped(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker(queues="default,low", concurrency=1)
    [child] = worker.child_pids()
    queue = env.keys.queue("default")
    env.client.set(queue, "not a sorted set")  # this lane cannot be served now
    for _ in range(3):
        env.client.lpush(env.keys.wake("default"), "1")  # wake the child: it claims
        time.sleep(1)
    assert jobs.Add.dispatch(a=1, b=1, queue="low").result(timeout=10) == 2  # served on

    assert worker.child_pids() == [child]  # not dead, not replaced
    errors = _errors(worker.log_text())
    assert any(f"queue key {queue} holds another type" in e for e in errors), errors
    assert len(errors) <= 1, "\n".join(errors)  # said once, not at every claim
    assert "Traceback" not in worker.log_text()

    env.client.delete(queue)
    assert jobs.Add.dispatch(a=4, b=4).result(timeout=10) == 8
    assert worker.child_pids() == [child]
