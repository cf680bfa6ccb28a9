"""`jobkit top` and `jobkit info --watch`, run as processes against a real redis-server:
frames that follow a worker's jobs, at 80 and 160 columns; a Redis that stops and comes
back; and, on a pseudo-terminal, the alternate screen left by ``q`` or Ctrl-C."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from jobkit.ops.workers import live_workers
from tests.conftest import REPO_ROOT, Env, StartWorker, clean_env, run_cli, wait_until
from tests.support import jobs
from tests.support.redis_server import RedisServer

HEADER = re.compile(r"^jobkit \S+ .*read( \d\d:\d\d:\d\d)?, (retrying )?every [\d.]+s", re.M)
DONE = re.compile(r"since the start: .*succeeded (\d+)")


def top(*args: str, url: str, columns: int) -> subprocess.CompletedProcess[str]:
    """``python -m jobkit <args>`` with its output a pipe ``columns`` wide."""
    return subprocess.run(
        [sys.executable, "-m", "jobkit", *args, "--redis-url", url],
        cwd=REPO_ROOT,
        env=clean_env(COLUMNS=str(columns)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def frames(output: str) -> list[str]:
    """The frames of a run whose output is not a terminal: each opens with the header."""
    starts = [m.start() for m in HEADER.finditer(output)]
    return [output[a:b] for a, b in zip(starts, [*starts[1:], len(output)], strict=True)]


def assert_clean(output: str, columns: int) -> None:
    """Nothing wider than the terminal, no escape sequence, no cut figure."""
    for line in output.splitlines():
        assert len(line) <= columns, f"{len(line)} > {columns}: {line!r}"
        assert "\x1b" not in line and "…" not in line, repr(line)


@pytest.mark.parametrize("columns", [80, 160])
def test_top_follows_a_worker_through_its_jobs(
    env: Env, start_worker: StartWorker, columns: int
) -> None:
    worker = start_worker(concurrency=2)
    # one child runs a long job through every frame, the other short ones that end
    # between frames
    jobs.Sleepy.dispatch(marker="top-long", seconds=8)
    wait_until(lambda: env.client.exists("top-long"), what="the long job to start")
    for i in range(20):
        jobs.Sleepy.dispatch(marker=f"top-{i}", seconds=0.3)
    wait_until(
        lambda: [len(w.jobs) for w in live_workers(env.store)] == [2],
        what="the worker to report both jobs",
    )

    out = top("top", "--iterations", "3", "--interval", "0.5", url=env.url, columns=columns)

    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert_clean(out.stdout, columns)
    drawn = frames(out.stdout)
    assert len(drawn) == 3, out.stdout
    for frame in drawn:
        assert env.url in frame
        assert re.search(r"^default +\d+ +[1-9]\d* ", frame, re.M), frame  # jobs running
        # its row: jobs running (prefetched ones too), done, failed, RSS
        row = rf"^{worker.name} .* ([1-9]\d*) +\d+ +0 +\d+ *$"
        assert re.search(row, frame, re.M), frame
    done = [int(DONE.search(frame).group(1)) for frame in drawn]  # type: ignore[union-attr]
    assert done[0] < done[-1], out.stdout  # jobs ended between the first and last frame
    headers = drawn[0].split("───")[0]
    for always in ("queue", "ready", "running", "dead", "done", "failed"):
        assert always in headers
    # everything fits 160 columns; at 80 the 5 and 15 minute rates and the archive go
    for wide_only in ("1/5/15m", "archive", "workers"):
        assert (wide_only in headers) is (columns == 160), headers


def test_top_reports_a_lost_redis_in_place_and_redraws_once_it_is_back(
    tmp_path: Path,
) -> None:
    with RedisServer(requirepass="top-secret") as server:
        url = server.url.replace("redis://", "redis://:top-secret@")
        log = tmp_path / "top.out"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jobkit", "top", "--iterations", "12",
                 "--interval", "0.5", "--redis-url", url],
                cwd=REPO_ROOT, env=clean_env(COLUMNS="80", PYTHONUNBUFFERED="1"),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_until(lambda: "since the start" in log.read_text(), what="a first frame")
            server.stop()
            wait_until(lambda: "retrying every" in log.read_text(), what="the error")
            server.start()
            assert proc.wait(20) == 0, log.read_text()
        finally:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert "Traceback" not in output
    assert "top-secret" not in output and "redis://:***@127.0.0.1" in output
    assert_clean(output, 80)
    drawn = frames(output)
    assert len(drawn) == 12, output
    failed = [i for i, frame in enumerate(drawn) if "retrying every" in frame]
    assert failed and failed[-1] < len(drawn) - 1, output  # frames after the failure read
    for i in failed:
        header, error = drawn[i].splitlines()[:2]
        assert re.search(r" last read \d\d:\d\d:\d\d, retrying every 0.5s$", header)
        assert "Connection refused" in error or "Connection reset" in error, error
        assert "since the start" in drawn[i]  # the figures read before stay shown
    assert "retrying every" not in drawn[-1]


def test_info_watch_is_top(env: Env) -> None:
    jobs.Add.dispatch(a=1, b=2)
    out = top("info", "--watch", "--iterations", "2", "--interval", "0.5",
              url=env.url, columns=80)  # fmt: skip
    assert out.returncode == 0, out.stderr
    drawn = frames(out.stdout)
    assert len(drawn) == 2, out.stdout
    assert all(re.search(r"^default +1 +0 ", frame, re.M) for frame in drawn), out.stdout
    assert all("no live workers" in frame for frame in drawn)


def test_watch_refuses_json_and_intervals_under_half_a_second(env: Env) -> None:
    refused = run_cli("info", "--watch", "--json", url=env.url)
    assert refused.returncode == 2 and "--json" in refused.stderr
    too_fast = run_cli("top", "--interval", "0.1", url=env.url)
    assert too_fast.returncode == 2 and "--interval" in too_fast.stderr


def _read_until(fd: int, done: bytes, seen: bytearray, timeout: float = 15.0) -> None:
    """Read the terminal's output into ``seen`` until ``done`` is in it."""
    deadline = time.monotonic() + timeout
    while done not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {done!r} in {bytes(seen)!r}"
        if select.select([fd], [], [], left)[0]:
            with contextlib.suppress(OSError):  # EIO: the other end is closed
                seen += os.read(fd, 65536)


@pytest.mark.parametrize("how", ["q", "ctrl-c"])
def test_top_on_a_terminal_uses_the_alternate_screen_and_leaves_it(env: Env, how: str) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobkit", "top", "--interval", "0.5", "--redis-url", env.url],
        cwd=REPO_ROOT, env=clean_env(TERM="xterm-256color"),
        stdin=slave, stdout=slave, stderr=slave,
    )  # fmt: skip
    seen = bytearray()
    try:
        _read_until(master, b"since the start", seen)
        # Ctrl-C on a terminal is SIGINT to its foreground job; the child has no
        # controlling terminal here, so the signal is sent as the terminal would
        if how == "q":
            os.write(master, b"q")
        else:
            proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        _read_until(master, b"\x1b[?1049l", seen)  # the alternate screen left
        assert termios.tcgetattr(slave) == before  # out of cbreak mode again
    finally:
        proc.kill()
        proc.wait()
        os.close(slave)
        os.close(master)
    text = bytes(seen).decode(errors="replace")
    assert "\x1b[?1049h" in text and "Traceback" not in text
    # each frame starts at the top left corner (ESC [H): there a line starts, too
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text.replace("\x1b[H", "\n"))
    for line in plain.replace("\r", "\n").splitlines():
        assert len(line) <= 80, repr(line)
    assert "q quits" in plain
