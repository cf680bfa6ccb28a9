"""The example's documented commands, run as written: the API and worker commands of
docker-compose.yml, the Dockerfile's CMD and the README's commands, then the documented
``curl`` requests over real HTTP. The only substitutions: ``JOBKIT_REDIS_URL`` points at
the test's redis-server, and uvicorn gets a free port instead of 8000.

A job the API dispatches must be one the documented worker command registers: the
example's ``POST /jobs`` once dispatched a job only ``-A jobs_example.web`` knew, so it
ended ``dead`` / ``unknown_job`` under every documented worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import ProgrammingError

from jobkit import Status
from jobkit.archive.schema import jobs
from jobs_example import Echo
from tests.conftest import REPO_ROOT, Env, clean_env, run_cli, wait_until
from tests.postgres_server import PASSWORD, PostgresServer

DOCUMENTED_PORT = "8000"


@dataclass
class Example:
    """One documented way to run the example: an API command, a worker command and the
    two requests (create a job, read it back)."""

    api: list[str]
    worker: list[str]
    post: list[str]
    get: list[str]


def _curl_lines(text: str) -> list[list[str]]:
    """Every ``curl ...`` line in ``text`` (comment markers stripped), split as a shell would."""
    return [shlex.split(m) for m in re.findall(r"^[#\s]*(curl .+)$", text, flags=re.M)]


def _compose() -> tuple[dict[str, Any], list[list[str]]]:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    return yaml.safe_load(text), _curl_lines(header)


def _dockerfile_cmd() -> list[str]:
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            cmd: list[str] = json.loads(line.removeprefix("CMD "))
            return cmd
    raise AssertionError("the Dockerfile has no CMD")


def _readme_block(section: str) -> list[str]:
    """The lines of the first ```bash block under the README heading ``section``."""
    text = (REPO_ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", body, flags=re.S)
    assert block, f"no bash block under README's {section!r}"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines()]


def examples() -> dict[str, Example]:
    compose, compose_curls = _compose()
    services = compose["services"]
    [post, get] = compose_curls
    http = _readme_block("HTTP")
    [readme_worker] = [line for line in _readme_block("Running workers") if line]
    [readme_api] = [line for line in http if line.startswith("uvicorn ")]
    [readme_post, readme_get] = _curl_lines("\n".join(http))
    return {
        "compose": Example(services["api"]["command"], services["worker"]["command"], post, get),
        "dockerfile": Example(services["api"]["command"], _dockerfile_cmd(), post, get),
        "readme": Example(
            shlex.split(readme_api), shlex.split(readme_worker), readme_post, readme_get
        ),
    }


def test_the_documented_commands_are_found() -> None:
    """The parsing above finds what the files say (a guard against reading nothing)."""
    found = examples()
    assert found["compose"].api[:2] == ["uvicorn", "jobs_example.web:app"]
    for example in found.values():
        assert example.worker[:4] == ["jobkit", "worker", "-A", "jobs_example"]
        assert example.post[:3] == ["curl", "-X", "POST"] and example.get[0] == "curl"


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _with_port(command: list[str], port: str) -> list[str]:
    assert command.count(DOCUMENTED_PORT) == 1, command
    return [port if arg == DOCUMENTED_PORT else arg for arg in command]


def _request(curl: list[str], port: str, **fill: str) -> httpx.Response:
    """Make the request a ``curl`` command line describes (its -X, -H and -d, and its
    URL with ``<name>`` placeholders filled), to ``port`` instead of the documented one."""
    method, headers, data, url = "GET", {}, None, ""
    args = iter(curl[1:])
    for arg in args:
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data, method = next(args), method if method != "GET" else "POST"
        else:
            url = arg
    for name, value in fill.items():
        url = url.replace(f"<{name}>", value)
    host, _, path = url.partition("/")
    assert host == f"localhost:{DOCUMENTED_PORT}", url
    return httpx.request(
        method, f"http://127.0.0.1:{port}/{path}", headers=headers, content=data, timeout=10
    )


class Processes:
    """Commands started in their own sessions, logs kept, whole groups killed at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, command: list[str], redis_url: str, **more: str) -> subprocess.Popen[bytes]:
        # the commands name console scripts (jobkit, uvicorn): this interpreter's, first
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = clean_env(JOBKIT_REDIS_URL=redis_url, PYTHONUNBUFFERED="1", PATH=path, **more)
        log = self.log_dir / f"{len(self.started)}-{Path(command[0]).name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.started.append((proc, log))
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- {' '.join(p.args)}\n{log.read_text(errors='replace')[-3000:]}"  # type: ignore[arg-type]
            for p, log in self.started
        )

    def stop(self) -> None:
        for proc, _ in self.started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop()


@pytest.mark.parametrize("which", ["compose", "dockerfile", "readme"])
def test_the_documented_commands_run_the_documented_request(
    env: Env, processes: Processes, which: str
) -> None:
    example = examples()[which]
    port = _free_port()
    api = processes.start(_with_port(example.api, port), env.url)
    worker = processes.start(example.worker, env.url)

    def api_up() -> bool:
        assert api.poll() is None, f"the API exited:\n{processes.logs()}"
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/stats", timeout=2).status_code == 200
        return False

    wait_until(api_up, timeout=30, what="the API to answer")
    created = _request(example.post, port)
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]

    def finished() -> dict[str, Any] | None:
        assert worker.poll() is None, f"the worker exited:\n{processes.logs()}"
        view: dict[str, Any] = _request(example.get, port, job_id=job_id).json()
        return view if view["status"] in {"succeeded", "dead", "cancelled"} else None

    try:
        view = wait_until(finished, timeout=30, what="the job to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{processes.logs()}") from None
    assert view["status"] == Status.SUCCEEDED.value, f"{view}\n{processes.logs()}"
    assert view["result"] == json.loads(created.request.content)["payload"]


def test_the_compose_worker_service_scales(env: Env, processes: Processes) -> None:
    """``docker compose up --scale worker=N`` runs N copies of the worker service: it names
    no container, publishes no port and picks no worker name, so copies never clash. Two
    copies of its command, started as processes, register as two workers and share work."""
    compose, _ = _compose()
    service = compose["services"]["worker"]
    assert "container_name" not in service and "ports" not in service
    assert "--name" not in service["command"]
    copies = [processes.start(service["command"], env.url) for _ in range(2)]

    def registered() -> list[dict[str, Any]] | None:
        assert all(c.poll() is None for c in copies), processes.logs()
        out = run_cli("workers", "--json", url=env.url)
        listed: list[dict[str, Any]] = json.loads(out.stdout or "[]")
        return listed if len(listed) == 2 else None

    workers = wait_until(registered, timeout=30, what="both workers to register")
    assert len({w["name"] for w in workers}) == 2


def test_the_compose_archivers_keep_the_history_in_postgresql(
    env: Env, processes: Processes, postgres_server: PostgresServer
) -> None:
    """The compose file's archiver service, as many copies as it asks for, started as
    processes against a real PostgreSQL (the compose URL with the test server's host,
    port and password): jobs run by the compose worker command land in the archive."""
    compose, _ = _compose()
    services = compose["services"]
    archiver = services["archiver"]
    assert {"redis", "postgres"} <= set(archiver["depends_on"])
    documented = compose["x-jobkit"]["environment"]["JOBKIT_HISTORY_URL"]
    assert "postgresql+psycopg://jobkit:" in documented and "@postgres:5432/jobkit" in documented
    engine = create_engine(postgres_server.url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    copies = [
        processes.start(archiver["command"], env.url, JOBKIT_HISTORY_URL=postgres_server.url)
        for _ in range(archiver["deploy"]["replicas"])
    ]
    assert len(copies) == 2
    processes.start(services["worker"]["command"], env.url)
    ids = [Echo.dispatch(payload={"n": n}).id for n in range(20)]

    def archived() -> bool:
        assert all(c.poll() is None for c in copies), processes.logs()
        query = select(func.count()).where(
            jobs.c.id.in_(ids), jobs.c.status == Status.SUCCEEDED.value
        )
        try:
            with engine.connect() as conn:
                return conn.execute(query).scalar() == len(ids)
        except ProgrammingError:  # no table yet: the archivers are making it
            return False

    try:
        wait_until(archived, timeout=60, what="the jobs in the archive")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{processes.logs()}") from None
    finally:
        engine.dispose()
    assert PASSWORD not in processes.logs()
