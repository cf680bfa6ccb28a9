"""The Phoenix task runner's app end to end: the API served by uvicorn, a real ``jobkit
worker`` per queue of its table and a real redis-server, each a process. ``POST
/api/jobs`` creates a job on a queue of the table, ``GET /api/jobs`` lists them through
jobkit's listing, bad payloads are 422s, and the launcher starts each queue's worker with
the table's count.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from jobkit.backend.keys import Keys
from jobs_example.tasks_jobs import QUEUES
from tests.conftest import PREFIX
from tests.support.example_apps import (
    Apps,
    curl,
    doc_curls,
    documented_launch,
    poll,
    redis_url,
    stop_launcher,
)
from tests.support.redis_server import RedisServer, free_port

DB, LAUNCHER_DB = 5, 6
SECTION = "Phoenix task runner"
TERMINAL = {"succeeded", "dead", "cancelled"}
VIEW_KEYS = {
    "id", "queue_id", "payload", "status", "attempts", "result", "error", "inserted_at",
    "updated_at",
}  # fmt: skip


def fibonacci(n: int) -> int:
    """The n-th Fibonacci number, to check the job's."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


@dataclass
class Service:
    """The API and one worker per queue of the table on one Redis database."""

    apps: Apps
    base: str
    client: redis.Redis

    def create(self, queue_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/jobs`` (201 expected); the created job."""
        body = {"job": {"queue_id": queue_id, "payload": payload}}
        response = httpx.post(f"{self.base}/api/jobs", json=body, timeout=10)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def finished(self, job_id: str) -> dict[str, Any]:
        """Poll ``GET /api/jobs/{id}`` until the job has ended."""

        def terminal() -> dict[str, Any] | None:
            view: dict[str, Any] = httpx.get(f"{self.base}/api/jobs/{job_id}").json()["data"]
            return view if view["status"] in TERMINAL else None

        result: dict[str, Any] = poll(terminal, self.apps, what=f"job {job_id} to end")
        return result


@pytest.fixture(scope="module")
def service(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The app and its jobkit processes, shared by the module's tests; killed at its end."""
    url = redis_url(redis_server, DB)
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    apps = Apps(tmp_path_factory.mktemp("tasks"))
    port = free_port()
    try:
        api = apps.start(
            "api",
            ["python", "-m", "uvicorn", "jobs_example.tasks:app", "--port", str(port)],
            JOBKIT_REDIS_URL=url,
        )
        # one child per queue is enough here: the launcher's test runs the table's counts
        for spec in QUEUES:
            command = [
                sys.executable, "-m", "jobkit", "worker", "-A", "jobs_example",
                "-q", spec.id, "-c", "1", "--name", f"{spec.id}-1",
            ]  # fmt: skip
            apps.start(f"{spec.id}-worker", command, JOBKIT_REDIS_URL=url)
        base = f"http://127.0.0.1:{port}"
        apps.wait_http(api, f"{base}/docs")
        workers = Keys(PREFIX).workers
        poll(lambda: client.zcard(workers) == len(QUEUES), apps, what="the workers")
        yield Service(apps, base, client)
    finally:
        apps.stop()
        client.close()


def test_a_job_is_created_run_by_its_queue_and_listed(service: Service) -> None:
    """``POST /api/jobs`` answers 201 with the job; its queue's worker runs it; ``GET
    /api/jobs`` lists it, newest first, with its result."""
    created = service.create("fibonacci", {"n": 303})
    assert set(created) == VIEW_KEYS
    assert created["queue_id"] == "fibonacci" and created["payload"] == {"n": 303}
    assert created["id"].startswith("fibonacci:")
    done = service.finished(created["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == {"n": 303, "fibonacci": str(fibonacci(303))}
    slept = service.finished(service.create("sleeper", {"duration": 150})["id"])
    assert slept["result"] == {"slept_ms": 150} and slept["queue_id"] == "sleeper"
    listed = httpx.get(f"{service.base}/api/jobs").json()
    ids = [job["id"] for job in listed["data"]]
    assert ids[:2] == [slept["id"], created["id"]], ids
    assert listed["data"][1]["result"] == done["result"]


def test_the_listing_goes_page_by_page(service: Service) -> None:
    """``?limit=`` pages and ``next_cursor`` goes on: every job once."""
    made = {service.create("sleeper", {"duration": 0})["id"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{service.base}/api/jobs", params=params).json()
        assert len(page["data"]) <= 2
        seen += [job["id"] for job in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert made <= set(seen) and len(seen) == len(set(seen))


BAD = [
    ({"job": {"queue_id": "nope", "payload": {"n": 1}}}, "queue_id"),
    ({"job": {"queue_id": "fibonacci", "payload": {"n": -1}}}, "payload.n"),
    ({"job": {"queue_id": "fibonacci", "payload": {"n": 10_001}}}, "payload.n"),
    ({"job": {"queue_id": "fibonacci", "payload": {"n": "many"}}}, "payload.n"),
    ({"job": {"queue_id": "fibonacci", "payload": {"n": 1, "x": 2}}}, "payload.x"),
    ({"job": {"queue_id": "sleeper", "payload": {}}}, "payload.duration"),
    ({"job": {"queue_id": "sleeper", "payload": "soon"}}, "job.payload"),
    ({"job": {"queue_id": "sleeper"}}, "job.payload"),
    ({"job": {"payload": {"duration": 1}}}, "job.queue_id"),
    ({"queue_id": "fibonacci", "payload": {"n": 1}}, "job"),
    ({"job": {"queue_id": "fibonacci", "payload": {"n": 1}}, "extra": 1}, "extra"),
]
RAW = [b"", b"not json", b"[1]", b'{"job": {"queue_id": "sleeper", "payload": {"d": NaN}}}']


def test_bad_payloads_are_422_json_and_write_nothing(service: Service) -> None:
    """An unknown ``queue_id`` or a payload its queue's job refuses is a 422 with the
    errors by field, as a changeset's; nothing is written. Unknown jobs and routes are
    404s, and bad listing queries 422s, all JSON."""
    patterns = [Keys(PREFIX).shard(spec.id).job("*") for spec in QUEUES]

    def jobs() -> set[str]:
        return {k for p in patterns for k in service.client.scan_iter(match=p, count=1000)}

    before = jobs()
    url = f"{service.base}/api/jobs"
    for body, field in BAD:
        response = httpx.post(url, json=body, timeout=10)
        assert response.status_code == 422, (body, response.text)
        assert field in response.json()["errors"], (body, response.json())
    for raw in RAW:
        response = httpx.post(url, content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 422 and response.json()["errors"], raw
    big = {"job": {"queue_id": "sleeper", "payload": {"duration": 1, "x": "y" * 5_000_000}}}
    assert httpx.post(url, json=big, timeout=30).status_code == 422  # x is no field
    assert jobs() == before
    for path, status in [
        ("/api/jobs/nope", 404),
        ("/api/jobs/fibonacci:0123456789abcdef", 404),
        ("/api/jobs/other:0123", 404),
        ("/nowhere", 404),
        ("/api/jobs?limit=0", 422),
        ("/api/jobs?limit=many", 422),
        ("/api/jobs?cursor=garbage", 422),
    ]:
        response = httpx.get(f"{service.base}{path}")
        assert response.status_code == status, (path, response.text)
        assert response.json()["errors"], path
    wrong = httpx.delete(url)
    assert wrong.status_code == 405 and wrong.json()["errors"]


def test_the_documented_command_starts_each_queue_with_its_workers(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """``python -m jobs_example.tasks`` as docs/examples.md writes it starts the API and,
    for each entry of the table, ``jobkit worker -q <id> -c <workers>``; the document's
    curl lines work as written; SIGTERM stops it all."""
    url = redis_url(redis_server, LAUNCHER_DB)
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    port = free_port()
    command, env = documented_launch(SECTION, port, JOBKIT_REDIS_URL=url)
    assert command[:3] == ["python", "-m", "jobs_example.tasks"]
    apps = Apps(tmp_path)
    try:
        launcher = apps.start("launcher", command, **env)
        apps.wait_http(launcher, f"http://127.0.0.1:{port}/docs")
        keys = Keys(PREFIX)

        def registered() -> dict[str, int] | None:
            found: dict[str, int] = {}
            for name in client.zrange(keys.workers, 0, -1):
                worker = client.hgetall(keys.worker(str(name)))
                found[str(worker.get("queues", ""))] = int(worker.get("concurrency", 0))
            return found if len(found) == len(QUEUES) else None

        workers = poll(registered, apps, what="a worker per queue")
        assert workers == {spec.id: spec.workers for spec in QUEUES}
        listing, create = doc_curls(SECTION)
        assert curl(listing, 4000, port).json() == {"data": [], "next_cursor": None}
        created = curl(create, 4000, port)
        assert created.status_code == 201, created.text
        job_id = created.json()["data"]["id"]

        def done() -> dict[str, Any] | None:
            jobs = curl(listing, 4000, port).json()["data"]
            return next((j for j in jobs if j["id"] == job_id and j["status"] in TERMINAL), None)

        job = poll(done, apps, what="the documented job to end")
        assert job["result"] == {"n": 303, "fibonacci": str(fibonacci(303))}
        stop_launcher(apps, launcher)
    finally:
        apps.stop()
        client.close()
