"""The HTTP surface: POST a job, GET its status, as the example web app serves it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from jobkit import Status
from jobs_example.web import app
from tests.conftest import Env, StartWorker, wait_until


def test_post_a_job_then_poll_it_to_its_result(env: Env, start_worker: StartWorker) -> None:
    start_worker(extra=("-A", "jobs_example.web"))
    http = TestClient(app)

    created = http.post("/jobs", json={"payload": {"x": 1}})
    assert created.status_code == 202
    job_id = created.json()["job_id"]
    # an idle worker may already have picked it up: status is read live
    assert created.json()["status"] in {Status.QUEUED.value, Status.RUNNING.value}

    def done() -> bool:
        return http.get(f"/jobs/{job_id}").json()["status"] == Status.SUCCEEDED.value

    wait_until(done, timeout=15, what="the job to succeed")
    body = http.get(f"/jobs/{job_id}").json()
    assert body["result"] == {"x": 1}
    assert body["attempts"] == 1


def test_invalid_params_are_422_and_write_nothing(env: Env) -> None:
    http = TestClient(app)
    before = env.client.dbsize()
    response = http.post("/jobs/jobs_example.Add", json={"a": "not a number", "b": 2})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["a"]
    assert env.client.dbsize() == before


def test_unknown_ids_and_names_are_404(env: Env) -> None:
    http = TestClient(app)
    missing = http.get("/jobs/no-such-id")
    assert missing.status_code == 404
    assert missing.json()["detail"]["status"] == Status.UNKNOWN.value
    assert http.post("/jobs/no.such.Job", json={}).status_code == 404


def test_named_dispatch_dead_letters_and_retry_over_http(env: Env) -> None:
    http = TestClient(app)
    created = http.post("/jobs/jobs_example.Add", json={"a": 1, "b": 2}, params={"delay": 60})
    assert created.status_code == 202
    assert created.json()["status"] == Status.SCHEDULED.value
    assert http.get("/stats").json()["scheduled"] == 1
    assert http.get("/dead").json() == []
    assert http.post(f"/dead/{created.json()['job_id']}/retry").status_code == 409
