"""Store behaviour that only shows against a real Redis: script cache loss, batches."""

from __future__ import annotations

from tests import jobs
from tests.conftest import Env


def test_a_lost_script_cache_never_strands_a_claimed_batch(env: Env) -> None:
    handles = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(6)])
    env.client.script_flush()  # as on a fresh or restarted Redis: nothing cached
    # a claim caches the claim script, but not the complete script
    [first] = env.store.claim("w", 30_000, 1, [["default"]])

    done = [(first.id, first.token, "1", 60)]
    flags, claimed = env.store.complete_and_claim(done, "w", 30_000, 2, [["default"]])

    assert flags == [True]
    assert len(claimed) == 2
    # exactly the jobs handed out are running: none was leased by a call that got retried
    running = set(env.client.zrange(env.keys.running, 0, -1))
    assert running == {c.id for c in claimed}
    assert env.client.zcard(env.keys.queue("default")) == len(handles) - 3


def test_dispatch_many_survives_a_lost_script_cache(env: Env) -> None:
    env.client.script_flush()
    handles = jobs.Add.dispatch_many([{"a": i, "b": i} for i in range(450)])  # 3 chunks
    assert len({h.id for h in handles}) == 450
    assert env.client.zcard(env.keys.queue("default")) == 450


def test_thousands_of_jobs_claimed_and_completed_in_single_calls(env: Env) -> None:
    jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(2500)])
    claimed = [c for _ in range(3) for c in env.store.claim("w", 30_000, 1000, [["default"]])]
    assert len(claimed) == 2500
    assert env.client.zcard(env.keys.running) == 2500
    flags = env.store.complete_many([(c.id, c.token, "1", 60) for c in claimed])  # one call
    assert all(flags) and len(flags) == 2500
    assert env.client.zcard(env.keys.running) == 0
