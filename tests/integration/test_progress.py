"""Progress reported from a running job (``BaseJob.progress``), against a real
redis-server, real ``jobkit worker`` processes and a real ``jobkit serve``: 20,000
reports cost a handful of writes (counted by Redis's ``INFO commandstats``) and the last
one is what stays; it shows through the handle while the job runs, in ``jobkit job``
(and ``--json``), over HTTP and on the dashboard's job page, escaped; a retry starts with
none; a write under a stale lease is refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape

from jobkit import Status
from jobkit.backend import scripts
from jobkit.backend.calls import ProgressArgs
from jobkit.backend.store import Store
from jobkit.models import Progress
from jobkit.progress import MAX_MESSAGE
from jobkit.web.dashboard import mount
from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import jobs, progress_jobs
from tests.support.example_apps import Apps
from tests.support.redis_server import free_port

WORKER = ("-A", "tests.support.progress_jobs")


def _evalsha_calls(env: Env) -> int:
    stats = env.client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def _shown(handle: Any) -> Progress:
    progress = handle.refresh().progress
    assert progress is not None
    return progress


def test_twenty_thousand_reports_are_a_few_writes_and_the_last_one_stays(
    env: Env, start_worker: StartWorker
) -> None:
    start_worker(queues="progress", extra=WORKER)
    time.sleep(0.5)  # the worker's start-up calls are behind us
    before = _evalsha_calls(env)
    started = time.monotonic()
    handle = progress_jobs.Many.dispatch()
    writes_while_running = handle.result(timeout=60)
    evalsha = _evalsha_calls(env) - before
    elapsed = time.monotonic() - started

    # the first report at once, then at most one per 0.5 s while it ran (it ran well
    # under the time it took here), and the one owed at the end
    assert 1 <= writes_while_running <= 1 + elapsed / 0.5 + 1
    # every script the worker ran meanwhile (claims, the completion, beats) and those
    # writes: nothing near one per report
    assert evalsha < 30, evalsha
    shown = _shown(handle)
    calls = progress_jobs.CALLS
    assert (shown.fraction, shown.message) == (1.0, f"step {calls} of {calls}")
    assert shown.attempt == 1 and shown.at is not None
    assert handle.status is Status.SUCCEEDED


def _healthy(apps: Apps, proc: Any, base: str) -> None:
    def up() -> bool:
        assert proc.poll() is None, f"jobkit serve exited:\n{apps.log(proc)}"
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 30, what="jobkit serve to answer /healthz")


@pytest.fixture
def served(env: Env, tmp_path: Path) -> Iterator[str]:
    """A ``jobkit serve`` process on the test's Redis (loopback, no token): its base URL."""
    apps = Apps(tmp_path)
    port = free_port()
    argv = ["python", "-m", "jobkit", "serve", "-A", "tests.support.progress_jobs",
            "--port", str(port)]  # fmt: skip
    proc = apps.start("serve", argv, JOBKIT_REDIS_URL=env.url)
    base = f"http://127.0.0.1:{port}"
    try:
        _healthy(apps, proc, base)
        yield base
    finally:
        apps.stop()


def test_progress_shows_everywhere_while_the_job_runs(
    env: Env, start_worker: StartWorker, served: str, tmp_path: Path
) -> None:
    start_worker(queues="progress", extra=WORKER)
    go = tmp_path / "go"
    handle = progress_jobs.Held.dispatch(go=str(go))
    markup = progress_jobs.MARKUP

    # the handle, while it runs
    wait_until(lambda: handle.refresh().progress is not None, 15, what="the first report")
    shown = _shown(handle)
    assert handle.status is Status.RUNNING
    assert (shown.fraction, shown.message, shown.attempt) == (0.4, markup, 1)

    # jobkit job --json and GET /api/jobs/{id}: one shape
    out = run_cli("job", handle.id, "--json", url=env.url)
    assert out.returncode == 0, out.stderr
    doc = orjson.loads(out.stdout)
    assert doc["status"] == "running"
    assert doc["progress"] == {"fraction": 0.4, "message": markup,
                               "at": shown.at.isoformat() if shown.at else None,
                               "attempt": 1}  # fmt: skip
    api = httpx.get(f"{served}/api/jobs/{handle.id}", timeout=10)
    assert api.status_code == 200 and api.json()["progress"] == doc["progress"]
    assert set(api.json()) == set(doc) - {"history"}

    # jobkit job, for a person
    out = run_cli("job", handle.id, url=env.url)
    assert out.returncode == 0, out.stderr
    assert "40%" in out.stdout and "attempt 1" in out.stdout

    # the dashboard's job page, served by jobkit serve, and its live fragment's template
    page = httpx.get(f"{served}/jobs/{handle.id}", timeout=10)
    assert page.status_code == 200
    assert "Progress" in page.text and 'value="0.4"' in page.text and "40%" in page.text
    assert escape(markup) in page.text
    assert "<script>alert" not in page.text and "<b>resizing" not in page.text

    go.touch()
    assert handle.result(timeout=15) == {"ok": True}
    shown = _shown(handle)
    assert (shown.fraction, shown.message) == (1.0, "done")  # kept once it succeeded


def test_the_dashboard_page_mounted_in_an_app_escapes_the_message(
    env: Env, start_worker: StartWorker, tmp_path: Path
) -> None:
    start_worker(queues="progress", extra=WORKER)
    go = tmp_path / "go"
    long = "é<i>" * 100  # cut to MAX_MESSAGE characters
    handle = progress_jobs.Held.dispatch(go=str(go), message=long)
    wait_until(lambda: handle.refresh().progress is not None, 15, what="the first report")
    app = FastAPI()
    mount(app)
    page = TestClient(app).get(f"/jobs/{handle.id}")
    go.touch()
    assert page.status_code == 200
    message = _shown(handle).message
    assert message is not None and len(message) == MAX_MESSAGE and message.endswith("…")
    assert escape(message) in page.text and "<i>" not in page.text
    handle.result(timeout=15)


def test_a_retry_starts_with_no_progress(
    env: Env, start_worker: StartWorker, tmp_path: Path
) -> None:
    start_worker(queues="progress", extra=WORKER)
    go = tmp_path / "go"
    handle = progress_jobs.Again.dispatch(go=str(go))

    def second_attempt_running() -> bool:
        handle.refresh()
        return handle.status is Status.RUNNING and handle.attempts == 2

    wait_until(second_attempt_running, 15, what="the second attempt")
    assert env.client.hget(env.keys.job(handle.id), "progress") == "0.7"  # attempt 1's, kept
    assert handle.refresh().progress is None  # ... but not this attempt's: not shown
    go.touch()
    handle.result(timeout=15)
    shown = _shown(handle)
    # the value reported last, within the throttle's window, written as perform() ended
    assert (shown.fraction, shown.message, shown.attempt) == (0.9, "second attempt, nearly", 2)


def test_only_the_holder_of_the_lease_writes(env: Env) -> None:
    handle = jobs.Add.dispatch(a=1, b=2)
    store: Store = env.store
    [job] = store.leasing.claim("w", 30_000, 1, [["default"]])
    key = env.keys.job(handle.id)

    assert store.leasing.progress(job.id, "0", 0.5, "a zombie") is False
    assert env.client.hget(key, "progress") is None
    assert store.leasing.progress(job.id, job.token, 0.25, "") is True
    shown = _shown(handle)
    assert (shown.fraction, shown.message, shown.attempt) == (0.25, None, 1)

    assert store.leasing.complete(job.id, job.token, "3", 60)
    assert store.leasing.progress(job.id, job.token, 0.9, "after the end") is False
    assert _shown(handle).fraction == 0.25
    assert store.leasing.progress("default:nope", "1", 0.1, "") is False  # no such job


def test_a_job_that_never_reports_leaves_no_progress(env: Env, start_worker: StartWorker) -> None:
    start_worker(extra=WORKER)
    handle = jobs.Add.dispatch(a=1, b=2)
    assert handle.result(timeout=15) == 3
    fields = env.client.hkeys(env.keys.job(handle.id))
    assert not [f for f in fields if f.startswith("progress")]
    out = run_cli("job", handle.id, "--json", url=env.url)
    assert orjson.loads(out.stdout)["progress"] is None


def test_a_bound_function_task_reports_too(env: Env, start_worker: StartWorker) -> None:
    start_worker(queues="progress", extra=WORKER)
    handle = progress_jobs.halfway.delay(8)
    assert handle.result(timeout=15) == 8
    shown = _shown(handle)
    assert (shown.fraction, shown.message) == (0.5, "half of 8")


def test_a_report_sent_twice_has_the_effect_of_one(env: Env) -> None:
    handle = jobs.Add.dispatch(a=1, b=2)
    [job] = env.store.leasing.claim("w", 30_000, 1, [["default"]])
    args = ProgressArgs(job.id, job.token, "0.5", "twice")
    base = [env.keys.of_job(job.id).base]
    assert env.store.run_script("progress", base, args) == 1
    first = env.client.hgetall(env.keys.job(handle.id))
    assert env.store.run_script("progress", base, args) == 1  # its reply lost, sent again
    again = env.client.hgetall(env.keys.job(handle.id))
    assert {k: v for k, v in again.items() if k != "progress_at"} == {
        k: v for k, v in first.items() if k != "progress_at"
    }
    assert "progress" in scripts.REPEATABLE
