"""The Celery-style brief's app end to end: Flask's server, a real ``jobkit worker`` and
a real redis-server, each a process. ``background_task.delay`` and ``apply_async`` with
a countdown, ``/add-task`` and ``/task-status/<task_id>`` in the brief's words, and
every error a JSON answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from jobkit.backend.keys import Keys
from jobs_example.celery_style.tasks import QUEUE
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

DB, LAUNCHER_DB = 5, 6
SECTION = "Celery-style brief"
ENDED = {"Completed", "Failed"}


@dataclass
class Service:
    apps: Apps
    base: str
    client: redis.Redis

    def add(self, body: object) -> httpx.Response:
        return httpx.post(f"{self.base}/add-task", json=body, timeout=10)

    def status(self, task_id: str) -> dict[str, Any]:
        view: dict[str, Any] = httpx.get(f"{self.base}/task-status/{task_id}", timeout=10).json()
        return view

    def ended(self, task_id: str, timeout: float = 30) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            view = self.status(task_id)
            return view if view["status"] in ENDED else None

        view: dict[str, Any] = poll(done, self.apps, timeout=timeout, what=f"task {task_id}")
        return view


@pytest.fixture(scope="module")
def service(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    worker = ["-q", QUEUE, "-c", "2", "--name", "celery-1"]
    with flask_app_with_worker(
        redis_server, DB, tmp_path_factory.mktemp("celery-style"),
        "jobs_example.celery_style.app:api", worker,
        BROKER_URL=redis_url(redis_server, DB),
    ) as up:  # fmt: skip
        yield Service(up.apps, up.base, up.client)


def test_delay_is_pending_then_completed_with_its_result(service: Service) -> None:
    created = service.add({"args": [2, 3]})
    assert created.status_code == 202, created.text
    answer = created.json()
    assert answer["status"] in {"Pending", "Running"} and answer["task_id"].startswith(QUEUE)
    seen = {service.status(answer["task_id"])["status"]}
    view = service.ended(answer["task_id"])
    assert view["status"] == "Completed" and view["result"] == 5, view
    assert seen <= {"Pending", "Running", "Completed"}


def test_a_countdown_waits_before_it_runs(service: Service) -> None:
    sent = time.time()
    created = service.add({"args": [4, 5], "countdown": 2})
    assert created.status_code == 202, created.text
    task_id = created.json()["task_id"]
    assert service.status(task_id)["status"] == "Pending"
    view = service.ended(task_id)
    assert view["status"] == "Completed" and view["result"] == 9
    record = service.client.hgetall(Keys(PREFIX).shard(QUEUE).job(task_id))
    assert float(record["started_at"]) / 1000 >= sent + 2 - 0.1  # not before its countdown


BAD = [
    {"args": [1]},  # one argument short
    {"args": [1, 2, 3, 4]},
    {"args": ["a", "b"]},
    {"args": [1, 2], "countdown": "soon"},
    {"args": [1, 2], "countdown": -5},
    {"args": [1, 2], "queue": "other"},
    {"args": "1, 2"},
    [1, 2],
]


def test_bad_input_is_a_json_422_and_queues_nothing(service: Service) -> None:
    pattern = Keys(PREFIX).shard(QUEUE).job("*")
    before = set(service.client.scan_iter(match=pattern, count=1000))
    for body in BAD:
        response = service.add(body)
        assert response.status_code == 422, (body, response.status_code, response.text)
        assert {"error", "detail"} <= set(response.json())
    assert set(service.client.scan_iter(match=pattern, count=1000)) == before
    for path, status in [(f"/task-status/{QUEUE}:nope", 404), ("/task-status/x", 404),
                         ("/nowhere", 404)]:  # fmt: skip
        response = httpx.get(f"{service.base}{path}", timeout=10)
        assert response.status_code == status and response.json()["error"], response.text


def test_the_documented_command_serves_the_documented_curl_lines(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    url = redis_url(redis_server, LAUNCHER_DB)
    redis.Redis.from_url(url).flushdb()
    port = free_port()
    command, env = documented_launch(SECTION, port, JOBKIT_REDIS_URL=url)
    assert command[:3] == ["python", "-m", "jobs_example.celery_style"]
    apps = Apps(tmp_path)
    try:
        launcher = apps.start("launcher", command, **env)
        apps.wait_http(launcher, f"http://127.0.0.1:{port}/nowhere")
        now, later, get = doc_curls(SECTION)
        created = curl(now, 5000, port)
        assert created.status_code == 202, created.text
        delayed = curl(later, 5000, port).json()["task_id"]
        task_id = created.json()["task_id"]

        def done() -> dict[str, Any] | None:
            view: dict[str, Any] = curl(get, 5000, port, task_id=task_id).json()
            return view if view["status"] in ENDED else None

        view = poll(done, apps, what="the documented task to end")
        assert view["status"] == "Completed" and view["result"] == 5, view
        assert curl(get, 5000, port, task_id=delayed).json()["status"] == "Pending"
        stop_launcher(apps, launcher, ctrl_c=True)
    finally:
        apps.stop()
