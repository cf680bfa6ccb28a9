"""The Flask brief's app end to end: Flask's own server, a real ``jobkit worker`` tagged
``gpu`` and a real redis-server, each a process. ``POST /task/`` answers ``{"job",
"status"}`` at once, ``GET /task/<id>`` polls the job, and every error is a JSON answer,
never Flask's HTML page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from jobkit.backend.keys import Keys
from jobs_example.flask_jobs import QUEUE
from tests.conftest import PREFIX
from tests.support.example_apps import (
    Apps,
    curl,
    doc_curls,
    documented_launch,
    flask_app_with_worker,
    poll,
    redis_url,
    stop_launcher,
)
from tests.support.redis_server import RedisServer, free_port

DB, LAUNCHER_DB = 3, 4
SECTION = "Flask brief"
TERMINAL = {"succeeded", "dead", "cancelled"}
JSON = {"Content-Type": "application/json"}


@dataclass
class Service:
    """Flask's server and the gpu worker on one Redis database."""

    apps: Apps
    base: str
    client: redis.Redis

    def finished(self, job: str) -> dict[str, Any]:
        """Poll ``GET /task/<job>`` until the job has ended; its last answer."""

        def terminal() -> dict[str, Any] | None:
            view: dict[str, Any] = httpx.get(f"{self.base}/task/{job}", timeout=10).json()
            return view if view["status"] in TERMINAL else None

        result: dict[str, Any] = poll(terminal, self.apps, what=f"job {job} to end")
        return result


@pytest.fixture(scope="module")
def service(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The app and its jobkit processes, shared by the module's tests; killed at its end."""
    worker = ["-q", QUEUE, "--tags", "gpu", "--name", "gpu-1"]
    with flask_app_with_worker(
        redis_server, DB, tmp_path_factory.mktemp("flask"), "jobs_example.flask_app", worker
    ) as up:
        yield Service(up.apps, up.base, up.client)


def test_a_task_answers_at_once_and_its_job_is_polled_to_its_result(service: Service) -> None:
    """``POST /task/`` returns the job's id and status instead of running it; the id polls
    the job, run by the worker tagged gpu, until its result is there."""
    created = httpx.post(
        f"{service.base}/task/",
        json={"model": "churn", "epochs": 2, "seconds_per_epoch": 0.05},
        timeout=10,
    )
    assert created.status_code == 200, created.text
    answer = created.json()
    # the status as the job is read back: a worker may have taken it already
    assert set(answer) == {"job", "status"} and answer["status"] in {"queued", "running"}
    assert answer["job"].startswith(f"{QUEUE}:")
    view = service.finished(answer["job"])
    assert view["status"] == "succeeded", view
    assert view["result"] == {"model": "churn", "epochs": 2, "loss": 0.36}
    assert view["job"] == answer["job"] and view["attempts"] == 1


BIG = b'{"model": "' + b"x" * (9 * 1024 * 1024) + b'"}'
BAD_POSTS: list[tuple[bytes, dict[str, str], int]] = [
    (b'{"model": "churn"}', {"Content-Type": "text/plain"}, 415),
    (b'{"model": "churn"}', {}, 415),
    (b"", JSON, 422),
    (b"not json", JSON, 422),
    (b"[1, 2]", JSON, 422),
    (b'{"epochs": NaN}', JSON, 422),
    (b'{"epochs": 0}', JSON, 422),
    (b'{"epochs": "many"}', JSON, 422),
    (b'{"model": "<script>alert(1)</script>"}', JSON, 422),
    (b'{"model": "churn", "queue": "other"}', JSON, 422),
    (b'{"deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", JSON, 422),
    (BIG, JSON, 413),
]


def test_bad_input_is_a_json_4xx_never_an_html_page(service: Service) -> None:
    """Every refusal, Flask's own included (415, 413, 404, 405), is JSON; none is a 500
    and none writes a job."""
    pattern = Keys(PREFIX).shard(QUEUE).job("*")
    before = set(service.client.scan_iter(match=pattern, count=1000))
    for body, headers, status in BAD_POSTS:
        response = httpx.post(f"{service.base}/task/", content=body, headers=headers, timeout=30)
        assert response.status_code == status, (body[:60], response.status_code, response.text)
        assert response.headers["content-type"] == "application/json", body[:60]
        assert {"error", "detail"} <= set(response.json())
        assert "<script>" not in response.text
    assert set(service.client.scan_iter(match=pattern, count=1000)) == before
    for method, path, status in [
        ("GET", "/task/unknown", 404),
        ("GET", f"/task/{QUEUE}:0123456789abcdef", 404),
        ("GET", "/nowhere", 404),
        ("PUT", "/task/", 405),
        ("GET", "/task/", 405),
    ]:
        response = httpx.request(method, f"{service.base}{path}", timeout=10)
        assert response.status_code == status, (method, path, response.text)
        assert response.headers["content-type"] == "application/json"
        json.loads(response.text)


def test_the_documented_command_serves_the_documented_curl_lines(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """``python -m jobs_example.flask_app`` as docs/examples.md writes it starts Flask
    and the gpu worker; its curl lines work as written; a Ctrl-C stops it all."""
    url = redis_url(redis_server, LAUNCHER_DB)
    redis.Redis.from_url(url).flushdb()
    port = free_port()
    command, env = documented_launch(SECTION, port, JOBKIT_REDIS_URL=url)
    assert command[:3] == ["python", "-m", "jobs_example.flask_app"]
    apps = Apps(tmp_path)
    try:
        launcher = apps.start("launcher", command, **env)
        apps.wait_http(launcher, f"http://127.0.0.1:{port}/nowhere")
        post, get = doc_curls(SECTION)
        created = curl(post, 5000, port)
        assert created.status_code == 200, created.text
        job = created.json()["job"]

        def done() -> dict[str, Any] | None:
            view: dict[str, Any] = curl(get, 5000, port, job=job).json()
            return view if view["status"] in TERMINAL else None

        view = poll(done, apps, what="the documented job to end")
        assert view["status"] == "succeeded" and view["result"]["model"] == "churn", view
        stop_launcher(apps, launcher, ctrl_c=True)
    finally:
        apps.stop()
