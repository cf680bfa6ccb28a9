"""A worker's done / failed counts, and its children's, reach the registry when a job
ends, not at the next heartbeat: read through ``jobkit workers --json`` from a real
worker beating every 5 s, each count is carried by a beat written within a second of
the end its job's record gives."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from jobkit.backend.store import Store
from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import jobs

HEARTBEAT = 5.0  # so the regular beat cannot be what shows the counts in time
LEASE = 15.0
WITHIN = 1.0  # seconds from a job's end to the beat carrying its count


def _ended_at(store: Store, job_id: str) -> float:
    """When the job's record says it ended (Redis time, epoch s), once it has."""
    ended = wait_until(
        lambda: store.redis.hget(store.keys.job(job_id), "finished_at"), 10, 0.005, "job end"
    )
    return int(ended) / 1000


def _worker(env: Env, name: str) -> dict[str, Any] | None:
    out = run_cli("workers", "--json", url=env.url)
    assert out.returncode == 0, out.stderr
    return next((w for w in orjson.loads(out.stdout) if w["name"] == name), None)


def _counts_within(
    env: Env, name: str, ended: float, ok: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The worker as ``jobkit workers --json`` shows it once ``ok(worker)`` holds, read
    by a call started within WITHIN of ``ended``; the beat carrying it was written
    within WITHIN of ``ended`` too (its ``last_seen``, Redis time)."""
    while True:
        started = _redis_now(env)
        shown = _worker(env, name)
        if shown is not None and ok(shown):
            break
        assert started - ended < WITHIN, f"counts not moved {WITHIN}s after the end: {shown}"
    assert started - ended < WITHIN
    assert 0 <= shown["last_seen"] - ended < WITHIN, (shown["last_seen"], ended)
    return shown


def _redis_now(env: Env) -> float:
    sec, usec = env.client.time()
    return float(sec + usec / 1_000_000)


def _child(shown: dict[str, Any], pid: int) -> dict[str, Any]:
    return next(c for c in shown["children"] if c["pid"] == pid)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_counts_move_when_a_job_ends(env: Env, start_worker: StartWorker, concurrency: int) -> None:
    worker = start_worker(concurrency=concurrency, lease=LEASE, heartbeat=HEARTBEAT)
    # the worker beat as it started (wait_ready saw it): the next regular beat is ~5 s off
    wait_until(lambda: len(worker.child_pids()) == concurrency, 10, what="children")

    ok = jobs.WhoAmI.dispatch()
    ended = _ended_at(env.store, ok.id)
    ran_on = int(ok.result(timeout=5)["pid"])
    shown = _counts_within(env, worker.name, ended, lambda w: w["done"] == 1)
    assert (shown["done"], shown["failed"]) == (1, 0)
    assert shown["jobs"] == [] and shown["state"] == "running"
    assert (_child(shown, ran_on)["done"], _child(shown, ran_on)["failed"]) == (1, 0)
    assert sum(c["done"] for c in shown["children"]) == 1
    assert len(shown["children"]) == concurrency

    bad = jobs.BadResult.dispatch()  # its result is no JSON: dead at its first attempt
    ended = _ended_at(env.store, bad.id)
    assert env.status(bad.id) == "dead"
    shown = _counts_within(env, worker.name, ended, lambda w: w["failed"] == 1)
    assert (shown["done"], shown["failed"]) == (1, 1)
    assert shown["counts"]["dead"] == 1
    # only one job failed: the child counting it is the one that ran it, and the counts
    # of each child add up to the worker's
    [failed] = [c for c in shown["children"] if c["failed"]]
    assert failed["failed"] == 1 and failed["pid"] in worker.child_pids()
    assert sum(c["done"] for c in shown["children"]) == 1
    assert sum(c["failed"] for c in shown["children"]) == 1
    assert all(c["jobs"] == [] for c in shown["children"])


def test_a_burst_of_jobs_costs_a_few_beats_a_second(env: Env, start_worker: StartWorker) -> None:
    """Early beats are coalesced: thousands of jobs ending cost a few beats a second, not
    one each (each beat writes a new ``last_seen``); the last carries every count."""
    worker = start_worker(concurrency=1, lease=LEASE, heartbeat=HEARTBEAT)
    key = env.keys.worker(worker.name)
    n = 10_000  # a burst long enough for early beats: a child runs ~15,000 a second
    handles = jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(n)])
    seen: set[str] = set()
    polled = time.monotonic()
    while env.client.zcard(env.keys.queue("default")) or env.client.zcard(
        env.keys.shard("default").running
    ):
        seen.add(str(env.client.hget(key, "last_seen")))
        time.sleep(0.01)
    busy = time.monotonic() - polled
    ended = max(_ended_at(env.store, h.id) for h in handles[-10:])
    shown = _counts_within(env, worker.name, ended, lambda w: w["done"] == n)
    assert shown["failed"] == 0
    # at most one early beat per quarter second (and the regular one every 5 s)
    fewest = 2 if busy >= 0.5 else 1  # a burst shorter than two beats' gap may show one
    assert fewest <= len(seen) <= busy / 0.25 + 3, (len(seen), busy)
    # nothing ends any more: no early beat (the regular one may fall in this second)
    quiet: set[str] = set()
    for _ in range(50):
        quiet.add(str(env.client.hget(key, "last_seen")))
        time.sleep(0.02)
    assert len(quiet) <= 2, quiet
