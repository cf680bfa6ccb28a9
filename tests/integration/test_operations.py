"""Operating commands against a real redis-server and real workers: the worker registry
(`jobkit workers`, `workers prune`), queues (`jobkit queues`, pause, resume, purge),
weighted queue order, and tables that never cut a job id."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from jobkit import Status
from tests.conftest import REPO_ROOT, Env, StartWorker, clean_env, run_cli, wait_until
from tests.support import jobs


def _json(*args: str, env: Env) -> Any:
    out = run_cli(*args, "--json", url=env.url)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _cli_with_input(env: Env, text: str, *args: str, columns: int = 200) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "jobkit", *args, "--redis-url", env.url],
        cwd=REPO_ROOT,
        env=clean_env(COLUMNS=str(columns)),
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_workers_json_has_real_types_children_and_drops_a_finished_job_at_once(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker(concurrency=2, heartbeat=1.0)
    handle = jobs.Sleepy.dispatch(marker="ops-sleepy", seconds=3)

    def mine() -> dict[str, Any]:
        return next(w for w in _json("workers", env=env) if w["name"] == worker.name)

    row = wait_until(
        lambda: (found := mine())["jobs"] and found, timeout=10, what="its job reported"
    )
    assert isinstance(row["pid"], int) and isinstance(row["concurrency"], int)
    assert row["queues"] == ["default"] and row["tags"] == []
    assert isinstance(row["done"], int) and isinstance(row["failed"], int)
    assert isinstance(row["rss_mb"], float) and isinstance(row["started_at"], float)
    [job] = row["jobs"]
    assert (job["id"], job["name"]) == (handle.id, "tests.support.jobs.Sleepy")
    assert isinstance(job["since"], float)
    assert sorted(c["pid"] for c in row["children"]) == sorted(worker.child_pids())
    assert [c["jobs"] for c in row["children"] if c["jobs"]] == [[job]]
    assert all(isinstance(c["rss_mb"], float) for c in row["children"])

    handle.result(timeout=15)
    row = mine()  # the beat may still list it: the job's record says it ended
    assert row["jobs"] == [] and all(c["jobs"] == [] for c in row["children"])
    wait_until(lambda: mine()["done"] == 1, timeout=10, what="the count to reach 1")
    # the child that ran it counts it too, the other none
    children = wait_until(lambda: (c := mine()["children"]) and sum(x["done"] for x in c) and c)
    assert sorted(c["done"] for c in children) == [0, 1]
    assert all(c["failed"] == 0 for c in children)


def test_prune_removes_a_killed_worker_at_once_and_keeps_live_ones(
    env: Env, start_worker: StartWorker
) -> None:
    live = start_worker(heartbeat=0.3)
    dead = start_worker(heartbeat=0.3)
    names = {w["name"] for w in _json("workers", env=env)}
    assert {live.name, dead.name} <= names
    dead.kill()
    time.sleep(1.0)  # two beats missed, long before its entry expires (10 s)
    out = run_cli("workers", "prune", url=env.url)
    assert out.returncode == 0, out.stderr
    assert dead.name in out.stdout and "pruned 1 stale worker" in out.stdout
    assert [w["name"] for w in _json("workers", env=env)] == [live.name]


def test_pause_stops_claims_dispatch_still_works_and_resume_restarts(
    env: Env, start_worker: StartWorker
) -> None:
    start_worker()
    out = run_cli("queues", "pause", "default", url=env.url)
    assert out.returncode == 0, out.stderr
    handle = jobs.Record.dispatch(key="ops-paused", tag="a")  # accepted while paused
    time.sleep(1.5)
    assert env.client.lrange("ops-paused", 0, -1) == []
    assert handle.status is Status.QUEUED
    [state] = _json("queues", env=env)
    assert state.pop("next_waited_s") >= 1.0  # it waits while the queue is paused
    assert state == {
        "queue": "default",
        "ready": 1,
        "running": 0,
        "scheduled": 0,
        "dead": 0,
        "paused": True,
    }

    out = run_cli("queues", "resume", "default", url=env.url)
    assert out.returncode == 0, out.stderr
    wait_until(lambda: env.client.lrange("ops-paused", 0, -1) == ["a"], timeout=5)
    assert _json("queues", env=env)[0]["paused"] is False


def test_pause_of_an_unknown_queue_is_a_clear_error(env: Env) -> None:
    jobs.Add.dispatch(a=1, b=1)
    out = run_cli("queues", "pause", "nosuch", url=env.url)
    assert out.returncode == 2
    assert "unknown queue 'nosuch' (known queues: default)" in out.stdout + out.stderr


def test_purge_asks_unless_yes_and_leaves_running_jobs(env: Env) -> None:
    jobs.Add.dispatch_many([{"a": 1, "b": 1}] * 4)
    [running] = env.store.leasing.claim("w1", 30_000, 1, [["default"]])

    refused = _cli_with_input(env, "n\n", "queues", "purge", "default")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "delete its 3 ready job(s) of queue default?" in refused.stdout
    assert env.store.reads.queue_sizes(["default"]) == {"default": 3}

    out = run_cli("queues", "purge", "default", "--yes", url=env.url)
    assert out.returncode == 0, out.stderr
    assert "purged 3 ready job(s) from queue default" in out.stdout
    assert env.store.reads.queue_sizes(["default"]) == {"default": 0}
    rec = env.store.reads.get(running.id)
    assert rec is not None and rec.status is Status.RUNNING


def test_weighted_queues_share_claims_by_weight_and_the_lowest_gets_work(
    env: Env, start_worker: StartWorker
) -> None:
    for queue in ("high", "default", "low"):
        jobs.Record.dispatch_many([{"key": "ops-order", "tag": queue}] * 300, queue=queue)
    start_worker(queues="high:5,default:3,low:1", extra=("--prefetch", "1"))
    wait_until(lambda: env.client.llen("ops-order") >= 270, timeout=60, what="270 jobs")
    share = Counter(env.client.lrange("ops-order", 0, 269))
    # expected 150 / 90 / 30: loose bounds, the order is drawn at random per claim
    assert 100 <= share["high"] <= 200, share
    assert 50 <= share["default"] <= 130, share
    assert 8 <= share["low"] <= 60, share


def test_a_long_job_id_is_never_cut_in_a_narrow_terminal(
    env: Env, start_worker: StartWorker
) -> None:
    key = "a-rather-long-idempotency-key-" + "x" * 40
    handle = jobs.Sleepy.dispatch(marker="ops-long", seconds=3, job_id=key)
    worker = start_worker()
    wait_until(lambda: env.client.exists("ops-long"), timeout=10, what="the job to start")
    wait_until(
        lambda: handle.id in _cli_with_input(env, "", "workers", columns=80).stdout,
        timeout=10,
        what="the id, whole, in an 80-column table",
    )
    handle.result(timeout=15)
    for command in (("job", handle.id), ("workers", "show", worker.name)):
        shown = _cli_with_input(env, "", *command, columns=60).stdout
        assert handle.id in shown, (command, shown)
