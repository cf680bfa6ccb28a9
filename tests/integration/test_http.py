"""The HTTP surface: POST a job, GET its status, as the example web app serves it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import jobkit.http
from jobkit import Status
from jobs_example.web import app
from tests.conftest import Env, StartWorker, wait_until
from tests.support import jobs


def test_post_a_job_then_poll_it_to_its_result(env: Env, start_worker: StartWorker) -> None:
    # the documented worker command's module and queues (README, Dockerfile, compose)
    start_worker(queues="high,default,low", extra=("-A", "jobs_example"))
    http = TestClient(app)

    created = http.post("/jobs", json={"payload": {"x": 1}})
    assert created.status_code == 202
    job_id = created.json()["id"]
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
    assert http.get("/stats").json()["fleet"]["scheduled"] == 1
    assert http.get("/dead").json() == []
    assert http.post(f"/dead/{created.json()['id']}/retry").status_code == 409


# -- bad input is 4xx, never 500, and writes nothing -----------------------------------------


@pytest.fixture
def api(env: Env) -> TestClient:
    """The jobkit router over some of the test suite's jobs, with no server error hidden:
    a 500 comes back as a 500."""
    test_app = FastAPI()
    test_app.include_router(jobkit.http.router([jobs.Add, jobs.Label, jobs.Loose]))
    return TestClient(test_app, raise_server_exceptions=False)


def _post(api: TestClient, path: str, body: bytes, **query: Any) -> Any:
    return api.post(path, content=body, params=query, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    "body",
    [b"[1, 2]", b'"text"', b"null", b"42", b"[NaN]", b'{"a": NaN, "b": 1}', b'{"a": Infinity}',
     b"not json", b"{", b'{"a": ' + b"1" * 5000 + b"}", b"[" * 100_000 + b"]" * 100_000],
)  # fmt: skip
def test_a_body_that_is_not_a_json_object_is_422(env: Env, api: TestClient, body: bytes) -> None:
    before = env.client.dbsize()
    response = _post(api, "/jobs/tests.support.jobs.Add", body)
    assert response.status_code == 422, response.text
    assert env.client.dbsize() == before


@pytest.mark.parametrize(
    ("query", "word"),
    [
        ({"priority": 1001}, "priority"),
        ({"priority": -5000}, "priority"),
        ({"priority": 1.5}, "priority"),
        ({"delay": -1}, "delay"),
        ({"delay": "inf"}, "delay"),
        ({"delay": "nan"}, "delay"),
        ({"delay": 1e30}, "delay"),
        ({"job_id": "has space"}, "job_id"),
        ({"job_id": "a" * 129}, "job_id"),
        ({"job_id": "€"}, "job_id"),
        ({"queue": "zz|gpu"}, "queue"),
        ({"queue": "q" * 10_000}, "queue"),
        ({"queue": "new\nline"}, "queue"),
    ],
)
def test_an_option_out_of_range_is_422(
    env: Env, api: TestClient, query: dict[str, Any], word: str
) -> None:
    before = env.client.dbsize()
    response = _post(api, "/jobs/tests.support.jobs.Add", b'{"a": 1, "b": 2}', **query)
    assert response.status_code == 422, response.text
    assert word in response.text
    assert env.client.dbsize() == before


@pytest.mark.parametrize("option", ["delay", "queue", "priority", "job_id", "store", "at"])
def test_params_named_like_options_are_422_not_500(env: Env, api: TestClient, option: str) -> None:
    before = env.client.dbsize()
    response = api.post("/jobs/tests.support.jobs.Label", json={"label": "x", option: 5})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == [option]
    assert "a dispatch option, not a param" in error["msg"]
    assert env.client.dbsize() == before


def test_params_that_keep_extra_keys_may_be_named_like_options(env: Env, api: TestClient) -> None:
    response = api.post("/jobs/tests.support.jobs.Loose", json={"delay": 60, "queue": "x"})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == Status.QUEUED.value  # the param did not delay it
    assert api.get(f"/jobs/{response.json()['id']}").json()["params"] == {
        "label": "",
        "delay": 60,
        "queue": "x",
    }


def test_unknown_params_and_jobs_are_4xx(env: Env, api: TestClient) -> None:
    response = api.post("/jobs/tests.support.jobs.Label", json={"label": "x", "dealy": 5})
    assert response.status_code == 422
    assert "did you mean the option 'delay'?" in response.json()["detail"][0]["msg"]
    assert api.post("/jobs/tests.support.jobs.Nothing", json={}).status_code == 404
    hang = api.post("/jobs/tests.support.jobs.Hang", json={})
    assert hang.status_code == 404  # not on the router
    assert api.post("/jobs/bad%0Aname", json={}).status_code == 404


def test_params_the_worker_could_not_read_are_422(env: Env, api: TestClient) -> None:
    deep: Any = 1
    for _ in range(220):
        deep = [deep]
    response = api.post("/jobs/tests.support.jobs.Loose", json={"deep": deep})
    assert response.status_code == 422
    assert "would not be readable by a worker" in response.text
    assert env.client.dbsize() == 0


def test_oversized_params_are_413(env: Env, api: TestClient) -> None:
    response = api.post("/jobs/tests.support.jobs.Label", json={"label": "x" * (5 * 1024 * 1024)})
    assert response.status_code == 413
    assert "JOBKIT_MAX_PAYLOAD" in response.json()["detail"]
    assert env.client.dbsize() == 0


def test_a_good_request_with_every_option(env: Env, api: TestClient) -> None:
    response = _post(
        api, "/jobs/tests.support.jobs.Add", b'{"a": 1, "b": 2}',
        delay=30, queue="other", priority=5, job_id="order-42:v1",
    )  # fmt: skip
    assert response.status_code == 202, response.text
    assert response.json() == {"id": "other:order-42:v1", "status": Status.SCHEDULED.value}
    view = api.get("/jobs/other:order-42:v1").json()
    assert (view["queue"], view["priority"], view["params"]) == ("other", 5, {"a": 1, "b": 2})
    empty = _post(api, "/jobs/tests.support.jobs.Loose", b"")  # no body: no params
    assert empty.status_code == 202


@pytest.mark.parametrize(
    "body",
    [b'{"payload": [NaN]}', b'{"payload": {"x": NaN}}', b"[1]", b'{"payload": {}, "dealy": 1}',
     b'{"payload": {"x": 1}, "seconds": -1}', b""],
)  # fmt: skip
def test_the_example_post_jobs_refuses_bad_input_with_422(env: Env, body: bytes) -> None:
    http = TestClient(app, raise_server_exceptions=False)
    response = http.post("/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert env.client.dbsize() == 0
