"""``--log-format json`` / ``JOBKIT_LOG_FORMAT=json``: one JSON object per line, job lines
with their fields as keys, no secret in any line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from jobkit import JobFailed
from jobkit.logs import JOB_FIELDS, JsonFormatter
from tests.conftest import REPO_ROOT, Env, StartWorker, clean_env, wait_until
from tests.support import jobs

BASE_FIELDS = {"time", "level", "logger", "message"}


def parsed(text: str) -> list[dict[str, Any]]:
    """Every line as JSON (json.loads fails the test on a line that is not)."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    for line in lines:
        assert line.keys() >= BASE_FIELDS, line
    return lines


def job_lines(lines: list[dict[str, Any]], job_id: str) -> dict[str, dict[str, Any]]:
    return {line["outcome"]: line for line in lines if line.get("job_id") == job_id}


def test_worker_json_lines_carry_each_job_s_fields(env: Env, start_worker: StartWorker) -> None:
    worker = start_worker(concurrency=1, extra=("--log-format", "json"))
    ok = jobs.Add.dispatch(a=1, b=2)
    assert ok.result(timeout=15) == 3
    failing = jobs.Hang.dispatch(marker="hang")  # killed at its 0.5 s timeout: dead
    with pytest.raises(JobFailed):
        failing.result(timeout=20)
    wait_until(lambda: '"outcome":"dead"' in worker.log_text(), what="its last line")

    lines = parsed(worker.log_text())
    assert any(line["message"].startswith("worker ") for line in lines)
    seen = job_lines(lines, ok.id)
    assert {"started", "succeeded"} <= seen.keys()
    for line in seen.values():
        assert set(JOB_FIELDS) <= line.keys()
        assert line["job_class"] == "tests.support.jobs.Add"
        assert line["queue"] == "default" and line["attempt"] == 1
    assert seen["succeeded"]["duration"] >= 0 and seen["succeeded"]["level"] == "INFO"
    assert seen["started"]["duration"] is None
    dead = job_lines(lines, failing.id)["dead"]
    assert dead["job_class"] == "tests.support.jobs.Hang" and dead["duration"] >= 0.5
    assert dead["level"] == "ERROR" and dead["logger"] == "jobkit.worker"


def test_json_from_the_environment_and_text_by_default(env: Env, start_worker: StartWorker) -> None:
    text = start_worker(concurrency=1)
    as_json = start_worker(concurrency=1, environ={"JOBKIT_LOG_FORMAT": "json"})
    for handle in jobs.Add.dispatch_many([{"a": i, "b": 1} for i in range(4)]):
        handle.result(timeout=15)
    assert parsed(as_json.log_text())
    first = text.log_text().splitlines()[0]
    assert not first.startswith("{") and " INFO " in first


def test_scheduler_json_lines(env: Env, tmp_path: Path) -> None:
    log = tmp_path / "scheduler.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobkit",
                "scheduler",
                "-A",
                "tests.support.sched_jobs",
                "--log-format",
                "json",
            ],
            cwd=REPO_ROOT,
            env=clean_env(JOBKIT_REDIS_URL=env.url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: log.read_text().count("\n") >= 1, timeout=15, what="a log line")
        time.sleep(0.5)
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    lines = parsed(log.read_text())
    assert {line["logger"] for line in lines} >= {"jobkit.scheduler"}


def test_no_secret_in_a_json_line() -> None:
    record = logging.LogRecord(
        "jobkit.worker", logging.ERROR, __file__, 1,
        "cannot reach redis://app:s3cret@db:6379/0 (%s)", ("rediss://:hunter2@h:6380",), None,
    )  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert "s3cret" not in line["message"] and "hunter2" not in line["message"]
    assert "redis://app:***@db:6379/0" in line["message"]
