"""Introspection commands: what operators run to see queues, workers and jobs."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import jobs


def test_info_counts_ready_scheduled_and_done_jobs(env: Env) -> None:
    jobs.Add.dispatch_many([{"a": 1, "b": 1}] * 3)
    jobs.Add.dispatch(a=1, b=1, queue="other")
    jobs.Add.dispatch(a=1, b=1, delay=60)

    out = run_cli("info", "--json", url=env.url)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["lanes"] == {"default": 3, "other": 1}
    assert info["fleet"]["scheduled"] == 1
    assert info["fleet"]["running"] == 0


def test_workers_shows_what_a_worker_runs_now(env: Env, start_worker: StartWorker) -> None:
    worker = start_worker(concurrency=1)
    handle = jobs.Sleepy.dispatch(marker="cli-sleepy", seconds=3)
    wait_until(lambda: env.client.exists("cli-sleepy"), timeout=10, what="the job to start")

    def listed() -> list[dict[str, Any]]:
        out = run_cli("workers", "--json", url=env.url)
        assert out.returncode == 0, out.stderr
        return [w for w in json.loads(out.stdout) if w["name"] == worker.name]

    wait_until(
        lambda: [j["id"] for j in (listed() or [{"jobs": []}])[0]["jobs"]] == [handle.id],
        timeout=10,
        what="the worker to report its job",
    )
    [row] = listed()
    assert row["queues"] == ["default"]
    assert row["state"] == "running"
    [running] = row["jobs"]
    assert (running["id"], running["name"]) == (handle.id, "tests.support.jobs.Sleepy")
    assert isinstance(running["since"], float)


def test_job_shows_a_result_and_unknown_ids_fail(env: Env, start_worker: StartWorker) -> None:
    start_worker()
    handle = jobs.Add.dispatch(a=20, b=22)
    assert handle.result(timeout=15) == 42

    out = run_cli("job", handle.id, "--json", url=env.url)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert (shown["status"], shown["result"], shown["attempts"]) == ("succeeded", 42, 1)

    missing = run_cli("job", "no-such-job", "--json", url=env.url)
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["status"] == "unknown"
