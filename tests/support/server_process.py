"""One redis-server process (a cluster node, a Sentinel-managed node or a sentinel) in its own
process group and directory, on a free port: the building block of ``cluster_server.py`` and
``sentinel_server.py``."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.redis_server import find_redis_server, spawn

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_GRACE = 5.0
BUS_PORT_OFFSET = 10000
# Ports are drawn below the kernel's ephemeral range (32768 and up on Linux), bus ports
# included, so an outgoing connection cannot be handed one between our probe and the bind.
PORT_RANGE = (12000, 22700)
PORT_ATTEMPTS = 20


class Address(NamedTuple):
    """A server's host and port; a plain ``(host, port)`` tuple wherever one is expected."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(*, bus: bool = False) -> int:
    """A port of 127.0.0.1 nothing listens on, and with ``bus`` one whose cluster bus port
    (port + 10000) is free as well."""
    low, high = PORT_RANGE
    for _ in range(1000):
        port = random.randint(low, high)
        if _bindable(port) and (not bus or _bindable(port + BUS_PORT_OFFSET)):
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def node_client(address: tuple[str, int], timeout: float = 2.0) -> redis.Redis:
    """A plain client on one server, decoding replies, that never retries: probes must see a
    dead server at once."""
    host, port = address
    return redis.Redis(
        host=host,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def command(client: redis.Redis, *args: str | int) -> Any:
    """``client.execute_command(*args)``: redis-py leaves that method unannotated, so the one
    untyped call of these modules is here."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 50 ms until it is true; TimeoutError naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class ServerProcess:
    """A redis-server in ``directory``, started with ``config`` (a config file, if any) and
    ``options``; ``options`` may be changed between a stop and the next start.

    The first start picks a free port (another one if a concurrent process takes it before the
    bind); later starts reuse it. With ``host`` (an address of this machine other than
    127.0.0.1, such as a bridge other network namespaces reach) the server listens there too,
    with protected mode off as those clients are not local, and :attr:`address` names it.

    The server runs in its own session, so signals reach its whole group (a fork for BGSAVE
    included). Should the owner forget to stop it, the group is killed when this object is
    collected or the interpreter exits.
    """

    def __init__(
        self,
        directory: Path,
        options: Sequence[str] = (),
        *,
        config: Path | None = None,
        bus_port: bool = False,
        host: str = LOOPBACK,
    ) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.options = list(options)
        self.config = config
        self.bus_port = bus_port
        self.host = host
        self.port = 0
        self.log_path = directory / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._reaper: weakref.finalize[[int], ServerProcess] | None = None

    @property
    def address(self) -> Address:
        """Where the server listens (port 0 until its first start)."""
        return Address(self.host, self.port)

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def client(self, timeout: float = 2.0) -> redis.Redis:
        """A non-retrying client on this server (see :func:`node_client`)."""
        return node_client(self.address, timeout)

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        if self.running:
            return
        for _ in range(1 if self.port else PORT_ATTEMPTS):
            port = self.port or free_port(bus=self.bus_port)
            self._spawn(port)
            if self._wait_for_ping(port):
                self.port = port
                return
            self.kill()
            if self.port or "Address already in use" not in self.log_tail():
                break
        raise RuntimeError(
            f"redis-server in {self.directory} did not answer PING within {START_TIMEOUT:g}s\n"
            f"{self.log_tail()}"
        )

    def _spawn(self, port: int) -> None:
        listen = [LOOPBACK] if self.host == LOOPBACK else [LOOPBACK, self.host]
        args = [
            find_redis_server(),
            *([str(self.config)] if self.config else []),
            "--port", str(port),
            "--bind", *listen,
            *(["--protected-mode", "no"] if self.host != LOOPBACK else []),
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            *self.options,
        ]  # fmt: skip
        self._process = spawn(args, self.directory)
        self._reaper = weakref.finalize(self, _kill_group, self._process.pid)

    def _wait_for_ping(self, port: int) -> bool:
        probe = node_client((LOOPBACK, port), 1.0)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while self.running and time.monotonic() < deadline:
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if probe.ping():
                        return True
                time.sleep(0.02)
        finally:
            probe.close()
        return False

    def terminate(self) -> None:
        """Send SIGTERM to the group without waiting (see :meth:`reap`)."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGTERM)

    def reap(self, deadline: float) -> None:
        """Wait for the process until ``deadline`` (monotonic), then SIGKILL its group."""
        process = self._process
        if process is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.monotonic()))
        # The group may outlive its leader (a BGSAVE child), so it is killed in any case.
        _kill_group(process.pid)
        process.wait()
        self._forget()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s. Does nothing if not running."""
        self.terminate()
        self.reap(time.monotonic() + STOP_GRACE)

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, with no chance to save or say goodbye."""
        if self._process is not None:
            _kill_group(self._process.pid)
            self._process.wait()
            self._forget()

    def _forget(self) -> None:
        # Once reaped, the pid may be reused: the finalizer must never signal it again.
        if self._reaper is not None:
            self._reaper.detach()
        self._process = self._reaper = None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's stdout and log file."""
        parts = []
        for path in (self.directory / "stdout.log", self.log_path):
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            parts.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(parts) or "(no log)"


def stop_all(servers: Sequence[ServerProcess]) -> None:
    """Stop many servers at once: SIGTERM to every group, then one shared 5 s grace."""
    for server in servers:
        server.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for server in servers:
        server.reap(deadline)
