"""The documented commands, run as written: every service of docker-compose.yml, the
Dockerfile's CMD and the README's HTTP commands, then the documented ``curl`` requests
over real HTTP. The only substitutions: Redis and PostgreSQL are the test's own servers,
and each HTTP server gets a free port instead of its documented one.

A job an API dispatches must be one the documented worker command registers: the
example's ``POST /jobs`` once dispatched a job only ``-A jobs_example.web`` knew, so it
ended ``dead`` / ``unknown_job`` under every documented worker.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_client
import yaml
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import ProgrammingError

from jobkit import Status
from jobkit.archive.schema import jobs
from tests.conftest import REPO_ROOT, run_cli
from tests.support.example_apps import Apps, curl, poll
from tests.support.postgres_server import PASSWORD, PostgresServer
from tests.support.redis_server import RedisServer, find_redis_server, free_port

_DEFAULTED = re.compile(r"\$\{(\w+):-([^${}]*)\}")  # ${NAME:-default}, innermost first


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text()))


def compose_curls() -> list[list[str]]:
    """The ``curl`` lines of the compose file's header comment, split as a shell would."""
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    return [shlex.split(m) for m in re.findall(r"^[#\s]*(curl .+)$", header, flags=re.M)]


def resolved(value: str) -> str:
    """A compose value with its ``${NAME:-default}`` references at their defaults (the
    variables are unset on a fresh machine)."""
    while _DEFAULTED.search(value):
        value = _DEFAULTED.sub(lambda m: m.group(2), value)
    return value


def service_env(**override: str) -> dict[str, str]:
    """The environment every jobkit service gets, as compose resolves it with nothing set,
    with ``override`` (the test's Redis and database)."""
    env = {k: resolved(str(v)) for k, v in compose()["x-jobkit"]["environment"].items()}
    return {**env, **override}


def dockerfile_cmd() -> list[str]:
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            cmd: list[str] = json.loads(line.removeprefix("CMD "))
            return cmd
    raise AssertionError("the Dockerfile has no CMD")


def readme_block(section: str) -> list[str]:
    """The commands of the first ```bash block under the README heading ``section``
    (``\\`` continuations joined, comments dropped)."""
    text = (REPO_ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", body, flags=re.S)
    assert block, f"no bash block under README's {section!r}"
    joined = block.group(1).replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def with_port(command: list[str], documented: str, port: int) -> list[str]:
    assert command.count(documented) == 1, command
    return [str(port) if arg == documented else arg for arg in command]


def test_the_documented_commands_are_found() -> None:
    """The parsing above finds what the files say (a guard against reading nothing)."""
    services = compose()["services"]
    assert services["api"]["command"][:2] == ["uvicorn", "jobs_example.reliable:app"]
    assert services["dashboard"]["command"][:4] == ["jobkit", "serve", "-A", "jobs_example"]
    for worker in (services["worker"]["command"], dockerfile_cmd()):
        assert worker[:4] == ["jobkit", "worker", "-A", "jobs_example"]
    post, get, queues = compose_curls()
    assert post[:3] == ["curl", "-X", "POST"] and get[0] == queues[0] == "curl"
    http = readme_block("HTTP")
    assert http[0].startswith("jobkit serve -A jobs_example")
    assert [line.split()[0] for line in http[1:]] == ["curl", "curl"]


def _reliable_flow(apps: Apps, api: subprocess.Popen[bytes], port: int) -> str:
    """The exercise's two requests, as its document writes them (and the issue's form
    without a content type): a UUID back, then queued -> ... -> done with the payload as
    the result. Returns the job's UUID."""
    post, get, _ = compose_curls()
    apps.wait_http(api, f"http://127.0.0.1:{port}/docs")
    created = curl(post, 8000, port)
    assert created.status_code == 200, created.text
    key = created.json()["job_id"]
    assert str(uuid.UUID(key)) == key
    bare = httpx.post(f"http://127.0.0.1:{port}/jobs", content='{"payload": {"x": 1}}')
    assert bare.status_code == 200, bare.text  # curl -d without -H: form-encoded, still JSON

    def done() -> dict[str, Any] | None:
        view: dict[str, Any] = curl(get, 8000, port, job_id=key).json()
        return view if view["status"] in {"done", "failed"} else None

    view = poll(done, apps, 40, "the job to be done")
    assert view == {"job_id": key, "status": "done", "result": {"x": 1}, "attempts": 1}
    return str(key)


@pytest.mark.parametrize("worker", ["compose", "dockerfile"])
def test_the_compose_api_runs_the_documents_requests(
    redis_server: RedisServer, tmp_path: Path, worker: str
) -> None:
    redis_server.client().flushall()
    services = compose()["services"]
    command = services["worker"]["command"] if worker == "compose" else dockerfile_cmd()
    env = service_env(JOBKIT_REDIS_URL=redis_server.url, JOBKIT_HISTORY_URL="")
    env.pop("JOBKIT_HISTORY_URL")
    apps = Apps(tmp_path)
    try:
        port = free_port()
        api = apps.start("api", with_port(services["api"]["command"], "8000", port), **env)
        apps.start("worker", command, **env)
        _reliable_flow(apps, api, port)
    finally:
        apps.stop()


def test_the_readme_serve_commands_run_the_readme_requests(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    redis_server.client().flushall()
    serve, post, get = readme_block("HTTP")
    [worker] = [line for line in readme_block("Running workers") if line]
    apps = Apps(tmp_path)
    try:
        port = free_port()
        proc = apps.start("serve", with_port(shlex.split(serve), "8080", port),
                          JOBKIT_REDIS_URL=redis_server.url)  # fmt: skip
        apps.start("worker", shlex.split(worker), JOBKIT_REDIS_URL=redis_server.url)
        apps.wait_http(proc, f"http://127.0.0.1:{port}/healthz")
        created = curl(shlex.split(post), 8080, port)
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]

        def finished() -> dict[str, Any] | None:
            view: dict[str, Any] = curl(shlex.split(get), 8080, port, id=job_id).json()
            return view if view["status"] in {"succeeded", "dead"} else None

        view = poll(finished, apps, 30, "the job to finish")
        assert (view["status"], view["result"]) == (Status.SUCCEEDED.value, 3)
    finally:
        apps.stop()


@pytest.mark.slow
def test_every_compose_service_runs_as_a_process(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """Every service's command, as many copies as it asks for, as processes: Redis (its
    command on a free port), the exercise's API, jobkit serve, the workers, the scheduler
    and the archivers, against the test's PostgreSQL in place of the postgres service.
    The documented requests work, jobkit serve sees both workers, and the job lands in
    the archive."""
    spec = compose()
    services = spec["services"]
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    assert "--name" not in services["worker"]["command"]  # --scale worker=N never clashes
    assert services["dashboard"]["ports"] == ["127.0.0.1:8080:8080"]  # no token: local only
    assert services["postgres"]["image"].startswith("postgres:")
    engine = create_engine(postgres_server.url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    apps = Apps(tmp_path)
    try:
        redis_port = free_port()
        redis_cmd = services["redis"]["command"]
        assert redis_cmd[0] == "redis-server"
        data = tmp_path / "redis"
        data.mkdir()
        redis = apps.start("redis", [find_redis_server(), *redis_cmd[1:], "--port",
                                     str(redis_port), "--dir", str(data)])  # fmt: skip
        client = redis_client.Redis(port=redis_port, decode_responses=True)
        poll(lambda: client.ping(), apps, 20, "redis to answer")
        config = {**client.config_get("appendonly"), **client.config_get("maxmemory-policy")}
        assert config == {"appendonly": "yes", "maxmemory-policy": "noeviction"}
        url = f"redis://127.0.0.1:{redis_port}/0"
        env = service_env(JOBKIT_REDIS_URL=url, JOBKIT_HISTORY_URL=postgres_server.url)
        api_port, serve_port = free_port(), free_port()
        api = apps.start("api", with_port(services["api"]["command"], "8000", api_port), **env)
        dashboard = apps.start(
            "dashboard", with_port(services["dashboard"]["command"], "8080", serve_port), **env
        )
        for name in ("worker", "scheduler", "archiver"):
            for i in range(services[name].get("deploy", {}).get("replicas", 1)):
                apps.start(f"{name}-{i}", services[name]["command"], **env)
        key = _reliable_flow(apps, api, api_port)
        apps.wait_http(dashboard, f"http://127.0.0.1:{serve_port}/healthz")
        _, _, queues = compose_curls()
        listed = curl(queues, 8080, serve_port)
        assert listed.status_code == 200 and "reliable" in {q["queue"] for q in listed.json()}
        base = f"http://127.0.0.1:{serve_port}/api"

        def both_workers() -> list[Any] | None:
            found = httpx.get(f"{base}/workers", timeout=5).json()
            return found if len(found) == 2 else None

        workers = poll(both_workers, apps, 30, "both workers to register")
        assert len({w["name"] for w in workers}) == 2
        schedules = {r["schedule"] for r in httpx.get(f"{base}/schedules", timeout=5).json()}
        assert "jobs_example.NightlyReport" in schedules
        shown = run_cli("workers", "--json", url=url)
        assert len(json.loads(shown.stdout)) == 2

        def archived() -> bool:
            query = select(func.count()).where(
                jobs.c.id == f"reliable:{key}", jobs.c.status == Status.SUCCEEDED.value
            )
            try:
                with engine.connect() as conn:
                    return conn.execute(query).scalar() == 1
            except ProgrammingError:  # no table yet: the archivers are making it
                return False

        poll(archived, apps, 60, "the job in the archive")
        assert all(proc.poll() is None for _, proc, _ in apps.started), apps.logs()
        assert redis.poll() is None
        assert PASSWORD not in apps.logs()
    finally:
        apps.stop()
        engine.dispose()
