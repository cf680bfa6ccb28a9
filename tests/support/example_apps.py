"""What the example apps' end-to-end tests share (``tests/e2e/test_example_*.py``): processes
started in their own sessions and always killed whole, the commands and ``curl`` lines of
``docs/examples.md`` as written, and a look at which processes are still alive.

As in ``tests/e2e/test_example_commands.py``: the commands run as documented, with only
``JOBKIT_REDIS_URL`` (and the database URL) pointed at the test's servers and a free
port instead of the documented one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from jobkit.backend.keys import Keys
from tests.conftest import PREFIX, REPO_ROOT, clean_env, wait_until
from tests.support.redis_server import RedisServer, free_port

DOCS = REPO_ROOT / "docs" / "examples.md"
_ENV_WORD = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def redis_url(server: RedisServer, db: int) -> str:
    """The server's URL on database ``db``: each test module keeps to its own."""
    return server.url.rsplit("/", 1)[0] + f"/{db}"


class Apps:
    """Commands started in their own sessions with their output in log files; every
    process group is SIGKILLed in :meth:`stop`, whatever state the test left it in."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, argv: list[str], **env: str) -> subprocess.Popen[bytes]:
        """Run ``argv`` (a leading ``python`` is this interpreter) with jobkit's variables
        cleared but ``env``."""
        if argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        log = self.log_dir / f"{len(self.started)}-{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
                env=clean_env(PYTHONUNBUFFERED="1", PATH=path, **env),
            )  # fmt: skip
        self.started.append((name, proc, log))
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        """Everything ``proc`` wrote so far."""
        for _, started, path in self.started:
            if started is proc:
                return path.read_text(errors="replace")
        raise KeyError(proc.pid)

    def logs(self) -> str:
        """The tail of every log, for a failure's message."""
        return "\n".join(
            f"--- {name} ({proc.pid})\n{path.read_text(errors='replace')[-4000:]}"
            for name, proc, path in self.started
        )

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL ``proc``'s whole process group and reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)

    def stop(self) -> None:
        for _, proc, _ in self.started:
            self.kill(proc)

    def wait_http(self, proc: subprocess.Popen[bytes], url: str, timeout: float = 40) -> None:
        """Wait until ``url`` answers (any status), failing early if ``proc`` exits."""

        def up() -> bool:
            assert proc.poll() is None, f"exited with {proc.returncode}:\n{self.logs()}"
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(url, timeout=2)
                return True
            return False

        wait_until(up, timeout=timeout, interval=0.2, what=f"{url} to answer")


def poll(predicate: Callable[[], Any], apps: Apps, timeout: float = 30, what: str = "") -> Any:
    """:func:`wait_until`, with every log in the message when it times out."""
    try:
        return wait_until(predicate, timeout=timeout, interval=0.1, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{apps.logs()}") from None


@dataclass
class FlaskApp:
    """A Flask example app and its worker, up: its processes, base URL and Redis."""

    apps: Apps
    base: str
    client: redis.Redis


@contextlib.contextmanager
def flask_app_with_worker(
    server: RedisServer, db: int, log_dir: Path, app: str, worker: list[str], **env: str
) -> Iterator[FlaskApp]:
    """``flask --app <app> run`` and ``jobkit worker -A jobs_example <worker...>`` (named
    by its ``--name``) on database ``db``, flushed first, with ``env``; both killed, and
    the client closed, at the end."""
    url = redis_url(server, db)
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    apps = Apps(log_dir)
    port = free_port()
    env = {"JOBKIT_REDIS_URL": url, **env}
    try:
        flask = apps.start("flask", ["python", "-m", "flask", "--app", app, "run", "--port",
                                     str(port), "--no-reload"], **env)  # fmt: skip
        apps.start("worker", [sys.executable, "-m", "jobkit", "worker", "-A", "jobs_example",
                              *worker], **env)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        apps.wait_http(flask, f"{base}/nowhere")
        name = worker[worker.index("--name") + 1]
        poll(lambda: client.zscore(Keys(PREFIX).workers, name), apps, what="the worker")
        yield FlaskApp(apps, base, client)
    finally:
        apps.stop()
        client.close()


# -- docs/examples.md -----------------------------------------------------------------------


def doc_section(title: str) -> str:
    """The text under the ``## <title>`` heading of docs/examples.md."""
    text = DOCS.read_text()
    assert f"\n## {title}\n" in text, f"no section {title!r} in {DOCS}"
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def doc_block(title: str, language: str = "bash") -> str:
    """The section's first ```<language> block."""
    block = re.search(rf"```{language}\n(.*?)```", doc_section(title), flags=re.S)
    assert block, f"no {language} block under {title!r}"
    return block.group(1)


def doc_commands(title: str) -> list[list[str]]:
    """The commands of the section's first ```bash block, split as a shell would: a
    command goes on over ``\\`` line ends and over quotes left open (a JSON body written
    over several lines), and comments are dropped."""
    commands: list[list[str]] = []
    pending = ""
    for line in doc_block(title).splitlines():
        if line.rstrip().endswith("\\"):  # a line continuation, removed as a shell does
            pending += line.rstrip()[:-1] + " "
            continue
        pending += line + "\n"
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        pending = ""
        if words:
            commands.append(words)
    assert not pending.strip(), f"unfinished command under {title!r}: {pending}"
    return commands


def documented_launch(title: str, port: int, **env: str) -> tuple[list[str], dict[str, str]]:
    """The section's launch command (its first that is no curl) as argv with ``--port``
    added, and its environment: what the line sets, overridden by ``env``."""
    words = next(c for c in doc_commands(title) if c[0] != "curl")
    assigned = {}
    while words and _ENV_WORD.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        assigned[name] = value
    return [*words, "--port", str(port)], {**assigned, **env}


def doc_curls(title: str) -> list[list[str]]:
    """The section's ``curl`` commands."""
    return [c for c in doc_commands(title) if c[0] == "curl"]


def curl(argv: list[str], documented: int, port: int, **fill: str) -> httpx.Response:
    """Make the request a ``curl`` line describes (``-X``, ``-H``, ``-d``, ``--location``)
    to ``port`` instead of the ``documented`` one, ``<name>`` placeholders filled."""
    method, headers, data, url = "GET", {}, None, ""
    args = iter(argv[1:])
    for arg in args:
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data, method = next(args), method if method != "GET" else "POST"
        elif arg not in ("--location", "-L", "-s"):
            url = arg
    for name, value in fill.items():
        url = url.replace(f"<{name}>", value)
    url = url.removeprefix("http://")
    host, _, path = url.partition("/")
    assert host == f"localhost:{documented}", url
    return httpx.request(
        method, f"http://127.0.0.1:{port}/{path}", headers=headers, content=data, timeout=10
    )


# -- processes --------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the name (state first), or None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def stop_launcher(
    apps: Apps, launcher: subprocess.Popen[bytes], *, ctrl_c: bool = False, timeout: float = 40
) -> None:
    """Stop the launcher as a service manager would (SIGTERM to it alone) or, with
    ``ctrl_c``, as a terminal's Ctrl-C does (SIGINT to its whole process group), and
    check it exits 0 with every process it started gone."""
    children = descendants(launcher.pid)
    assert children, f"the launcher started nothing:\n{apps.logs()}"
    if ctrl_c:
        os.killpg(launcher.pid, signal.SIGINT)
    else:
        launcher.send_signal(signal.SIGTERM)
    try:
        code = launcher.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the launcher did not stop:\n{apps.logs()}") from None
    assert code == 0, apps.logs()
    left = {pid for pid in children if alive(pid)}
    assert not left, f"left running: {sorted(left)}\n{apps.logs()}"
    assert "all stopped" in apps.log(launcher)
