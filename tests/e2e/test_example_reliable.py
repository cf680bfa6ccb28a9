"""The reliable-queue exercise's tests, written from its document, end to end against a
running server: the API served by uvicorn, a real ``jobkit worker`` and a real
redis-server, each a process.

The document's two mandatory tests come first: the job lifecycle, and a job inserted
straight into Redis in a stuck processing state, requeued once. Then what its
reliability rules say besides: at most 2 attempts in all, no job lost when a worker is
killed mid-job, bad input a 4xx, and the one documented command.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from jobkit.backend.keys import Keys
from jobkit.backend.keys import job_id as jobkit_id
from jobs_example.reliable_jobs import QUEUE, ProcessPayload
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

T = 2.0  # the lease, the document's T, short for the tests
HEARTBEAT = 0.4
WORK = 1.5  # seconds each job of the API works
STATUSES = {"queued", "processing", "done", "failed"}
TERMINAL = {"done", "failed"}
DB, LAUNCHER_DB = 1, 2
SECTION = "Reliable queue"


@dataclass
class Service:
    """The API and its worker on one Redis database."""

    apps: Apps
    port: int
    url: str
    client: redis.Redis
    workers: list[Any] = field(default_factory=list)

    def get(self, job_id: str) -> httpx.Response:
        """``GET /jobs/{job_id}``."""
        return httpx.get(f"http://127.0.0.1:{self.port}/jobs/{job_id}", timeout=10)

    def post(self, content: bytes | str) -> httpx.Response:
        """``POST /jobs`` with ``content`` as the JSON body."""
        headers = {"Content-Type": "application/json"}
        return httpx.post(
            f"http://127.0.0.1:{self.port}/jobs", content=content, headers=headers, timeout=30
        )

    def start_worker(self) -> None:
        """The documented worker command, with the tests' T."""
        name = f"reliable-{len(self.workers) + 1}"
        command = [
            sys.executable, "-m", "jobkit", "worker", "-A", "jobs_example", "-q", QUEUE,
            "-c", "2", "--lease", str(T), "--heartbeat", str(HEARTBEAT), "--name", name,
        ]  # fmt: skip
        proc = self.apps.start(name, command, JOBKIT_REDIS_URL=self.url, JOBKIT_MAX_CRASHES="2")
        self.workers.append(proc)
        workers = Keys(PREFIX).workers
        poll(lambda: self.client.zscore(workers, name), self.apps, what=f"{name} to register")

    def finished(self, job_id: str, timeout: float = 30) -> dict[str, Any]:
        """Poll ``GET /jobs/{id}`` until the job is terminal; every status seen must be
        one of the document's."""

        def terminal() -> dict[str, Any] | None:
            view: dict[str, Any] = self.get(job_id).json()
            assert view["status"] in STATUSES, view
            return view if view["status"] in TERMINAL else None

        result: dict[str, Any] = poll(terminal, self.apps, timeout, f"job {job_id} to end")
        return result


@pytest.fixture(scope="module")
def service(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The app and its jobkit processes, shared by the module's tests; killed at its end."""
    url = redis_url(redis_server, DB)
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    apps = Apps(tmp_path_factory.mktemp("reliable"))
    port = free_port()
    try:
        api = apps.start(
            "api",
            ["python", "-m", "uvicorn", "jobs_example.reliable:app", "--port", str(port)],
            JOBKIT_REDIS_URL=url,
            RELIABLE_WORK_SECONDS=str(WORK),
        )
        svc = Service(apps, port, url, client)
        svc.start_worker()
        apps.wait_http(api, f"http://127.0.0.1:{port}/docs")
        yield svc
    finally:
        apps.stop()
        client.close()


def insert_stuck(client: redis.Redis, payload: dict[str, Any], attempts: int = 1) -> str:
    """Write a job into Redis as a worker that died mid-job leaves it (what claim.lua and
    mark.lua write): status running, ``attempts`` counted, its lease token marked
    started, and its entry in ``running`` scored by a lease deadline already past, so
    no worker can take it before it is stuck. Returns its UUID."""
    key = str(uuid.uuid4())
    job = ProcessPayload.new_job({"payload": payload, "seconds": 0.2}, job_id=key)
    shard = Keys(PREFIX).shard(QUEUE)
    seconds, micros = client.time()
    now = seconds * 1000 + micros // 1000  # Redis's clock: the scripts' only clock
    token = str(attempts)
    params = job.params_json
    with client.pipeline(transaction=True) as tx:
        tx.hset(
            shard.job(job.id),
            mapping={
                "name": job.name, "lane": job.lane,
                "params": params.decode() if isinstance(params, bytes) else params,
                "priority": job.priority, "seq": str(client.incr(shard.seq)),
                "status": "running", "max_attempts": job.max_attempts,
                "timeout": job.timeout, "result_ttl": job.result_ttl,
                "created_at": now - 20_000, "attempts": attempts, "lease": token,
                "started": token, "worker": "dead-host.4242", "started_at": now - 15_000,
            },
        )  # fmt: skip
        tx.zadd(shard.running, {job.id: now - 5_000})
        tx.execute()
    return key


def test_job_lifecycle_works(service: Service) -> None:
    """Job lifecycle works: create a job via ``POST /jobs``, poll ``GET /jobs/{id}`` until
    terminal; the status becomes "done", the result is present and matches the payload,
    and attempts is >= 1."""
    payload = {"x": 1, "nested": {"list": [1, "two", None]}, "text": "<b>é</b>"}
    created = service.post(json.dumps({"payload": payload}))
    assert created.status_code == 200, created.text
    assert set(created.json()) == {"job_id"}
    job_id = created.json()["job_id"]
    assert uuid.UUID(job_id).version == 4 and str(uuid.UUID(job_id)) == job_id
    first = service.get(job_id).json()
    assert set(first) == {"job_id", "status", "result", "attempts"}
    assert first["job_id"] == job_id and first["status"] in {"queued", "processing"}
    view = service.finished(job_id)
    assert view["status"] == "done", view
    assert view["result"] == payload
    assert view["attempts"] >= 1


def test_stuck_job_is_requeued_once(service: Service) -> None:
    """Stuck job is requeued once: a job inserted directly into Redis in a stuck
    processing state is requeued by the reaper and completed by a worker's retry; the
    status becomes "done" or "failed" and attempts becomes 2 (the forced retry)."""
    payload = {"stuck": True}
    job_id = insert_stuck(service.client, payload)
    view = service.finished(job_id)
    assert view["status"] in TERMINAL, view
    assert view["attempts"] == 2
    if view["status"] == "done":
        assert view["result"] == payload


def test_a_job_stuck_on_its_second_attempt_fails_without_a_third(service: Service) -> None:
    """At most 2 attempts in all: a job whose second attempt is stuck is not requeued
    again, it fails with attempts 2."""
    job_id = insert_stuck(service.client, {"second": True}, attempts=2)
    view = service.finished(job_id)
    assert view == {"job_id": job_id, "status": "failed", "result": None, "attempts": 2}


def test_a_worker_killed_mid_job_loses_nothing(service: Service) -> None:
    """No job is lost if a worker dies mid-processing: SIGKILL the worker running it
    (supervisor and children); the job stays processing until its lease T lapses, then
    a new worker requeues and completes it: done, attempts 2."""
    payload = {"survives": "a SIGKILL"}
    job_id = service.post(json.dumps({"payload": payload})).json()["job_id"]
    poll(lambda: service.get(job_id).json()["status"] == "processing", service.apps)
    # Mid-job as jobkit counts it: the child has marked the attempt begun (in its queue's
    # `started` hash, before perform()). A job leased and lost without that mark goes back
    # to its queue with no attempt used, as if it had only been claimed ahead.
    keys, full_id = Keys(PREFIX), jobkit_id(QUEUE, job_id)

    def begun() -> bool:
        lease = service.client.hget(keys.job(full_id), "lease")
        mark = f"{lease.decode() if isinstance(lease, bytes) else lease}:{full_id}"
        return lease is not None and bool(service.client.hexists(keys.shard(QUEUE).started, mark))

    poll(begun, service.apps)
    service.apps.kill(service.workers[-1])
    stranded = service.get(job_id).json()
    assert stranded["status"] == "processing" and stranded["attempts"] == 1, stranded
    service.start_worker()
    view = service.finished(job_id)
    assert view == {"job_id": job_id, "status": "done", "result": payload, "attempts": 2}, (
        service.apps.logs()
    )


BAD_BODIES = [
    b"",
    b"not json",
    b"[1, 2]",
    b'"text"',
    b"{}",
    b'{"x": 1}',
    b'{"payload": [1]}',
    b'{"payload": "text"}',
    b'{"payload": {"x": NaN}}',
    b'{"payload": {"x": 1}, "seconds": 0}',
    b'{"payload": {"x": 1}',
    b'{"payload": {"deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    b'{"payload": {"big": "' + b"x" * (5 * 1024 * 1024) + b'"}}',
]


def test_bad_input_is_a_4xx_with_a_json_body_and_writes_nothing(service: Service) -> None:
    """Bad bodies are refused with a 4xx and a JSON body, never a 500, and no job is
    written; unknown ids, routes and methods are JSON 4xx answers too."""
    pattern = Keys(PREFIX).shard(QUEUE).job("*")
    before = set(service.client.scan_iter(match=pattern, count=1000))
    for body in BAD_BODIES:
        response = service.post(body)
        assert 400 <= response.status_code < 500, (body[:60], response.status_code)
        assert "detail" in response.json(), body[:60]
    assert set(service.client.scan_iter(match=pattern, count=1000)) == before
    for job_id in (str(uuid.uuid4()), "not-a-uuid", "reliable:x", "%00"):
        response = service.get(job_id)
        assert response.status_code == 404 and "detail" in response.json(), job_id
    base = f"http://127.0.0.1:{service.port}"
    assert httpx.get(f"{base}/nowhere").status_code == 404
    wrong = httpx.delete(f"{base}/jobs")
    assert wrong.status_code == 405 and wrong.json()


def test_the_documented_command_serves_the_documented_curl_lines(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """``python -m jobs_example.reliable`` as docs/examples.md writes it starts the API
    and its worker; the document's curl lines work as written; SIGTERM stops it all."""
    url = redis_url(redis_server, LAUNCHER_DB)
    redis.Redis.from_url(url).flushdb()
    port = free_port()
    command, env = documented_launch(SECTION, port, JOBKIT_REDIS_URL=url, JOBKIT_LEASE="3")
    assert command[:3] == ["python", "-m", "jobs_example.reliable"]
    apps = Apps(tmp_path)
    try:
        launcher = apps.start("launcher", command, **env)
        apps.wait_http(launcher, f"http://127.0.0.1:{port}/docs")
        post, get = doc_curls(SECTION)
        created = curl(post, 8000, port)
        assert created.status_code == 200, created.text
        job_id = created.json()["job_id"]

        def done() -> dict[str, Any] | None:
            view: dict[str, Any] = curl(get, 8000, port, job_id=job_id).json()
            return view if view["status"] in TERMINAL else None

        view = poll(done, apps, what="the documented job to end")
        assert view == {"job_id": job_id, "status": "done", "result": {"x": 1}, "attempts": 1}
        poll(lambda: "curl" in apps.log(launcher), apps, what="the banner")
        assert "T = 3 s" in apps.log(launcher)
        stop_launcher(apps, launcher)
    finally:
        apps.stop()
