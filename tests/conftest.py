"""Fixtures: a real redis-server per session, a clean database per test, and real worker
processes (``python -m jobkit worker``) that are always killed, whole group, on teardown."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

import jobkit
from jobkit.backend.keys import Keys
from jobkit.backend.store import Store
from jobkit.backend.transport import make_client
from jobkit.models import Status
from tests.support.cluster_server import ClusterServers
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer
from tests.support.sentinel_server import SentinelSet
from tests.support.servers import running_cluster, running_sentinels

REPO_ROOT = Path(__file__).resolve().parent.parent
LEASE = 1.5
HEARTBEAT = 0.3
PREFIX = "jobkit"

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy (returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate}")
        time.sleep(interval)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any JOBKIT_ variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBKIT_")}
    env.update(extra)
    return env


def run_cli(*args: str, url: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """``python -m jobkit <args> --redis-url <url>`` as a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "jobkit", *args, "--redis-url", url],
        cwd=REPO_ROOT,
        env=clean_env(COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def job_status(store: Store, job_id: str) -> Status:
    rec = store.reads.get(job_id)
    return rec.status if rec else Status.UNKNOWN


@dataclass
class Env:
    """What a test against the session's Redis gets: clean database, jobkit configured."""

    server: RedisServer
    url: str
    client: redis.Redis
    store: Store
    keys: Keys

    def status(self, job_id: str) -> Status:
        return job_status(self.store, job_id)

    def stats(self) -> dict[str, int]:
        return dict(self.store.reads.counts().totals)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def _configure(url: str) -> Store:
    jobkit.configure(redis_url=url, lease=LEASE, heartbeat=HEARTBEAT)
    return jobkit.get_store()


@pytest.fixture
def env(redis_server: RedisServer) -> Iterator[Env]:
    """FLUSHALL, then ``jobkit.configure`` on the session server (lease and heartbeat short)."""
    client = redis_server.client(decode_responses=True)
    client.flushall()
    store = _configure(redis_server.url)
    try:
        yield Env(redis_server, redis_server.url, client, store, Keys(PREFIX))
    finally:
        store.redis.close()
        client.close()


class WorkerProcess:
    """One ``python -m jobkit worker`` process group, with its log file."""

    def __init__(
        self,
        name: str,
        args: list[str],
        url: str,
        log_path: Path,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.args = args
        self.url = url
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args,
                cwd=REPO_ROOT,
                env=clean_env(JOBKIT_REDIS_URL=url, PYTHONUNBUFFERED="1", **(environ or {})),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _scan(self, field: int) -> list[int]:
        """Pids whose /proc stat ``field`` (1: ppid, 2: process group) is our pid."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.pid:
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if fields[0] != "Z" and int(fields[field]) == self.pid:
                    found.append(int(entry.name))
        return found

    def child_pids(self) -> list[int]:
        """Live children of the supervisor."""
        return self._scan(1)

    def group_pids(self) -> list[int]:
        """Live processes of the worker's process group, the supervisor excluded."""
        return self._scan(2)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until the supervisor registered itself in Redis and forked its children."""
        client = make_client(self.url, {"decode_responses": True})
        key = Keys(PREFIX).worker(self.name)
        try:

            def ready() -> bool:
                assert self.alive(), f"worker exited early:\n{self.log_tail()}"
                return bool(client.exists(key)) and bool(self.child_pids())

            wait_until(ready, timeout, what=f"worker {self.name} to start")
        finally:
            client.close()

    def terminate(self) -> None:
        """SIGTERM to the supervisor only (the graceful stop)."""
        os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the whole process group, reap the supervisor, and have Redis drop
        the group's connections at once. An idle child's blocking pop, with its claim
        pipelined behind it, stays registered in Redis until Redis reads the closed
        socket; a job dispatched in between (the next test's) would be leased to the
        dead worker and wait out its lease."""
        addresses = self._redis_addresses()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if addresses:
            client = make_client(self.url, {"decode_responses": True})
            try:
                for address in addresses:
                    with contextlib.suppress(redis.RedisError):
                        client.execute_command("CLIENT", "KILL", "ADDR", address)
            finally:
                client.close()

    def _redis_addresses(self) -> list[str]:
        """The local addresses of the group's TCP connections (Redis's "addr" of each)."""
        import psutil

        found = []
        for pid in [self.pid, *self.group_pids()]:
            with contextlib.suppress(psutil.Error):
                for conn in psutil.Process(pid).net_connections(kind="tcp"):
                    if conn.raddr and conn.status == psutil.CONN_ESTABLISHED:
                        found.append(f"{conn.laddr.ip}:{conn.laddr.port}")
        return found

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(empty log)"


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartWorker]:
    """Factory: ``start_worker(queues="default", concurrency=1, ...)`` starts a worker process.

    Uses the Redis jobkit is configured with unless ``url`` is given. Every worker started
    is killed (SIGKILL to its process group) when the test ends.
    """
    started: list[WorkerProcess] = []
    request.node.jobkit_workers = started

    def start(
        *,
        queues: str = "default",
        concurrency: int = 1,
        lease: float = LEASE,
        heartbeat: float = HEARTBEAT,
        grace: float | None = None,
        url: str | None = None,
        extra: tuple[str, ...] = (),
        ready: bool = True,
        environ: dict[str, str] | None = None,
    ) -> WorkerProcess:
        url = url or jobkit.get_settings().redis_url
        assert url, "configure jobkit (the env fixture) or pass url="
        name = f"w{len(started) + 1}-{os.getpid()}-{time.monotonic_ns()}"
        args = [
            sys.executable, "-m", "jobkit", "worker",
            "-A", "tests.support.jobs",
            "-q", queues,
            "-c", str(concurrency),
            "--lease", str(lease),
            "--heartbeat", str(heartbeat),
            "--name", name,
            *(["--grace", str(grace)] if grace is not None else []),
            *extra,
        ]  # fmt: skip
        log_path = tmp_path / f"worker-{len(started) + 1}.log"
        worker = WorkerProcess(name, args, url, log_path, environ)
        started.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """On failure, attach the tail of every worker log to the report."""
    report = yield
    if report.failed:
        for worker in getattr(item, "jobkit_workers", ()):
            report.sections.append((f"worker {worker.name} log (tail)", worker.log_tail()))
    return report


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the history archive's tests."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ClusterServers]:
    """A Redis Cluster (three masters, three replicas) for the whole run."""
    yield from running_cluster()


@pytest.fixture(scope="session")
def redis_sentinels() -> Iterator[SentinelSet]:
    """A primary, a replica and three sentinels for the whole run."""
    yield from running_sentinels()
