"""Keys of the wrong type never stop a worker, nor flood its log: the scripts set them
aside, the worker says so once per key, and jobs flow on."""

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

    # set aside by the next promote, reap or beat: jobs flow on with nothing deleted
    assert jobs.Add.dispatch(a=2, b=3).result(timeout=10) == 5
    assert jobs.Add.dispatch(a=1, b=2, delay=0.2).result(timeout=10) == 3  # promoted
    time.sleep(2)  # beats every 0.3 s, looks for keys set aside every second
    assert worker.alive()
    assert worker.child_pids() == [child]
    assert env.client.zscore(env.keys.workers, worker.name) is not None  # beating again
    errors = _errors(worker.log_text())
    for key in (k.running, k.scheduled):  # the queue's keys: logged once each
        assert len([e for e in errors if f"{key} held a string" in e]) == 1, errors
    assert len(errors) <= 3, "\n".join(errors)  # once per key, not once per tick
    assert "Traceback" not in worker.log_text()


def test_a_queue_key_of_another_type_is_set_aside_and_served(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker(queues="default,low", concurrency=1)
    [child] = worker.child_pids()
    queue = env.keys.queue("default")
    env.client.set(queue, "not a sorted set")
    env.client.lpush(env.keys.wake("default"), "1")  # wake the child: it claims
    assert jobs.Add.dispatch(a=1, b=1, queue="low").result(timeout=10) == 2  # served on
    assert jobs.Add.dispatch(a=4, b=4).result(timeout=10) == 8  # and the lane, again
    time.sleep(1.5)

    assert worker.child_pids() == [child]  # not dead, not replaced
    errors = _errors(worker.log_text())
    assert len([e for e in errors if f"{queue} held a string" in e]) == 1, errors
    assert len(errors) == 1, "\n".join(errors)  # said once, not at every claim
    assert "Traceback" not in worker.log_text()
