"""Operating cron schedules, against real `jobkit scheduler` and `jobkit worker` processes
on every-second schedules (``tests.support.sched_jobs``): pause fires nothing while the other
schedules go on, resume fires the next slot and no backlog (also when no scheduler ran
during the pause), run now creates one job that a worker runs and the schedule shows as
its last run, two schedulers still fire each slot once across a pause, and an unknown
key is a one-line error."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from jobkit.backend.cron import run_now_id
from jobkit.cron import collect
from jobkit.errors import UnknownSchedule
from jobkit.ops.schedules import find_schedule
from tests.conftest import (
    REPO_ROOT,
    Env,
    StartWorker,
    WorkerProcess,
    clean_env,
    run_cli,
    wait_until,
)
from tests.support import sched_jobs
from tests.support.sched_jobs import CRON_QUEUE

APP = "tests.support.sched_jobs"
ONCE, ALL, SKIP = f"{APP}.TickOnce", f"{APP}.TickAll", f"{APP}.TickSkip#eu"
SLOT = re.compile(r":(\d+)$")


@pytest.fixture
def schedulers(env: Env, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Where :func:`_scheduler` keeps the schedulers it starts: killed at the end."""
    started: list[WorkerProcess] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.kill()


def _scheduler(env: Env, started: list[WorkerProcess], tmp_path: Path) -> WorkerProcess:
    """A `jobkit scheduler -A tests.support.sched_jobs` process, once it planned its first round
    (every schedule's next slot is recorded)."""
    n = len(started) + 1
    args = [sys.executable, "-m", "jobkit", "scheduler", "-A", APP, "--log-level", "DEBUG"]
    proc = WorkerProcess(f"scheduler-{n}", args, env.url, tmp_path / f"scheduler-{n}.log")
    started.append(proc)

    def ready() -> bool:
        assert proc.alive(), proc.log_tail()
        return all(env.client.hexists(_hash(env, k), "next_slot") for k in (ONCE, ALL, SKIP))

    wait_until(ready, 20, what="the scheduler's first round")
    return proc


def _hash(env: Env, key: str) -> str:
    return env.keys.shard(CRON_QUEUE).schedule(key)


def _slots(env: Env, key: str) -> dict[int, dict[str, str]]:
    """Slot -> job hash of every slot job of schedule ``key`` (run-now jobs left out)."""
    prefix = env.keys.job(f"{CRON_QUEUE}:cron:{key}:")
    out = {}
    for k in env.client.scan_iter(prefix + "*", count=1000):
        rest = k.removeprefix(prefix)
        if rest.isdigit():
            out[int(rest)] = env.client.hgetall(k)
    return out


def _cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("schedules", *args, "-A", APP, url=env.url)


def _rows(env: Env) -> dict[str, dict[str, Any]]:
    out = _cli(env, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    return {r["schedule"]: r for r in orjson.loads(out.stdout)}


def _redis_now(env: Env) -> float:
    sec, usec = env.client.time()
    return float(sec + usec / 1_000_000)


def _skipped_lines(procs: list[WorkerProcess], key: str) -> list[str]:
    pattern = re.compile(rf"schedule {re.escape(key)}: paused, slot (\S+) skipped")
    return [m for p in procs for m in pattern.findall(p.log_text())]


def _fired_lines(procs: list[WorkerProcess], key: str) -> list[int]:
    pattern = re.compile(rf"schedule {re.escape(key)}: fired (?:catch-up )?slot \S+ as \S+:(\d+)")
    return sorted(int(m) for p in procs for m in pattern.findall(p.log_text()))


def test_pause_fires_nothing_while_others_go_on_and_resume_fires_no_backlog(
    env: Env, schedulers: list[WorkerProcess], tmp_path: Path
) -> None:
    proc = _scheduler(env, schedulers, tmp_path)
    wait_until(lambda: len(_slots(env, ALL)) >= 1, 10, what="a first slot")

    out = _cli(env, "pause", ALL)
    assert out.returncode == 0 and out.stdout.strip() == f"schedule {ALL} paused", out
    paused_at = _redis_now(env)
    before, others = set(_slots(env, ALL)), len(_slots(env, ONCE))
    time.sleep(3.2)  # three slots of an every-second schedule
    assert set(_slots(env, ALL)) == before  # misfire=all, and still nothing
    assert len(_slots(env, ONCE)) >= others + 3  # the other schedules go on
    logged = len(_skipped_lines([proc], ALL))
    row = _rows(env)[ALL]
    assert row["paused"] is True and row["paused_at"] is not None
    assert row["skipped"] >= 3 and row["fired"] == len(before)
    # logged once per slot (one more may be skipped while the listing runs)
    assert logged <= row["skipped"] <= len(_skipped_lines([proc], ALL))
    assert _cli(env, "pause", ALL).stdout.strip() == f"schedule {ALL} was paused already"

    out = _cli(env, "resume", ALL)
    assert out.returncode == 0 and out.stdout.strip() == f"schedule {ALL} resumed", out
    resumed_at = _redis_now(env)
    wait_until(lambda: len(_slots(env, ALL)) >= len(before) + 2, 10, what="slots after resume")
    after = sorted(set(_slots(env, ALL)) - before)
    # no backlog: every slot fired since is one that fell due after the resume, in order
    assert all(s > paused_at for s in after)
    assert after[0] >= int(resumed_at) and after == list(range(after[0], after[-1] + 1))
    assert after[0] - max(before) >= 4  # the paused slots were skipped, not fired
    row = _rows(env)[ALL]
    assert row["paused"] is False and row["fired"] == len(_slots(env, ALL))
    assert _cli(env, "resume", ALL).stdout.strip() == f"schedule {ALL} was not paused"


def test_resume_fires_no_backlog_when_no_scheduler_ran_during_the_pause(
    env: Env, schedulers: list[WorkerProcess], tmp_path: Path
) -> None:
    first = _scheduler(env, schedulers, tmp_path)
    wait_until(lambda: len(_slots(env, ALL)) >= 1, 10, what="a first slot")
    assert _cli(env, "pause", ALL).returncode == 0
    first.kill()
    before = set(_slots(env, ALL))
    time.sleep(3)  # slots fall due with no scheduler to skip them
    assert _cli(env, "resume", ALL).returncode == 0
    resumed_at = _redis_now(env)
    _scheduler(env, schedulers, tmp_path)
    wait_until(lambda: len(_slots(env, ALL)) > len(before), 10, what="a slot after resume")
    # misfire=all would replay the missed slots; those of the pause are skipped instead
    assert min(set(_slots(env, ALL)) - before) >= int(resumed_at)
    state = env.client.hgetall(_hash(env, ALL))
    assert int(state["skipped"]) >= 3


def test_run_now_enqueues_one_job_a_worker_runs_shown_as_the_last_run(
    env: Env, schedulers: list[WorkerProcess], tmp_path: Path, start_worker: StartWorker
) -> None:
    assert _cli(env, "pause", SKIP).returncode == 0  # before any slot: none fires
    _scheduler(env, schedulers, tmp_path)
    start_worker(queues=CRON_QUEUE, extra=("-A", APP))

    out = _cli(env, "run", SKIP)
    assert out.returncode == 0, out.stdout + out.stderr
    [line] = out.stdout.splitlines()
    job_id = line.rsplit(" ", 1)[1]
    assert line == f"schedule {SKIP}: {sched_jobs.TickSkip.name} queued now as {job_id}"
    assert job_id.startswith(f"{CRON_QUEUE}:cron:{SKIP}:now-") and not SLOT.search(job_id)
    wait_until(lambda: env.status(job_id) == "succeeded", 10, what="the run-now job to run")

    record = env.client.hgetall(env.keys.job(job_id))
    assert orjson.loads(record["params"]) == {"region": "eu"}  # the schedule's params
    assert record["schedule"] == SKIP
    row = _rows(env)[SKIP]
    assert row["last_job"] == job_id and row["last_trigger"] == "run now"
    assert row["last_status"] == "succeeded" and row["last_finished_at"] is not None
    assert (row["runs_now"], row["fired"], row["paused"]) == (1, 0, True)
    assert _slots(env, SKIP) == {}  # paused: no slot fired, run now took none

    # its fields are a slot's (which are a dispatched job's), but for the slot's due time
    assert _cli(env, "resume", SKIP).returncode == 0
    wait_until(lambda: _slots(env, SKIP), 10, what="a slot after resume")
    slot_job = next(iter(_slots(env, SKIP).values()))
    ran = {"status", "attempts", "lease", "worker", "started_at", "finished_at", "result"}
    assert set(record) - ran == set(slot_job) - ran - {"due_at"}
    wait_until(lambda: _rows(env)[SKIP]["last_trigger"] == "cron", 10, what="a cron last run")
    row = _rows(env)[SKIP]
    assert row["runs_now"] == 1 and row["fired"] >= 1


def test_two_schedulers_fire_each_slot_once_across_a_pause(
    env: Env, schedulers: list[WorkerProcess], tmp_path: Path
) -> None:
    a, b = _scheduler(env, schedulers, tmp_path), _scheduler(env, schedulers, tmp_path)
    time.sleep(2)
    assert _cli(env, "pause", ONCE).returncode == 0
    time.sleep(2.5)
    assert _cli(env, "resume", ONCE).returncode == 0
    time.sleep(2)
    a.terminate()
    b.terminate()
    assert a.wait(10) == 0 and b.wait(10) == 0

    for key in (ONCE, ALL, SKIP):
        slots = sorted(_slots(env, key))
        assert _fired_lines([a, b], key) == slots, key  # each slot by one of the two
        state = env.client.hgetall(_hash(env, key))
        assert int(state["fired"]) == len(slots)
    for key in (ALL, SKIP):
        slots = sorted(_slots(env, key))
        assert slots == list(range(slots[0], slots[-1] + 1)), key
    once = sorted(_slots(env, ONCE))
    gap = sorted(set(range(once[0], once[-1])) - set(once))
    assert len(gap) >= 2 and gap == list(range(gap[0], gap[-1] + 1))  # the pause
    skipped = _skipped_lines([a, b], ONCE)
    assert len(skipped) == len(gap)  # each paused slot skipped (and logged) once
    assert int(env.client.hget(_hash(env, ONCE), "skipped") or 0) == len(gap)


def test_unknown_keys_and_missing_modules_are_one_line_errors(env: Env) -> None:
    for command in ("pause", "resume", "run"):
        out = _cli(env, command, "tests.support.sched_jobs.Nope")
        assert out.returncode == 2, out
        [line] = out.stdout.splitlines()
        assert line.startswith(
            "error: unknown schedule 'tests.support.sched_jobs.Nope' (schedules: "
        )
        assert ONCE in line
    assert env.client.dbsize() == 0  # nothing written for them
    # the modules may also be given before the subcommand
    before = run_cli("schedules", "-A", APP, "pause", ONCE, url=env.url)
    assert before.returncode == 0 and before.stdout.strip() == f"schedule {ONCE} paused"
    no_app = run_cli("schedules", "pause", ONCE, url=env.url)
    assert no_app.returncode == 2 and "-A" in no_app.stderr
    with pytest.raises(UnknownSchedule, match="unknown schedule 'x'"):
        find_schedule(collect([sched_jobs.TickOnce]), "x")


def test_the_table_reads_at_80_columns(env: Env) -> None:
    bound = find_schedule(collect([sched_jobs.TickSkip]), SKIP)
    assert run_now_id(bound) != run_now_id(bound)  # fresh each time
    assert _cli(env, "pause", SKIP).returncode == 0
    out = subprocess.run(
        [sys.executable, "-m", "jobkit", "schedules", "-A", APP, "--redis-url", env.url],
        cwd=REPO_ROOT,
        env=clean_env(COLUMNS="80"),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, out.stdout
    assert "…" not in out.stdout  # nothing cut
    row = next(i for i, line in enumerate(lines) if SKIP in line)
    assert "paused" in lines[row] and "never" in lines[row]
    assert "* * * * * *" in lines[row + 1] and "UTC, misfire skip" in lines[row + 2]
