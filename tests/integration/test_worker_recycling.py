"""Children recycled by job count and by age: graceful (a running job always finishes),
nothing lost, nothing counted as a crash; the limits' sizes and durations as written."""

from __future__ import annotations

from collections import Counter

import pytest

from jobkit.errors import ConfigurationError
from jobkit.logs import LogFormat
from jobkit.settings import load_settings
from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import jobs


def test_a_child_is_replaced_after_max_jobs_per_child_and_no_job_is_lost(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker(concurrency=1, environ={"JOBKIT_MAX_JOBS_PER_CHILD": "3"})
    handles = jobs.WhoAmI.dispatch_many([{} for _ in range(10)])  # all prefetched at once

    ran = [h.result(timeout=30) for h in handles]
    per_child = Counter(r["pid"] for r in ran)
    assert max(per_child.values()) <= 3
    assert len(per_child) >= 4
    assert {r["ppid"] for r in ran} == {worker.pid}
    for handle in handles:  # the jobs a retiring child had claimed ahead went back unrun
        rec = handle.record
        assert rec is not None and rec.attempts == 1 and rec.crashes == 0
    assert env.stats().get("succeeded") == 10
    log = worker.log_text()
    assert "ran its 3 jobs: replacing it" in log
    assert "died unexpectedly" not in log and "crashed" not in log


def test_a_child_older_than_max_child_age_finishes_its_job_then_is_replaced(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker(concurrency=1, extra=("--max-child-age", "2s"))
    [first] = worker.child_pids()
    handle = jobs.Sleepy.dispatch(marker="sleepy-pid", seconds=3.5)  # outlives the age

    assert handle.result(timeout=20) >= 3.5  # never killed
    assert int(env.client.get("sleepy-pid") or 0) == first
    assert handle.attempts == 1
    wait_until(lambda: first not in worker.child_pids(), timeout=5, what="the old child to go")
    [second] = wait_until(worker.child_pids, timeout=5, what="its replacement")
    # an idle child is replaced too, once it is old enough
    wait_until(lambda: second not in worker.child_pids(), timeout=6, what="the idle child to go")
    assert jobs.WhoAmI.dispatch().result(timeout=20)["ppid"] == worker.pid
    log = worker.log_text()
    assert "old (--max-child-age): replacing it after its current job" in log
    assert "died unexpectedly" not in log
    assert env.stats().get("failed") is None


@pytest.mark.parametrize(
    ("option", "junk", "says"),
    [
        ("--max-memory", "lots", "is not a size"),
        ("--max-memory", "12XB", "is not a size"),
        ("--max-child-age", "soon", "is not a duration"),
    ],
)
def test_a_limit_that_is_not_a_size_or_duration_is_refused(
    env: Env, option: str, junk: str, says: str
) -> None:
    out = run_cli("worker", "-A", "tests.support.jobs", option, junk, url=env.url)
    assert out.returncode == 2
    assert says in out.stderr and option in out.stderr


def test_limits_and_log_format_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "MAX_MEMORY", "MAX_CHILD_AGE", "MAX_JOBS_PER_CHILD", "LOG_FORMAT"):
        monkeypatch.delenv(f"JOBKIT_{name}", raising=False)
    monkeypatch.setenv("JOBKIT_MAX_MEMORY", "1GB")
    monkeypatch.setenv("JOBKIT_MAX_CHILD_AGE", "30m")
    monkeypatch.setenv("JOBKIT_MAX_JOBS_PER_CHILD", "500")
    monkeypatch.setenv("JOBKIT_LOG_FORMAT", "JSON")
    settings = load_settings()
    assert settings.max_memory == 1024.0
    assert settings.max_child_age == 1800.0
    assert settings.max_jobs_per_child == 500
    assert settings.log_format is LogFormat.JSON
    assert load_settings(max_memory="512MB", max_child_age="2h").max_child_age == 7200.0
    assert load_settings(max_memory="300").max_memory == 300.0

    monkeypatch.setenv("JOBKIT_MAX_MEMORY", "a lot")
    with pytest.raises(ConfigurationError, match=r"max_memory \(JOBKIT_MAX_MEMORY\).*not a size"):
        load_settings()
    monkeypatch.setenv("JOBKIT_MAX_MEMORY", "0")
    monkeypatch.setenv("JOBKIT_LOG_FORMAT", "xml")
    with pytest.raises(ConfigurationError, match="JOBKIT_LOG_FORMAT"):
        load_settings()
