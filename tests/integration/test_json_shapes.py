"""One JSON shape per view: each ``--json`` command prints what its HTTP route answers,
with the keys docs/json.md lists. Both read one Redis in one state here (a live worker,
jobs that succeeded, one dead, a paused queue, an audit entry), and their key trees are
compared; the keys are pinned, so a change of shape is a change of this file and of
docs/json.md."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import jobkit.http
from jobkit import Status
from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import jobs, sched_jobs

JOB = {"id", "name", "queue", "status", "params", "priority", "attempts", "crashes",
       "worker", "created_at", "started_at", "finished_at", "due_at", "result", "error",
       "reason", "source"}  # fmt: skip
QUEUE = {"queue", "ready", "running", "scheduled", "dead", "paused", "next_waited_s"}
OVERVIEW_QUEUE = {"queue", "ready", "running", "scheduled", "retrying", "dead", "paused",
                  "next_waited_s", "per_minute", "workers", "archive_lag", "archive_lost",
                  "totals"}  # fmt: skip
WORKER = {"name", "host", "pid", "queues", "tags", "concurrency", "state", "started_at",
          "last_seen", "rss_mb", "done", "failed", "counts", "jobs", "children"}  # fmt: skip
CHILD = {"pid", "started_at", "rss_mb", "jobs", "done", "failed"}
EVENT = {"at", "queue", "id", "class", "from", "to", "attempt", "worker", "duration_ms",
         "reason", "error_type", "error_message"}  # fmt: skip
SCHEDULE = {"schedule", "job", "queue", "expr", "tz", "misfire", "grace", "params", "paused",
            "paused_at", "next_runs", "last_run", "last_trigger", "last_fired_at", "last_job",
            "last_status", "last_reason", "last_error", "last_finished_at", "fired",
            "skipped", "runs_now"}  # fmt: skip
AUDIT = {"id", "at", "role", "action", "target", "count", "detail", "client"}
FLEET = {"ready", "running", "scheduled", "retrying", "dead", "workers", "totals",
         "per_minute", "archive_lag"}  # fmt: skip


def shape(value: Any) -> Any:
    """The key tree of ``value``: dicts by their keys, lists by their first item."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return "value"


@pytest.fixture
def fleet(env: Env, start_worker: StartWorker) -> Iterator[tuple[Env, TestClient, str, str]]:
    """A worker that ran two jobs (one dead), a paused queue, one audit entry."""
    worker = start_worker(extra=("-A", "tests.support.sched_jobs"))
    done = jobs.Add.dispatch(a=1, b=2)
    dead = jobs.Flaky.dispatch(times_key="shapes", fail_times=9)
    wait_until(lambda: done.refresh().status is Status.SUCCEEDED, timeout=15, what="a success")
    wait_until(lambda: dead.refresh().status is Status.DEAD, timeout=15, what="a dead job")
    jobs.Add.dispatch_params({"a": 1, "b": 1}, queue="held", delay=60)
    app = FastAPI()
    app.include_router(jobkit.http.router())
    http = TestClient(app)
    assert http.post("/queues/default/pause").status_code == 200
    assert http.post("/queues/default/resume").status_code == 200
    assert sched_jobs.TickOnce  # registered in this process too: GET /schedules lists it
    yield env, http, done.id, worker.name


def _cli(env: Env, *args: str) -> Any:
    out = run_cli(*args, "--json", url=env.url)
    return orjson.loads(out.stdout)


def _same(cli: Any, http: Any) -> Any:
    assert shape(cli) == shape(http), (cli, http)
    return cli


def test_each_json_command_prints_what_its_route_answers(
    fleet: tuple[Env, TestClient, str, str],
) -> None:
    env, http, job_id, worker = fleet
    time.sleep(0.3)  # the worker's next beat carries its done count

    info = _same(_cli(env, "info"), http.get("/stats").json())
    assert set(info) == {"queues", "lanes", "fleet", "problems"}
    assert set(info["queues"][0]) == OVERVIEW_QUEUE and set(info["fleet"]) == FLEET
    assert {q["queue"] for q in info["queues"]} == {"default", "held"}
    assert info["fleet"]["totals"]["succeeded"] >= 1

    queues = _same(_cli(env, "queues"), http.get("/queues").json())
    assert set(queues[0]) == QUEUE

    one = _same(_cli(env, "job", job_id), http.get(f"/jobs/{job_id}?history=1").json())
    single = JOB | {"progress", "waits_for", "waited_by"}  # the one-job view's own keys
    assert set(one) == single | {"history"} and one["id"] == job_id
    assert set(one["history"][0]) == EVENT
    assert set(http.get(f"/jobs/{job_id}").json()) == single  # without ?history=1
    unknown = http.get("/jobs/default:nope").json()["detail"]
    assert unknown == _cli(env, "job", "default:nope") == {"id": "default:nope",
                                                           "status": "unknown"}  # fmt: skip

    page = _same(_cli(env, "jobs"), http.get("/jobs").json())
    assert set(page) == {"jobs", "next_cursor", "problems"} and set(page["jobs"][0]) == JOB | {"at"}

    dead = _same(_cli(env, "dead", "list"), http.get("/dead").json())
    assert set(dead[0]) == JOB and dead[0]["status"] == "dead"

    workers = _same(_cli(env, "workers"), http.get("/workers").json())
    assert worker in {w["name"] for w in workers}
    assert set(workers[0]) == WORKER and set(workers[0]["children"][0]) == CHILD
    shown = _same(_cli(env, "workers", "show", worker), http.get(f"/workers/{worker}").json())
    assert set(shown) == {"name", "live", "jobs"} and set(shown["live"]) == WORKER
    assert set(shown["jobs"][0]) == EVENT

    cron = _cli(env, "schedules", "-A", "tests.support.sched_jobs")
    keys = [r["schedule"] for r in cron]
    # this process may have registered other classes' schedules too: those of -A here
    rows = [r for r in http.get("/schedules").json() if r["schedule"] in keys]
    assert keys and [r["schedule"] for r in rows] == keys
    assert shape(cron) == shape(rows) and set(cron[0]) == SCHEDULE

    audit = _same(_cli(env, "audit"), http.get("/audit").json())
    assert set(audit) == {"entries", "next_before"} and set(audit["entries"][0]) == AUDIT
    assert [e["action"] for e in audit["entries"]] == ["resume queue", "pause queue"]


def test_writes_answer_with_the_job_as_it_is_now(fleet: tuple[Env, TestClient, str, str]) -> None:
    _, http, _, _ = fleet
    made = http.post("/jobs", json={"name": jobs.Add.name, "params": {"a": 1, "b": 1}})
    named = http.post(f"/jobs/{jobs.Add.name}", json={"a": 2, "b": 2})
    assert set(made.json()) == set(named.json()) == {"id", "status"}
    [dead] = http.get("/dead").json()
    retried = http.post(f"/jobs/{dead['id']}/retry").json()
    assert set(retried) == JOB and retried["id"] == dead["id"]
