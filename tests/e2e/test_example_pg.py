"""The FastAPI + PostgreSQL job system's app end to end: the API served by uvicorn, a real
``jobkit worker``, ``jobkit archiver``, a real redis-server and a real PostgreSQL, each a
process. ``TruncateTable`` really truncates; ``GET /job-status`` answers in the document's
fields, from PostgreSQL once Redis has forgotten the job; ``job_statuses`` is queryable
with plain SQL, as the document shows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from sqlalchemy import Engine, create_engine, text

from jobkit.backend.keys import Keys
from jobkit.cron import bind_schedules
from jobs_example.pg_etl import DataImportJob
from jobs_example.pg_jobs import TruncateTable
from tests.conftest import PREFIX, REPO_ROOT, clean_env
from tests.support.example_apps import (
    Apps,
    curl,
    doc_block,
    doc_curls,
    documented_launch,
    poll,
    redis_url,
    stop_launcher,
)
from tests.support.postgres_server import PASSWORD, PostgresServer, reset_database
from tests.support.redis_server import RedisServer, free_port

DB, LAUNCHER_DB = 7, 8
SECTION = "FastAPI and PostgreSQL"
FIELDS = {"id", "status", "result", "created_at", "updated_at"}
TERMINAL = {"completed", "failed"}
QUEUES = ("high", "default", "low", "etl")


@dataclass
class Service:
    """The API, a worker and the archiver on one Redis database and PostgreSQL."""

    apps: Apps
    base: str
    client: redis.Redis
    engine: Engine
    url: str  # the Redis the processes use
    pg_url: str

    def create(self, body: dict[str, Any]) -> str:
        """``POST /create-jobs/`` with ``body``; the job id of its document-shaped answer."""
        response = httpx.post(f"{self.base}/create-jobs/", json=body, timeout=10)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert set(answer) == {"job_id", "status"} and answer["status"] == "enqueued"
        job_id: str = answer["job_id"]
        return job_id

    def status(self, job_id: str) -> httpx.Response:
        """``GET /job-status/{job_id}``."""
        # a cron job's id holds its schedule's key, with a '#': quoted, as curl needs it
        return httpx.get(f"{self.base}/job-status/{quote(job_id, safe=':')}", timeout=10)

    def finished(self, job_id: str) -> dict[str, Any]:
        """Poll ``GET /job-status`` until the job is completed or failed."""

        def terminal() -> dict[str, Any] | None:
            view: dict[str, Any] = self.status(job_id).json()
            return view if view["status"] in TERMINAL else None

        result: dict[str, Any] = poll(terminal, self.apps, what=f"job {job_id} to end")
        return result

    def scalar(self, sql: str, **params: Any) -> Any:
        """The first column of the first row of ``sql``, in PostgreSQL."""
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def archived(self, job_id: str, status: str) -> None:
        """Wait until the archiver has written the job with ``status``."""
        sql = "SELECT count(*) FROM jobkit_jobs WHERE id = :id AND status = :status"
        poll(lambda: self.scalar(sql, id=job_id, status=status), self.apps, what="the archive")


def _fresh_database(url: str) -> Engine:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    return engine


@pytest.fixture(scope="module")
def service(
    redis_server: RedisServer,
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    """The app and its jobkit processes, shared by the module's tests; killed at its end."""
    url = redis_url(redis_server, DB)
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    engine = _fresh_database(postgres_server.url)
    apps = Apps(tmp_path_factory.mktemp("pg"))
    env = {"JOBKIT_REDIS_URL": url, "JOBKIT_HISTORY_URL": postgres_server.url}
    port = free_port()
    try:
        api = apps.start(
            "api",
            ["python", "-m", "uvicorn", "jobs_example.pg_system:app", "--port", str(port)],
            **env,
        )
        worker = [
            sys.executable, "-m", "jobkit", "worker", "-A", "jobs_example",
            "-q", ",".join(QUEUES), "--name", "pg-1",
        ]  # fmt: skip
        apps.start("worker", worker, **env)
        apps.start("archiver", [sys.executable, "-m", "jobkit", "archiver"], **env)
        base = f"http://127.0.0.1:{port}"
        apps.wait_http(api, f"{base}/docs")
        workers = Keys(PREFIX).workers
        poll(lambda: client.zscore(workers, "pg-1"), apps, what="the worker to register")
        yield Service(apps, base, client, engine, url, postgres_server.url)
    finally:
        apps.stop()
        client.close()
        engine.dispose()
        reset_database(postgres_server.url)  # its view and tables go with it


def test_a_truncation_is_answered_from_postgresql_once_redis_forgets_it(
    service: Service,
) -> None:
    """``POST /create-jobs/`` queues ``TruncateTable``, which empties ``public.users``;
    ``GET /job-status`` answers in the document's words, and still answers the same once
    Redis has forgotten the job (its record gone, as its result TTL would make it), from
    the archive in PostgreSQL; ``job_statuses`` shows it to plain SQL."""
    assert service.scalar("SELECT count(*) FROM public.users") == 3  # the app's demo rows
    job_id = service.create({"schema": "public", "table_name": "users"})
    live = service.finished(job_id)
    assert set(live) == FIELDS
    assert live["id"] == job_id and live["status"] == "completed", live
    assert live["result"] == "Table public.users truncated successfully"
    assert live["created_at"] <= live["updated_at"]
    assert service.status(job_id).headers["X-Jobkit-Source"] == "redis"
    assert service.scalar("SELECT count(*) FROM public.users") == 0

    service.archived(job_id, "succeeded")
    assert service.client.delete(Keys(PREFIX).job(job_id)) == 1
    answer = service.status(job_id)
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Jobkit-Source"] == "archive"
    assert answer.json() == live

    with service.engine.connect() as conn:
        rows = [r._asdict() for r in conn.execute(text(doc_block(SECTION, "sql")))]
    assert len(rows) <= 5 and rows[0]["id"] == job_id, rows
    assert {"id", "status", "result", "created_at", "updated_at"} <= set(rows[0])
    assert rows[0]["status"] == "completed"
    assert json.loads(rows[0]["result"]) == "Table public.users truncated successfully"


def test_a_missing_table_fails_at_once_and_reads_failed(service: Service) -> None:
    """A table that is not there fails without retries: ``failed``, its error as the
    result, and ``failed`` in the view too."""
    job_id = service.create({"schema": "public", "table_name": "nothing_here", "queue": "high"})
    view = service.finished(job_id)
    assert view["status"] == "failed" and "there is no table public.nothing_here" in view["result"]
    service.archived(job_id, "dead")
    sql = "SELECT status FROM job_statuses WHERE id = :id"
    assert service.scalar(sql, id=job_id) == "failed"


BAD = [
    {"schema": "public; DROP TABLE users", "table_name": "users"},
    {"schema": "public", "table_name": 'users"; DROP TABLE users; --'},
    {"schema": "public", "table_name": "users\n"},
    {"schema": "public", "table_name": "1users"},
    {"schema": "public", "table_name": "u" * 64},
    {"schema": "pg_catalog", "table_name": "pg_class"},
    {"schema": "information_schema", "table_name": "tables"},
    {"schema": "public", "table_name": "jobkit_jobs"},
    {"schema": "public", "table_name": "job_statuses"},
    {"schema": "public", "table_name": "users", "queue": "urgent"},
    {"schema": "public", "table_name": "users", "extra": 1},
    {"schema_": "public", "table_name": "users"},
    {"table_name": "users"},
    {"schema": ["public"], "table_name": "users"},
]


def test_bad_input_is_a_4xx_json_answer_and_truncates_nothing(service: Service) -> None:
    """Identifiers out of the strict rule, system schemas, the history's own tables, an
    unknown queue: 422 with a JSON body, no job written, no table touched."""
    patterns = [Keys(PREFIX).shard(q).job("*") for q in QUEUES]

    def jobs() -> set[str]:
        return {k for p in patterns for k in service.client.scan_iter(match=p, count=1000)}

    before = jobs()
    for body in BAD:
        response = httpx.post(f"{service.base}/create-jobs/", json=body, timeout=10)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"], body
    for raw in (b"", b"nope", b"[]", b'{"schema": NaN}'):
        response = httpx.post(f"{service.base}/create-jobs/", content=raw)
        assert response.status_code == 422 and response.json()["detail"], raw
    assert jobs() == before
    assert service.scalar("SELECT to_regclass('public.users') IS NOT NULL")
    assert service.scalar("SELECT count(*) FROM jobkit_jobs") >= 0
    for job_id in ("nope", "default:0123456789abcdef", "%00"):
        response = service.status(job_id)
        assert response.status_code == 404 and response.json()["detail"], job_id


def test_the_nightly_import_runs_as_a_chain_into_postgresql(service: Service) -> None:
    """The document's DataImportJob, run now as its schedule would run it at 01:00 on a
    weekday: extract, transform and load, each a job of the chain, the rows upserted into
    public.data_warehouse; every step polled through GET /job-status."""
    [bound] = bind_schedules(DataImportJob)
    assert bound.cron.expr == "0 1 * * mon-fri" and DataImportJob.queue == "etl"
    assert dict(bound.cron.params) == {"source": "external_api", "target": "data_warehouse"}
    env = {"JOBKIT_REDIS_URL": service.url, "JOBKIT_HISTORY_URL": service.pg_url}
    ran = subprocess.run(
        [sys.executable, "-m", "jobkit", "schedules", "run", bound.key, "-A", "jobs_example"],
        cwd=REPO_ROOT, env=clean_env(COLUMNS="200", **env), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    job_id = ran.stdout.strip().rsplit(" ", 1)[-1]
    assert job_id.startswith("etl:"), ran.stdout
    started = service.finished(job_id)
    assert started["status"] == "completed", started
    steps = started["result"]["steps"]
    assert [s.split(":", 1)[0] for s in steps] == ["etl"] * 3
    load = service.finished(steps[-1])
    assert load["status"] == "completed", load
    assert load["result"] == "3 rows loaded into public.data_warehouse"
    rows = service.scalar("SELECT string_agg(id || ':' || amount_cents || currency, ',' "
                          "ORDER BY id) FROM data_warehouse")  # fmt: skip
    assert rows == "1:1250EUR,2:700USD,4:99GBP"


def test_the_nightly_truncation_is_a_cron_declared_on_the_class() -> None:
    """The document's ``TruncateTable.dispatch(schema="public", table_name="daily_stats",
    queue="low")`` every night at 2, as ``jobkit scheduler -A jobs_example`` fires it."""
    [bound] = bind_schedules(TruncateTable)
    assert bound.cron.expr == "0 2 * * *"
    assert dict(bound.cron.params) == {"schema": "public", "table_name": "daily_stats"}
    assert TruncateTable.queue == "low"


def test_the_documented_command_runs_the_system(
    redis_server: RedisServer, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """``python -m jobs_example.pg_system`` as docs/examples.md writes it (with the test
    database's URL) starts the API, a worker, the archiver and the scheduler; the
    document's curl lines work as written; no line or answer shows the database's
    password; SIGTERM stops it all."""
    url = redis_url(redis_server, LAUNCHER_DB)
    redis.Redis.from_url(url).flushdb()
    _fresh_database(postgres_server.url).dispose()
    port = free_port()
    command, env = documented_launch(
        SECTION, port, JOBKIT_REDIS_URL=url, JOBKIT_HISTORY_URL=postgres_server.url
    )
    assert command[:3] == ["python", "-m", "jobs_example.pg_system"]
    apps = Apps(tmp_path)
    try:
        launcher = apps.start("launcher", command, **env)
        apps.wait_http(launcher, f"http://127.0.0.1:{port}/docs")
        post, get = doc_curls(SECTION)
        created = curl(post, 8000, port)
        assert created.status_code == 200, created.text
        job_id = created.json()["job_id"]

        def done() -> httpx.Response | None:
            answer = curl(get, 8000, port, job_id=job_id)
            return answer if answer.json()["status"] in TERMINAL else None

        answer = poll(done, apps, what="the documented job to end")
        assert answer.json()["result"] == "Table public.users truncated successfully"
        for name in ("api", "worker", "archiver", "scheduler"):
            assert f"\n{name}" in apps.log(launcher), name
        assert PASSWORD not in answer.text + created.text
        stop_launcher(apps, launcher)
        assert PASSWORD not in apps.logs()
    finally:
        apps.stop()
