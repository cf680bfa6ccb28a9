"""Cancelling a job, from code, the CLI and HTTP: one that has not started is withdrawn,
a running one is stopped by its worker, and a refusal says why."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from jobkit import CancelOutcome, JobFailed, JobHandle, Status
from jobs_example.web import app
from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import jobs


def test_a_cancelled_job_never_runs(env: Env, start_worker: StartWorker) -> None:
    doomed = jobs.Record.dispatch(key="cancel-log", tag="doomed")
    later = jobs.Add.dispatch(a=1, b=1, delay=60)
    assert doomed.cancel() is CancelOutcome.CANCELLED
    assert later.cancel()  # true, as when cancel returned a bool
    assert doomed.status is Status.CANCELLED and later.status is Status.CANCELLED
    assert env.client.zcard(env.keys.queue("default")) == 0
    assert env.client.zcard(env.keys.shard("default").scheduled) == 0
    with pytest.raises(JobFailed):
        doomed.result(timeout=1)  # waiters are woken, not left hanging

    start_worker()
    assert jobs.Add.dispatch(a=2, b=2).result(timeout=15) == 4
    assert env.client.llen("cancel-log") == 0  # the cancelled job never ran
    assert doomed.cancel() is CancelOutcome.FINISHED  # nothing to withdraw
    assert not doomed.cancel()


def test_cancel_from_the_cli_and_over_http(env: Env, start_worker: StartWorker) -> None:
    first = jobs.Add.dispatch(a=1, b=1)
    out = run_cli("cancel", first.id, url=env.url)
    assert out.returncode == 0, out.stderr
    assert first.status is Status.CANCELLED

    http = TestClient(app)
    second = jobs.Add.dispatch(a=1, b=1)
    response = http.post(f"/jobs/{second.id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert http.post(f"/jobs/{second.id}/cancel").status_code == 409
    assert http.post("/jobs/no-such-id/cancel").status_code == 404

    start_worker()
    done = jobs.Add.dispatch(a=3, b=3)
    assert done.result(timeout=15) == 6
    assert run_cli("cancel", done.id, url=env.url).returncode == 1  # too late


def test_a_running_job_cancelled_is_stopped_not_retried_and_its_child_replaced(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker(concurrency=1)
    [child] = worker.child_pids()
    # it has retries left: a cancel must not use them
    handle = jobs.CountOnce.dispatch(marker="count-pid", counter="count", first_sleep=30)
    wait_until(lambda: env.client.get("count-pid"), what="the job to start")
    asked = time.monotonic()

    assert handle.cancel() is CancelOutcome.REQUESTED
    with pytest.raises(JobFailed) as failed:
        handle.result(timeout=10)
    assert failed.value.status == "cancelled"
    assert time.monotonic() - asked < 5  # about a second, not the job's 30
    wait_until(lambda: child not in worker.child_pids(), timeout=5, what="the child killed")
    who = jobs.WhoAmI.dispatch().result(timeout=20)  # the worker serves on
    assert who["ppid"] == worker.pid and who["pid"] != child

    time.sleep(1.5)  # long enough for a retry (0.1 s back-off) to have run
    rec = handle.record
    assert rec is not None and rec.status is Status.CANCELLED
    assert rec.attempts == 1 and rec.crashes == 0
    assert env.client.get("count") is None  # no later attempt ran
    assert env.client.zcard(env.keys.shard("default").running) == 0
    assert env.client.zcard(env.keys.shard("default").scheduled) == 0
    assert handle.cancel() is CancelOutcome.FINISHED
    log = worker.log_text()
    assert f"job tests.support.jobs.CountOnce {handle.id} cancelled: killing child {child}" in log
    assert "died unexpectedly" not in log


def test_a_running_job_cancelled_from_the_cli_and_over_http(
    env: Env, start_worker: StartWorker
) -> None:
    start_worker(concurrency=2)
    first = jobs.Sleepy.dispatch(marker="first", seconds=30)
    second = jobs.Sleepy.dispatch(marker="second", seconds=30)
    wait_until(lambda: env.client.get("first") and env.client.get("second"), what="both start")

    out = run_cli("cancel", first.id, url=env.url)
    assert out.returncode == 0, out.stderr
    assert "cancel requested" in out.stdout
    response = TestClient(app).post(f"/jobs/{second.id}/cancel")
    assert response.status_code == 202
    assert response.json()["cancel"] == "requested"
    for handle in (first, second):
        with pytest.raises(JobFailed):
            handle.result(timeout=10)
        assert handle.status is Status.CANCELLED
    assert jobs.Add.dispatch(a=2, b=3).result(timeout=20) == 5


def test_a_cancel_refused_says_why(env: Env, start_worker: StartWorker) -> None:
    start_worker()
    done = jobs.Add.dispatch(a=1, b=1)
    assert done.result(timeout=15) == 2
    unknown = JobHandle("default:no-such-job", env.store)

    assert done.cancel() is CancelOutcome.FINISHED
    assert unknown.cancel() is CancelOutcome.UNKNOWN
    assert not done.cancel() and not unknown.cancel()
    out = run_cli("cancel", done.id, "default:no-such-job", "nonsense", url=env.url)
    assert out.returncode == 1
    assert f"job {done.id}: refused: it has finished (succeeded)" in out.stdout
    assert "job default:no-such-job: refused: unknown job" in out.stdout
    assert "job nonsense: refused: unknown job" in out.stdout
    http = TestClient(app)
    refused = http.post(f"/jobs/{done.id}/cancel")
    assert refused.status_code == 409 and "has finished (succeeded)" in refused.json()["detail"]
    assert http.post("/jobs/default:no-such-job/cancel").status_code == 404
