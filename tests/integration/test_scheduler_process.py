"""The `jobkit scheduler` process against a real redis-server: exactly one job per cron slot
with two schedulers, misfire policies after a SIGKILL, delayed jobs on time, the CLI."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis

from jobkit.backend.keys import Keys
from jobkit.backend.store import Store
from tests.support import sched_jobs
from tests.support.redis_server import RedisServer
from tests.support.sched_jobs import CRON_QUEUE

REPO_ROOT = Path(__file__).resolve().parents[2]
KEYS = Keys("jobkit")
ONCE, ALL, SKIP = (
    "tests.support.sched_jobs.TickOnce",
    "tests.support.sched_jobs.TickAll",
    "tests.support.sched_jobs.TickSkip#eu",
)


@dataclass
class SchedEnv:
    """A clean database on the module's redis-server."""

    url: str
    client: redis.Redis
    store: Store


@pytest.fixture(scope="module")
def sched_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def sched_env(sched_server: RedisServer) -> Iterator[SchedEnv]:
    client = sched_server.client(decode_responses=True)
    client.flushall()
    store = Store(redis.Redis.from_url(sched_server.url, decode_responses=True))
    try:
        yield SchedEnv(sched_server.url, client, store)
    finally:
        store.redis.close()
        client.close()


class Proc:
    """A jobkit process in its own process group, logging to a file."""

    def __init__(self, args: list[str], url: str, log: Path) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBKIT_")}
        env["JOBKIT_REDIS_URL"] = url
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "jobkit", *args],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, and the exit code."""
        self.signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


StartProc = Callable[..., Proc]


@pytest.fixture
def sched_procs(tmp_path: Path, sched_env: SchedEnv) -> Iterator[StartProc]:
    started: list[Proc] = []

    def start(*args: str) -> Proc:
        proc = Proc(list(args), sched_env.url, tmp_path / f"proc{len(started)}.log")
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(5)


def start_scheduler(start: StartProc) -> Proc:
    return start("scheduler", "-A", "tests.support.sched_jobs")


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


def cron_jobs(env: SchedEnv, key: str) -> dict[int, dict[str, str]]:
    """Slot -> job hash of every job schedule ``key`` created."""
    prefix = KEYS.job(f"{CRON_QUEUE}:cron:{key}:")
    out = {}
    for k in env.client.scan_iter(prefix + "*", count=1000):
        out[int(k.removeprefix(prefix))] = env.client.hgetall(k)
    return out


def fired_lines(procs: list[Proc], key: str) -> list[int]:
    """Slots each scheduler log says it enqueued, from every log."""
    pattern = re.compile(
        rf"schedule {re.escape(key)}: fired (?:catch-up )?slot \S+ as "
        rf"{CRON_QUEUE}:cron:{re.escape(key)}:(\d+)"
    )
    return sorted(int(m) for p in procs for m in pattern.findall(p.text()))


def lateness(job: dict[str, str]) -> float:
    """Seconds between the slot and the job's creation (both Redis time); a job fired
    in the very millisecond of its slot stores no due_at (see create_job in _lib.lua)."""
    return (int(job["created_at"]) - int(job.get("due_at", job["created_at"]))) / 1000


def test_two_schedulers_enqueue_each_slot_exactly_once(
    sched_env: SchedEnv, sched_procs: StartProc
) -> None:
    a, b = start_scheduler(sched_procs), start_scheduler(sched_procs)
    time.sleep(10)
    assert a.stop() == 0
    assert b.stop() == 0

    for key in (ONCE, ALL, SKIP):
        jobs = cron_jobs(sched_env, key)
        slots = sorted(jobs)
        assert len(slots) >= 8, (key, a.text(), b.text())
        assert slots == list(range(slots[0], slots[-1] + 1)), f"{key}: a slot is missing"
        # each slot was enqueued by exactly one of the two processes
        assert fired_lines([a, b], key) == slots, key
        state = sched_env.client.hgetall(KEYS.shard(CRON_QUEUE).schedule(key))
        assert int(state["fired"]) == len(slots)
        assert int(state["cursor"]) == slots[-1]
        # the first slot may be up to a second old when the first scheduler starts
        assert max(lateness(jobs[s]) for s in slots[1:]) < 0.5, key
    queue = sched_env.client.zcard(KEYS.queue(sched_jobs.CRON_QUEUE))
    assert queue == sum(len(cron_jobs(sched_env, k)) for k in (ONCE, ALL, SKIP))
    for proc in (a, b):
        assert "scheduler stopped" in proc.text()
        assert "Traceback" not in proc.text()


def test_killed_scheduler_restarted_applies_the_misfire_policy(
    sched_env: SchedEnv, sched_procs: StartProc
) -> None:
    first = start_scheduler(sched_procs)
    wait_until(lambda: len(cron_jobs(sched_env, SKIP)) >= 2, 15, "first slots")
    first.signal(signal.SIGKILL)
    first.popen.wait(5)
    killed_at = time.time()
    time.sleep(4)  # the every-second schedules miss ~4 slots (grace is 1 s)
    second = start_scheduler(sched_procs)
    wait_until(lambda: max(cron_jobs(sched_env, SKIP)) > killed_at + 6, 15, "later slots")
    assert second.stop() == 0

    all_jobs = cron_jobs(sched_env, ALL)
    slots = sorted(all_jobs)
    assert slots == list(range(slots[0], slots[-1] + 1)), "misfire=all fires every slot"
    assert sum(lateness(j) > 1 for j in all_jobs.values()) >= 2

    once_jobs = cron_jobs(sched_env, ONCE)
    catch_ups = [s for s, j in once_jobs.items() if lateness(j) > 1]
    assert len(catch_ups) == 1, "misfire=once: one catch-up run"
    gap = set(range(min(once_jobs), max(once_jobs))) - set(once_jobs)
    assert len(gap) >= 2 and max(gap) < catch_ups[0]

    skip_jobs = cron_jobs(sched_env, SKIP)
    assert all(lateness(j) <= 1 for j in skip_jobs.values()), "misfire=skip: no catch-up"
    skip_gap = set(range(min(skip_jobs), max(skip_jobs))) - set(skip_jobs)
    assert len(skip_gap) >= 3
    assert (
        int(sched_env.client.hget(KEYS.shard(CRON_QUEUE).schedule(SKIP), "skipped") or 0)
        >= len(skip_gap) - 1
    )
    assert "catch-up" in second.text()


def _dispatch_delays(env: SchedEnv, delays: list[float]) -> list[str]:
    return [sched_jobs.Stamp.dispatch(delay=d, store=env.store).id for d in delays]


def _scheduler_ready(env: SchedEnv) -> bool:
    # the first round writes every schedule's next slot, after subscribing to wake-ups
    return all(
        env.client.hexists(KEYS.shard(CRON_QUEUE).schedule(k), "next_slot")
        for k in (ONCE, ALL, SKIP)
    )


def test_delayed_jobs_are_promoted_on_time_by_the_scheduler(
    sched_env: SchedEnv, sched_procs: StartProc
) -> None:
    start_scheduler(sched_procs)  # no worker: only the scheduler promotes
    wait_until(lambda: _scheduler_ready(sched_env), 15, "scheduler ready")
    # an entry due far later first, so the scheduler sleeps long; then earlier ones must
    # wake it (pub/sub) or they would be late by seconds
    [far] = _dispatch_delays(sched_env, [30.0])
    time.sleep(0.3)
    ids = _dispatch_delays(sched_env, [0.4, 0.25, 0.7, 0.55, 1.0, 0.1])
    promoted: dict[str, float] = {}
    deadline = time.monotonic() + 5
    while len(promoted) < len(ids) and time.monotonic() < deadline:
        for job_id in ids:
            if job_id not in promoted:
                status = sched_env.client.hget(KEYS.job(job_id), "status")
                if status == "queued":
                    promoted[job_id] = time.time()
        time.sleep(0.002)
    assert len(promoted) == len(ids)
    for job_id, seen in promoted.items():
        due = int(sched_env.client.hget(KEYS.job(job_id), "due_at") or 0) / 1000
        assert -0.001 <= seen - due < 0.1, (job_id, seen - due)
    assert sched_env.client.hget(KEYS.job(far), "status") == "scheduled"


def test_delayed_jobs_start_on_time_with_an_idle_worker(
    sched_env: SchedEnv, sched_procs: StartProc
) -> None:
    start_scheduler(sched_procs)
    sched_procs(
        "worker",
        "-A",
        "tests.support.sched_jobs",
        "-q",
        "default",
        "-c",
        "1",
        "--lease",
        "2",
        "--heartbeat",
        "0.5",
    )
    wait_until(lambda: _scheduler_ready(sched_env), 15, "scheduler ready")
    wait_until(lambda: sched_env.client.zcard(KEYS.workers) > 0, 15, "worker ready")
    time.sleep(0.3)
    handles = [
        sched_jobs.Stamp.dispatch(delay=d, store=sched_env.store) for d in (0.3, 0.6, 0.9, 1.2)
    ]
    late = []
    for h in handles:
        h.result(timeout=10)
        rec = h.record
        assert rec is not None and rec.due_at and rec.started_at
        late.append((rec.started_at - rec.due_at).total_seconds())
    assert max(late) < 0.15, late


def test_schedules_command(sched_env: SchedEnv, sched_procs: StartProc) -> None:
    proc = start_scheduler(sched_procs)
    wait_until(lambda: len(cron_jobs(sched_env, ONCE)) >= 2, 15, "two slots")
    assert proc.stop() == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBKIT_")}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobkit",
            "schedules",
            "-A",
            "tests.support.sched_jobs",
            "--json",
            "--redis-url",
            sched_env.url,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    rows = {r["schedule"]: r for r in orjson.loads(out.stdout)}
    assert set(rows) == {ONCE, ALL, SKIP}
    once = rows[ONCE]
    last = max(cron_jobs(sched_env, ONCE))
    assert once["expr"] == "* * * * * *" and once["misfire"] == "once"
    assert once["last_job"] == f"{CRON_QUEUE}:cron:{ONCE}:{last}"
    assert once["last_status"] == "queued"
    assert len(once["next_runs"]) == 3
    assert rows[SKIP]["params"] == {"region": "eu"}
    table = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobkit",
            "schedules",
            "-A",
            "tests.support.sched_jobs",
            "--redis-url",
            sched_env.url,
        ],
        cwd=REPO_ROOT,
        env={**env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "TickSkip#eu" in table.stdout and "queued" in table.stdout
