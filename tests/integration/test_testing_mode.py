"""The testing mode as a user meets it: their own test file, run by pytest in a process
of its own with ``JOBKIT_REDIS_URL`` on a port nothing listens on, passes with delays,
retries, dead letters and a cron slot, and sleeps no longer than 0.1 s at a time
(``tests/support/user_project``: the jobs, the tests, a conftest that records sleeps)."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.conftest import REPO_ROOT, clean_env


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns


def test_a_users_tests_pass_without_redis() -> None:
    port = _closed_port()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         "tests/support/user_project/user_test_mail.py"],
        cwd=REPO_ROOT, env=clean_env(JOBKIT_REDIS_URL=f"redis://127.0.0.1:{port}/0"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "5 passed" in done.stdout
    assert "slept: 0 call(s)" in done.stdout or "longest 0.0" in done.stdout
