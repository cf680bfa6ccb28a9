"""What every example app's ``python -m jobs_example.<app>`` shares: start the app server and
its jobkit processes (workers, and the archiver or scheduler where the app has one) as
subprocesses, copy their output line by line with the service's name in front (as
``docker compose up`` does), say where to point curl, and stop them all on Ctrl-C or
SIGTERM.

This module imports no web framework: each app's launcher names its server command.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import jobkit
from jobkit.backend.embedded import embedded_running, stop_embedded
from jobkit.redact import redacted

# the folder jobs_example lives in: put on the children's path, so the commands work from
# any working directory
_PROJECT = str(Path(__file__).resolve().parent.parent)
WORKER_GRACE = 10.0  # seconds a worker may finish its running jobs when asked to stop
_EXTRA_WAIT = 5.0  # beyond the grace, before the launcher kills what is left
_INT_HEADSTART = 1.0  # seconds children get to act on a Ctrl-C the terminal sent them too


@dataclass
class Service:
    """One process to run: a name for its output lines, its command, extra environment."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def jobkit_command(*args: str) -> list[str]:
    """``jobkit <args>`` run by this interpreter (no console script needed on PATH)."""
    return [sys.executable, "-m", "jobkit", *args]


def worker(queues: str, concurrency: int, *extra: str) -> list[str]:
    """The worker command every example documents: ``jobkit worker -A jobs_example``, one
    ``-A`` registering every example's jobs."""
    return jobkit_command(
        "worker", "-A", "jobs_example", "-q", queues, "-c", str(concurrency),
        "--grace", f"{WORKER_GRACE:g}", *extra,
    )  # fmt: skip


def uvicorn(app: str, host: str, port: int) -> list[str]:
    """``uvicorn <module:app>`` on ``host:port``."""
    return [sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port)]


def arguments(description: str, port: int) -> argparse.ArgumentParser:
    """The options every launcher takes: where its app listens."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address the app listens on")
    parser.add_argument("--port", type=int, default=port, help=f"default {port}")
    return parser


class Launcher:
    """Runs :class:`Service` processes until a stop signal or until one of them exits."""

    def __init__(self, services: Sequence[Service]) -> None:
        self.services = list(services)
        self.procs: list[tuple[Service, subprocess.Popen[bytes]]] = []
        self.stop_signal: int | None = None
        self._print = threading.Lock()
        self._readers: list[threading.Thread] = []

    def say(self, text: str) -> None:
        """A line of the launcher's own, never torn by a child's line."""
        with self._print:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
        else:  # a second Ctrl-C: stop waiting for anyone
            self._kill_all()

    def _copy(self, name: str, stream: IO[bytes]) -> None:
        width = max(len(s.name) for s in self.services)
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self._print:
                sys.stdout.write(f"{name:<{width}} | {line}\n")
                sys.stdout.flush()

    def start(self) -> None:
        """Start every service. Children stay in the launcher's process group: a Ctrl-C at
        the terminal reaches them all, as it would reach them run by hand."""
        base = dict(os.environ)
        base["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT, base.get("PYTHONPATH")) if p)
        base["PYTHONUNBUFFERED"] = "1"
        for service in self.services:
            proc = subprocess.Popen(
                service.argv,
                env={**base, **service.env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            self.procs.append((service, proc))
            assert proc.stdout is not None
            reader = threading.Thread(
                target=self._copy, args=(service.name, proc.stdout), daemon=True
            )
            reader.start()
            self._readers.append(reader)

    def _alive(self) -> list[tuple[Service, subprocess.Popen[bytes]]]:
        return [(s, p) for s, p in self.procs if p.poll() is None]

    def _kill_all(self) -> None:
        for _, proc in self._alive():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    def stop(self) -> None:
        """Ask every child still running to stop (SIGTERM), wait for them, kill the rest.

        After a Ctrl-C the children got the terminal's SIGINT as well: they get a moment to
        act on it first (a second signal would make a worker stop waiting for its jobs)."""
        if self.stop_signal == signal.SIGINT:
            deadline = time.monotonic() + _INT_HEADSTART
            while self._alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        for _, proc in self._alive():
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        deadline = time.monotonic() + WORKER_GRACE + _EXTRA_WAIT
        while self._alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        for service, _ in self._alive():
            self.say(f"{service.name} did not stop in time: killed")
        self._kill_all()
        for _, proc in self.procs:
            proc.wait()
        for reader in self._readers:  # their last lines before the launcher's own
            reader.join(timeout=2)

    def run(self, ready: tuple[str, int], banner: str) -> int:
        """Start everything, print ``banner`` once the app answers on ``ready`` (host,
        port), and serve until a stop signal (0) or until a service exits (1)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.start()
        announced = False
        code = 0
        try:
            while self.stop_signal is None:
                ended = [(s, p) for s, p in self.procs if p.poll() is not None]
                if ended:
                    service, proc = ended[0]
                    self.say(f"{service.name} exited ({proc.returncode}): stopping the rest")
                    code = 1
                    break
                if not announced and _answers(*ready):
                    self.say(banner)
                    announced = True
                time.sleep(0.1)
        finally:
            self.stop()
        return code


def _answers(host: str, port: int) -> bool:
    """Whether something accepts connections on ``host:port``."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((target, port)) == 0


def launch(services: Sequence[Service], ready: tuple[str, int], banner: str) -> int:
    """Run ``services`` on the configured Redis (``JOBKIT_REDIS_URL``; unset: the embedded
    Redis, started here if none runs and stopped again at the end)."""
    try:
        settings = jobkit.get_settings()
    except jobkit.ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    owns_redis = not settings.redis_url and not embedded_running(settings.data_dir)
    jobkit.get_store()  # connect now: an embedded Redis is started (and announced) first
    where = redacted(settings.redis_url) if settings.redis_url else "the embedded Redis"
    launcher = Launcher(services)
    launcher.say(f"starting {', '.join(s.name for s in services)} on {where}")
    try:
        code = launcher.run(ready, banner)
    finally:
        if owns_redis:
            stop_embedded(settings.data_dir)
            launcher.say(f"embedded Redis stopped (its data stays in {settings.data_dir}/)")
    launcher.say("all stopped")
    return code
