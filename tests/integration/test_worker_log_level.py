"""`--log-level` defaults to JOBKIT_LOG_LEVEL, for the worker and the scheduler alike."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, Env, clean_env, run_cli, wait_until
from tests.support import jobs


@contextlib.contextmanager
def _process(args: list[str], log: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m jobkit <args>`` with extra environment, in its own process group,
    killed (whole group) on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobkit", *args],
            cwd=REPO_ROOT,
            env=clean_env(PYTHONUNBUFFERED="1", **env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _levels(log: Path) -> set[str]:
    return {line.split()[2] for line in log.read_text().splitlines() if line[:2] == "20"}


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_an_unknown_log_level_is_an_error(env: Env, command: str) -> None:
    done = run_cli(
        command, "-A", "tests.support.jobs", "--log-level", "LOUD", url=env.url, timeout=30
    )
    assert done.returncode == 2
    assert "unknown log level 'LOUD'" in done.stdout + done.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "jobkit", command, "-A", "tests.support.jobs"],
        cwd=REPO_ROOT,
        env=clean_env(JOBKIT_REDIS_URL=env.url, JOBKIT_LOG_LEVEL="verbose", COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "unknown log level 'verbose'" in proc.stdout + proc.stderr


def test_worker_log_level_comes_from_the_setting(env: Env, tmp_path: Path) -> None:
    args = ["worker", "-A", "tests.support.jobs", "--lease", "1.5", "--heartbeat", "0.3"]
    quiet = tmp_path / "quiet.log"
    with _process(args, quiet, JOBKIT_REDIS_URL=env.url, JOBKIT_LOG_LEVEL="warning"):
        assert jobs.Add.dispatch(a=1, b=2).result(timeout=20) == 3
    assert "INFO" not in _levels(quiet)
    assert "WARNING" in _levels(quiet)  # Redis has no persistence: said at start

    loud = tmp_path / "loud.log"
    with _process([*args, "--log-level", "debug"], loud, JOBKIT_REDIS_URL=env.url):
        assert jobs.Add.dispatch(a=2, b=2).result(timeout=20) == 4
    assert {"DEBUG", "INFO"} <= _levels(loud)  # the option wins over the setting


def test_scheduler_log_level_comes_from_the_setting(env: Env, tmp_path: Path) -> None:
    args = ["scheduler", "-A", "tests.support.sched_jobs"]
    quiet = tmp_path / "quiet.log"
    with _process(args, quiet, JOBKIT_REDIS_URL=env.url, JOBKIT_LOG_LEVEL="ERROR") as proc:
        handle = jobs.Add.dispatch(a=1, b=1, delay=0.2)
        wait_until(lambda: handle.status.value == "queued", timeout=20, what="promotion")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert quiet.read_text() == ""

    loud = tmp_path / "loud.log"
    with _process([*args, "--log-level", "info"], loud, JOBKIT_REDIS_URL=env.url):
        wait_until(lambda: "scheduler started" in loud.read_text(), timeout=20, what="start")
