"""Scheduler lateness benchmark: delayed jobs and cron slots, due time -> job started.

Starts its own redis-server (127.0.0.1, a free port, no persistence), a ``jobkit
scheduler`` and an idle ``jobkit worker -c 2``, each in its own process group, and kills
them all on the way out (also on Ctrl-C, SIGTERM or an error). Run from the repository
root::

    python benchmarks/scheduler.py                 # a table on stdout
    python benchmarks/scheduler.py --delayed 500 --cron-seconds 30 --json

Phases:

1. baseline: delayed jobs without a scheduler, promoted by the worker's own 50 ms tick;
2. delayed jobs with the scheduler: ``dispatch(delay=...)`` with random delays (50 ms ..
   2 s) at random moments, so most arrive while the scheduler sleeps towards a later due
   time; lateness = the job's ``started_at`` - ``due_at`` (both Redis time, ms);
3. cron: every-second schedules (six-field cron); lateness = ``started_at`` - slot, and
   ``created_at`` - slot (the scheduler alone).

This module is also the job module (``-A benchmarks.scheduler``) of the processes it
starts; the classes carry explicit names because the benchmark itself runs as __main__.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python benchmarks/scheduler.py`
    sys.path.insert(0, str(ROOT))

from jobkit import BaseJob, cron  # noqa: E402
from jobkit.backend.store import Store  # noqa: E402

QUEUE = "bench-sched"
CRON_SCHEDULES = 3


class Delayed(BaseJob):
    """A no-op dispatched with a delay."""

    name = "bench.sched.Delayed"
    queue = QUEUE

    def perform(self) -> None:
        return None


class EverySecond(BaseJob):
    """No-op cron jobs, several every-second schedules."""

    name = "bench.sched.EverySecond"
    queue = QUEUE
    schedules = tuple(cron("* * * * * *", name=f"s{i}") for i in range(CRON_SCHEDULES))

    def perform(self) -> None:
        return None


def log(message: str) -> None:
    """Progress on stderr; stdout holds only the figures."""
    print(message, file=sys.stderr, flush=True)


class Processes:
    """jobkit processes, each leading its own process group."""

    def __init__(self, url: str, log_dir: Path) -> None:
        self.url = url
        self.log_dir = log_dir
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBKIT_")}
        env["JOBKIT_REDIS_URL"] = self.url
        path = self.log_dir / f"{args[0]}-{len(self.running)}.log"
        with path.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jobkit", *args, "-A", "benchmarks.scheduler",
                 "--log-level", "WARNING"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.running):
            self.stop(proc)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def started_lateness(store: Store, ids: list[str], timeout: float) -> list[float]:
    """ms from due to started for each job, waiting until all have started."""
    deadline = time.monotonic() + timeout
    while True:
        pipe = store.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(store.keys.job(job_id), "due_at", "created_at", "started_at")
        rows = pipe.execute()
        if all(r[2] for r in rows) or time.monotonic() > deadline:
            # no due_at: the job was queued as it was created, so due then
            return [float(int(s) - int(d or c)) for d, c, s in rows if (d or c) and s]
        time.sleep(0.2)


def delayed_phase(store: Store, count: int, rng: random.Random) -> list[float]:
    ids = []
    for _ in range(count):
        delay = rng.uniform(0.05, 2.0)
        ids.append(Delayed.dispatch(delay=delay, store=store).id)
        time.sleep(rng.uniform(0.0, 0.04))
    return started_lateness(store, ids, timeout=30)


def cron_phase(store: Store, seconds: float) -> tuple[list[float], list[float]]:
    started = time.time()
    time.sleep(seconds)
    prefix = store.keys.job("cron:")
    ids = [
        k.removeprefix(store.keys.job("")) for k in store.redis.scan_iter(prefix + "*", count=1000)
    ]
    fields: list[str] = []
    created: list[float] = []
    pipe = store.redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(store.keys.job(job_id), "due_at", "created_at")
    for job_id, (due, made) in zip(ids, pipe.execute(), strict=True):
        due = due or made  # fired right at its slot: due when created
        if int(due) / 1000 >= started:  # slots of this phase only
            fields.append(job_id)
            created.append(float(int(made) - int(due)))
    return started_lateness(store, fields, timeout=10), created


def summary(name: str, values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")

    return {
        "phase": name,
        "n": len(values),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": ordered[-1] if ordered else float("nan"),
        "mean_ms": round(statistics.fmean(values), 2) if values else float("nan"),
    }


def _on_term(signum: int, frame: types.FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delayed", type=int, default=300, help="delayed jobs per phase")
    parser.add_argument("--cron-seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_term)

    import redis

    from tests.support.redis_server import RedisServer

    rows = []
    with RedisServer() as server, tempfile.TemporaryDirectory(prefix="jk-bench-") as tmp:
        procs = Processes(server.url, Path(tmp))
        store = Store(redis.Redis.from_url(server.url, decode_responses=True))
        try:
            log(f"redis-server on {server.url}; logs in {tmp}")
            procs.start("worker", "-q", QUEUE, "-c", "2")
            wait_for(lambda: store.redis.zcard(store.keys.workers) > 0, 60, "the worker")

            log(f"phase 1: {opts.delayed} delayed jobs, worker only (no scheduler)")
            rows.append(
                summary(
                    "delayed, worker tick only",
                    delayed_phase(store, opts.delayed, random.Random(opts.seed)),
                )
            )

            scheduler = procs.start("scheduler")
            key = store.keys.schedule("bench.sched.EverySecond#s0")
            wait_for(lambda: store.redis.hexists(key, "next_slot"), 60, "the scheduler")
            log(f"phase 2: {opts.delayed} delayed jobs, scheduler + idle worker")
            rows.append(
                summary(
                    "delayed, with scheduler",
                    delayed_phase(store, opts.delayed, random.Random(opts.seed)),
                )
            )

            log(f"phase 3: {CRON_SCHEDULES} every-second schedules for {opts.cron_seconds:g}s")
            started, created = cron_phase(store, opts.cron_seconds)
            rows.append(summary("cron slot -> job started", started))
            rows.append(summary("cron slot -> job enqueued", created))
            procs.stop(scheduler)
        finally:
            procs.stop_all()
            store.redis.close()
    if opts.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'phase':<30} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for r in rows:
            print(
                f"{r['phase']:<30} {r['n']:>5} {r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f} "
                f"{r['max_ms']:>8.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
