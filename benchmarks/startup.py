"""Start-up benchmark: how soon a new `jobkit worker` runs its first job, and how soon a
child that replaces a retired one runs its own.

Starts its own redis-server (127.0.0.1, a free port, no persistence) and stops it at the
end; every process it starts runs in its own process group, killed on the way out (also
on Ctrl-C, SIGTERM or an error). Short by design: a few seconds in all.

Run from the repository root::

    python -m benchmarks.startup                   # 10 spawns, 10 recycled children
    python -m benchmarks.startup --spawns 20 --recycles 20 --json

Phases:

1. import: how long a fresh Python process takes to import what `jobkit worker` imports
   (the command line, the supervisor, the benchmark's job module), beside one importing
   only redis and defining a pydantic model (what the job module itself needs: a floor
   jobkit cannot go under), timed inside the process;
2. spawn to first job: one job queued, then ``jobkit worker -c 1`` spawned; timed from
   the spawn until the job's ``perform()`` ran (it stamps ``time.time()`` in Redis), and
   the worker killed; repeated on an emptied database;
3. recycled child: ``jobkit worker -c 1 --max-jobs-per-child 1`` with jobs queued, each
   stamping its process id and start time; timed from each child's exit (watched through
   a pidfd, Linux) until the next child's job started.

jobkit's Lua scripts are loaded into the fresh server first, as a long-lived Redis would
have them cached. Figures are medians, with the spread; the last line gives the CPU that
other processes used meanwhile: figures taken on a busy machine say so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as `python benchmarks/startup.py`
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from benchmarks.bench_jobs import FIRST_KEY, MARKS_KEY, Incr, Mark  # noqa: E402
from benchmarks.procs import log, prepare  # noqa: E402
from benchmarks.throughput import CpuWindow, Workers, fail  # noqa: E402
from jobkit import configure  # noqa: E402
from jobkit.backend import scripts  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

SPAWNS = 10
RECYCLES = 10
IMPORT_RUNS = 9
WAIT_TIMEOUT = 30.0

# What `jobkit worker -A benchmarks.bench_jobs` imports before its first job, and the part
# of it the job module needs whatever runs it (redis, and a pydantic model of its own).
WORKER_IMPORTS = (
    "import jobkit.cli, jobkit.cli.worker, jobkit.worker.supervisor, benchmarks.bench_jobs"
)
FLOOR_IMPORTS = (
    "import redis\nfrom pydantic import BaseModel\nclass Params(BaseModel):\n    total: int = 0"
)


def pop(client: redis.Redis, key: str, workers: Workers, proc: subprocess.Popen[bytes]) -> str:
    """Block until a value is pushed on ``key``; fail fast if the worker exited."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while time.monotonic() < deadline:
        got = client.blpop([key], timeout=1.0)
        if got is not None:
            return str(got[1])
        if proc.poll() is not None:
            fail(f"worker exited (code {proc.returncode})", workers.log_tail(proc))
    fail(f"nothing on {key!r} within {WAIT_TIMEOUT:.0f}s", workers.log_tail(proc))


def children_cpu() -> float:
    """User+sys CPU seconds of the processes this one started and reaped (the workers'
    supervisors, the import runs; not the workers' children, killed with their parent)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spread(values_ms: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values_ms), "min": min(values_ms), "max": max(values_ms)}


# -- phases ---------------------------------------------------------------------------------


# Runs ``code`` and prints how long it took, in ms: the imports alone, without the
# interpreter's start and exit (its exit tears every module down, tens of ms a worker
# never pays before its first job).
TIMED = (
    "import time\n_t = time.perf_counter()\nexec({code!r})\n"
    "print((time.perf_counter() - _t) * 1000)"
)


def import_ms(code: str) -> float:
    """How long a fresh Python process takes to run ``code``, in ms."""
    done = subprocess.run(
        [sys.executable, "-c", TIMED.format(code=code)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout)


def bench_imports() -> dict[str, float]:
    """Medians of IMPORT_RUNS processes each, taken in turns so that both see the same
    load."""
    worker, floor = [], []
    for _ in range(IMPORT_RUNS):
        worker.append(import_ms(WORKER_IMPORTS))
        floor.append(import_ms(FLOOR_IMPORTS))
    return {
        "import_worker_ms": statistics.median(worker),
        "import_floor_ms": statistics.median(floor),
        "import_jobkit_ms": statistics.median(w - f for w, f in zip(worker, floor, strict=True)),
    }


def bench_first_job(client: redis.Redis, workers: Workers, spawns: int) -> list[float]:
    """Spawn to first job, in ms, one figure per spawn."""
    times = []
    for _ in range(spawns):
        client.flushdb()
        Incr.dispatch()
        spawned = time.time()
        proc = workers.spawn(1, None)
        try:
            ran = float(pop(client, FIRST_KEY, workers, proc))
        finally:
            workers.kill(proc)
        times.append((ran - spawned) * 1000)
    return times


def exit_time(pid: int) -> float | None:
    """``time.time()`` when process ``pid`` exits (None: gone before we looked)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    try:
        if not select.select([fd], [], [], WAIT_TIMEOUT)[0]:
            fail(f"child {pid} did not exit within {WAIT_TIMEOUT:.0f}s")
        return time.time()
    finally:
        os.close(fd)


def bench_recycled(client: redis.Redis, workers: Workers, recycles: int) -> tuple[list[float], int]:
    """Each retired child's exit to the next child's first job, in ms; and how many exits
    were missed (the child gone before the benchmark could watch it)."""
    client.flushdb()
    Mark.dispatch_many([{}] * (recycles + 1))
    proc = workers.spawn(1, None, "--max-jobs-per-child", "1")
    gaps: list[float] = []
    missed = 0
    try:
        pid = int(pop(client, MARKS_KEY, workers, proc).split()[0])
        for _ in range(recycles):
            exited = exit_time(pid)
            next_pid, started = pop(client, MARKS_KEY, workers, proc).split()
            if int(next_pid) == pid:
                detail = workers.log_tail(proc)
                fail(f"child {pid} ran two jobs with --max-jobs-per-child 1", detail)
            if exited is None:
                missed += 1
            else:
                gaps.append((float(started) - exited) * 1000)
            pid = int(next_pid)
    finally:
        workers.kill(proc)
    return gaps, missed


# -- main -----------------------------------------------------------------------------------


def render(f: dict[str, float], meta: dict[str, object]) -> str:
    w = 46
    return "\n".join(
        [
            "jobkit start-up benchmark",
            f"  redis-server {meta['redis_version']} on 127.0.0.1 TCP (no persistence), "
            f"Python {meta['python']}, {meta['cpus']} CPUs",
            "",
            f"{f'import (in a fresh process, median of {IMPORT_RUNS})':<{w + 4}}{'ms':>10}",
            f"{'  what `jobkit worker` imports':<{w + 4}}{f['import_worker_ms']:>10.0f}",
            f"{'  of which redis and pydantic (the floor)':<{w + 4}}{f['import_floor_ms']:>10.0f}",
            f"{'  jobkit own share':<{w + 4}}{f['import_jobkit_ms']:>10.0f}",
            "",
            f"{'':<{w}}{'median ms':>10}{'min':>8}{'max':>8}",
            f"{'spawn to first job (' + str(meta['spawns']) + ' spawns)':<{w}}"
            f"{f['first_job_median_ms']:>10.1f}{f['first_job_min_ms']:>8.1f}"
            f"{f['first_job_max_ms']:>8.1f}",
            f"{'child exit to next child job (' + str(meta['recycles']) + ')':<{w}}"
            f"{f['recycled_median_ms']:>10.1f}{f['recycled_min_ms']:>8.1f}"
            f"{f['recycled_max_ms']:>8.1f}",
            "",
            f"exits missed (child gone before it was watched): {meta['missed']:.0f}; CPU load "
            f"of other processes meanwhile: {f['other_cpu_cores']:.2f} cores "
            "(well above 0 means disturbed figures)",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--spawns", type=int, default=SPAWNS, help="workers started, one by one")
    parser.add_argument(
        "--recycles", type=int, default=RECYCLES, help="children replaced after one job each"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    for name in ("spawns", "recycles"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prepare()
    with tempfile.TemporaryDirectory(prefix="jobkit-bench-") as tmp, RedisServer() as server:
        os.environ["JOBKIT_REDIS_URL"] = server.url
        configure(redis_url=server.url)
        client = server.client(decode_responses=True)
        workers = Workers(server.url, Path(tmp))
        try:
            for name in scripts.NAMES:  # cached, as on a long-lived Redis
                client.script_load(scripts.source(name))
            about = client.info("server")
            window = CpuWindow(int(about["process_id"]))
            reaped = children_cpu()
            log(f"import: {IMPORT_RUNS} processes of each kind ...")
            figures = bench_imports()
            log(f"spawn to first job: {args.spawns} workers ...")
            first = bench_first_job(client, workers, args.spawns)
            log(f"recycled children: {args.recycles} ...")
            gaps, missed = bench_recycled(client, workers, args.recycles)
            figures["other_cpu_cores"] = window.other_cores(children_cpu() - reaped)
        except KeyboardInterrupt:
            log("interrupted")
            return 130
        finally:
            workers.kill_all()
            client.close()
    if not gaps:
        fail("every child exited before the benchmark could watch it")
    figures.update({f"first_job_{k}_ms": v for k, v in spread(first).items()})
    figures.update({f"recycled_{k}_ms": v for k, v in spread(gaps).items()})
    meta: dict[str, object] = {
        "spawns": args.spawns,
        "recycles": args.recycles,
        "missed": missed,
        "redis_version": str(about["redis_version"]),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps({**meta, **{k: round(v, 2) for k, v in figures.items()}}, indent=2))
    else:
        print(render(figures, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
