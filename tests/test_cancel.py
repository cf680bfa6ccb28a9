"""Cancelling a job that has not started, from code, the CLI and HTTP."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from jobkit import CancelOutcome, JobFailed, Status
from jobs_example.web import app
from tests import jobs
from tests.conftest import Env, StartWorker, run_cli


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
