"""Throughput benchmark: enqueue rates, worker processing rates, idle pickup latency.

Starts its own redis-server (127.0.0.1, a free port, no persistence), runs every phase
against it and stops it at the end; every process it starts runs in its own process group,
killed on the way out (also on Ctrl-C, SIGTERM or an error).

Run from the repository root::

    python -m benchmarks.throughput                # N=10,000, one run, a table
    python -m benchmarks.throughput --jobs 50000 --runs 3 --prefetch 1 --json

Phases, each on an emptied database:

1. ``dispatch()`` N times, one job per call;
2. ``dispatch_many()`` for N jobs, 1,000 per call, then all N in one call;
3. the reference: N sequential redis-py ``INCR`` round trips, and dispatch's ratio to it;
4. processing: N no-op jobs (one ``INCR`` each) queued first, then ``jobkit worker -c K``
   spawned; timed from the spawn until Redis has recorded the last job done. Also the worker
   tree's CPU time per job (supervisor plus children, user+sys), redis-server's CPU per job,
   a child's peak RSS, and how many jobs were leased twice (a lapsed lease: a stall);
5. idle pickup latency: with an idle ``-c 1`` worker, jobs dispatched one at a time, each
   returning the ``time.time()`` its ``perform()`` started.

jobkit's Lua scripts are loaded into the fresh server first, as a long-lived Redis would
have them cached. Without ``--prefetch`` workers run with their own default. The last lines
give the CPU that other processes used meanwhile: figures taken on a busy machine say so.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as `python benchmarks/throughput.py`
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_jobs import COUNTER_KEY, DONE_KEY, FIRST_KEY, QUEUE, Incr, Stamp  # noqa: E402
from benchmarks.procs import (  # noqa: E402
    log,
    peak_rss_bytes,
    percentile,
    prepare,
    timed,
)
from jobkit import JobTimeout, configure, get_store  # noqa: E402
from jobkit.backend import scripts  # noqa: E402
from jobkit.cli.worker import worker as worker_command  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

BATCH = 1000  # jobs per dispatch_many() call in the batched variant
LATENCY_JOBS = 500
LATENCY_WARMUP = 20
IDLE_GAP = 0.005  # pause between latency jobs, so the worker is back in its blocking wait
WORKER_START_TIMEOUT = 60.0
WORKER_LOG_TAIL = 30


# -- processes ------------------------------------------------------------------------------


class Workers:
    """`jobkit worker` processes, each the leader of its own process group."""

    def __init__(self, url: str, log_dir: Path) -> None:
        self.url = url
        self.log_dir = log_dir
        self.running: dict[int, subprocess.Popen[bytes]] = {}
        self.logs: dict[int, Path] = {}  # pid -> that worker's stdout+stderr

    def spawn(self, concurrency: int, prefetch: int | None, *extra: str) -> subprocess.Popen[bytes]:
        """Start `jobkit worker -c concurrency` (``extra``: more of its options)."""
        args = [
            sys.executable,
            "-m",
            "jobkit",
            "worker",
            "-A",
            "benchmarks.bench_jobs",
            "-q",
            QUEUE,
            "-c",
            str(concurrency),
            "--log-level",
            "WARNING",
        ]
        if prefetch is not None:
            args += ["--prefetch", str(prefetch)]
        args += extra
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBKIT_")}
        env["JOBKIT_REDIS_URL"] = self.url
        path = self.log_dir / f"worker-{len(self.logs) + 1}.log"
        with path.open("wb") as out:
            proc = subprocess.Popen(
                args,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running[proc.pid] = proc
        self.logs[proc.pid] = path
        return proc

    def log_tail(self, proc: subprocess.Popen[bytes]) -> str:
        try:
            lines = self.logs[proc.pid].read_text(errors="replace").splitlines()
        except (KeyError, OSError):
            return "(no worker log)"
        return "\n".join(lines[-WORKER_LOG_TAIL:]) or "(empty worker log)"

    def failing(self, proc: subprocess.Popen[bytes]) -> bool:
        """Whether the worker exited or logged an error (say, children that keep crashing:
        the supervisor replaces them, so the process alone would look healthy)."""
        if proc.poll() is not None:
            return True
        try:
            text = self.logs[proc.pid].read_text(errors="replace")
        except (KeyError, OSError):
            return False
        return " ERROR " in text or "Traceback" in text

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker's whole process group: supervisor and children."""
        self.running.pop(proc.pid, None)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def kill_all(self) -> None:
        for proc in list(self.running.values()):
            self.kill(proc)


def tree_cpu_seconds(pid: int) -> float:
    """User+sys CPU seconds of ``pid`` and its live descendants (plus children it reaped)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        reaped = root.cpu_times()
        total = reaped.children_user + reaped.children_system
    except psutil.Error:
        return 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


class CpuWindow:
    """Flags a disturbed measurement: CPU the machine spent outside the benchmark's own
    processes (this one, redis-server, the workers) while a phase ran, in cores."""

    def __init__(self, redis_pid: int) -> None:
        self.redis_pid = redis_pid
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        machine = psutil.cpu_times()
        own = psutil.Process().cpu_times()
        return (
            time.monotonic(),
            machine.user + machine.nice + machine.system,
            own.user + own.system + tree_cpu_seconds(self.redis_pid),
        )

    def other_cores(self, worker_cpu: float = 0.0) -> float:
        """Average load of other processes so far; ``worker_cpu``: the workers' CPU."""
        wall, busy, own = (b - a for a, b in zip(self.start, self._sample(), strict=True))
        return max(0.0, (busy - own - worker_cpu) / max(wall, 1e-9))


def child_pids(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children()]
    except psutil.Error:
        return []


# -- phases ---------------------------------------------------------------------------------


@dataclass
class Bench:
    """What every phase needs."""

    server: RedisServer
    client: redis.Redis
    workers: Workers
    jobs: int
    prefetch: int | None  # None: the worker's default
    latency_jobs: int
    redis_pid: int

    def flush(self) -> None:
        self.client.flushall()

    def wait_for(self, key: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
        """Block until a value is pushed on ``key``; fail fast if the worker died."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                fail(f"no {key!r} within {timeout:.0f}s", self.workers.log_tail(proc))
            got = self.client.blpop([key], timeout=min(1.0, max(remaining, 0.01)))
            if got is not None:
                return float(got[1])
            if self.workers.failing(proc):
                fail(f"worker failed (exit code {proc.poll()})", self.workers.log_tail(proc))

    def succeeded(self) -> int:
        raw = self.client.hget(get_store().keys.shard(QUEUE).stats, "succeeded")
        return int(raw or 0)

    def leased_again(self) -> int:
        """Jobs claimed more than once: a lease lapsed and the reaper gave it back."""
        shard = get_store().keys.shard(QUEUE)
        ids = [
            key.removeprefix(shard.job(""))
            for key in self.client.scan_iter(match=shard.job("*"), count=1000)
        ]
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(shard.job(job_id), "attempts")
        return sum(1 for attempts in pipe.execute() if int(attempts or 0) > 1)


def fail(message: str, detail: str = "") -> NoReturn:
    raise RuntimeError(f"{message}\n{detail}".rstrip())


# What the benchmark itself sends while it waits: left out of the Redis commands a job
# costs (the no-op job's own INCRBY and its two RPUSH markers are taken off where jobs run).
NOT_JOBKIT = frozenset({"blpop", "info", "ping", "flushall"})


def redis_commands(client: redis.Redis) -> int:
    """Commands Redis has run, those inside scripts included (INFO commandstats), but
    the benchmark's own (NOT_JOBKIT)."""
    stats = client.info("commandstats")
    return sum(
        int(v["calls"])
        for k, v in stats.items()
        if k.removeprefix("cmdstat_").split("|")[0] not in NOT_JOBKIT
    )


def bench_enqueue(b: Bench) -> dict[str, float]:
    n = b.jobs
    params = [{"total": n}] * n
    batch = min(BATCH, n)

    def one_at_a_time() -> None:
        for _ in range(n):
            Incr.dispatch(total=n)

    def batched() -> None:
        for start in range(0, n, batch):
            Incr.dispatch_many(params[start : start + batch])

    def all_at_once() -> None:
        Incr.dispatch_many(params)

    # warm-up: script loading, connection, pydantic's first validations
    for _ in range(100):
        Incr.dispatch(total=n)
    Incr.dispatch_many(params[:batch])

    out: dict[str, float] = {}
    for key, fn in (
        ("dispatch", one_at_a_time),
        ("dispatch_many_batched", batched),
        ("dispatch_many_all", all_at_once),
    ):
        b.flush()
        before = redis_commands(b.client)
        out[f"{key}_jobs_per_s"] = n / timed(fn)
        out[f"{key}_redis_cmds_per_job"] = (redis_commands(b.client) - before) / n
        if b.client.zcard(get_store().keys.queue(QUEUE)) != n:
            fail(f"{key}: the queue does not hold {n} jobs")
    b.flush()
    return out


def bench_reference(b: Bench) -> dict[str, float]:
    """Sequential round trips of a bare redis-py client, as jobkit's own connection is made."""
    r = redis.Redis.from_url(b.server.url, decode_responses=True)
    try:
        for _ in range(100):
            r.incr("bench:reference")

        def loop() -> None:
            for _ in range(b.jobs):
                r.incr("bench:reference")

        return {"redis_incr_ops_per_s": b.jobs / timed(loop)}
    finally:
        r.close()


def bench_processing(b: Bench, concurrency: int) -> dict[str, float]:
    n = b.jobs
    b.flush()
    Incr.dispatch_many([{"total": n}] * n)
    timeout = WORKER_START_TIMEOUT + n / 100
    window = CpuWindow(b.redis_pid)
    redis_cpu_before = tree_cpu_seconds(b.redis_pid)
    commands_before = redis_commands(b.client)
    spawned_wall = time.time()
    spawned = time.perf_counter()
    proc = b.workers.spawn(concurrency, b.prefetch)
    try:
        first_wall = b.wait_for(FIRST_KEY, proc, timeout)
        cpu_at_first = tree_cpu_seconds(proc.pid)
        b.wait_for(DONE_KEY, proc, timeout)
        commands = redis_commands(b.client) - commands_before - n - 2  # the jobs' own
        # the last INCR ran; wait (briefly) until every job's completion is recorded too
        deadline = time.monotonic() + 10
        while (done := b.succeeded()) < n:
            if time.monotonic() > deadline:
                fail(f"only {done} of {n} jobs succeeded", b.workers.log_tail(proc))
            time.sleep(0.0005)
        elapsed = time.perf_counter() - spawned
        end_wall = time.time()
        cpu = tree_cpu_seconds(proc.pid)
        redis_cpu = tree_cpu_seconds(b.redis_pid) - redis_cpu_before
        rss = max((peak_rss_bytes(pid) for pid in child_pids(proc.pid)), default=0)
        other = window.other_cores(cpu)
    finally:
        b.workers.kill(proc)
    if int(b.client.get(COUNTER_KEY) or 0) != n:
        fail(f"-c {concurrency}: the counter is not {n}: some job ran twice")
    leased_again = b.leased_again()
    if leased_again:
        log(
            f"  warning: -c {concurrency}: {leased_again} job(s) were leased twice (a lease "
            "lapsed): this figure includes waiting for lease expiry"
        )
    steady = max(end_wall - first_wall, 1e-9)
    k = f"c{concurrency}"
    return {
        f"{k}_jobs_per_s": n / elapsed,
        f"{k}_steady_jobs_per_s": (n - 1) / steady if n > 1 else 0.0,
        f"{k}_startup_s": first_wall - spawned_wall,
        f"{k}_cpu_us_per_job": cpu / n * 1e6,
        f"{k}_steady_cpu_us_per_job": (cpu - cpu_at_first) / max(n - 1, 1) * 1e6,
        f"{k}_redis_cpu_us_per_job": redis_cpu / n * 1e6,
        f"{k}_redis_cmds_per_job": commands / n,
        f"{k}_child_peak_rss_mb": rss / 2**20,
        f"{k}_leased_twice": float(leased_again),
        f"other_cpu_cores_{k}": other,
    }


def bench_latency(b: Bench) -> dict[str, float]:
    b.flush()
    window = CpuWindow(b.redis_pid)
    proc = b.workers.spawn(1, b.prefetch)
    try:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        first = Stamp.dispatch()
        while True:  # the first job waits for the worker to start
            try:
                first.result(timeout=1)
                break
            except JobTimeout as exc:
                if b.workers.failing(proc) or time.monotonic() > deadline:
                    fail(f"latency worker did not start: {exc}", b.workers.log_tail(proc))
        for _ in range(LATENCY_WARMUP):
            Stamp.dispatch().result(timeout=5)
        pickup: list[float] = []
        round_trip: list[float] = []
        for _ in range(b.latency_jobs):
            time.sleep(IDLE_GAP)
            sent = time.time()
            handle = Stamp.dispatch()
            started = float(handle.result(timeout=5))
            returned = time.time()
            pickup.append((started - sent) * 1000)
            round_trip.append((returned - sent) * 1000)
        other = window.other_cores(tree_cpu_seconds(proc.pid))
    finally:
        b.workers.kill(proc)
    pickup.sort()
    round_trip.sort()
    return {
        "latency_p50_ms": percentile(pickup, 50),
        "latency_p99_ms": percentile(pickup, 99),
        "latency_max_ms": pickup[-1],
        "round_trip_p50_ms": percentile(round_trip, 50),
        "round_trip_p99_ms": percentile(round_trip, 99),
        "other_cpu_cores_latency": other,
    }


def one_run(b: Bench) -> dict[str, float]:
    figures: dict[str, float] = {}
    window = CpuWindow(b.redis_pid)
    log(f"  enqueue: dispatch() x{b.jobs:,}, dispatch_many() ...")
    figures.update(bench_enqueue(b))
    log(f"  reference: redis-py INCR x{b.jobs:,} ...")
    figures.update(bench_reference(b))
    figures["other_cpu_cores_enqueue"] = window.other_cores()
    figures["dispatch_to_incr_ratio"] = (
        figures["dispatch_jobs_per_s"] / figures["redis_incr_ops_per_s"]
    )
    for concurrency in (1, 2):
        log(f"  processing: {b.jobs:,} jobs, worker -c {concurrency} ...")
        figures.update(bench_processing(b, concurrency))
    log(f"  idle pickup latency: {b.latency_jobs} jobs, worker -c 1 ...")
    figures.update(bench_latency(b))
    return figures


# -- output ---------------------------------------------------------------------------------


def render(figures: dict[str, float], meta: dict[str, Any]) -> str:
    f = figures

    def rate(value: float) -> str:
        return f"{value:>12,.0f}"

    def micros(per_second: float) -> str:
        return f"{1e6 / per_second:>10,.1f}"

    w = 46
    lines = [
        "jobkit throughput benchmark",
        f"  {meta['jobs']:,} jobs per phase, median of {meta['runs']} run(s), "
        f"worker --prefetch {meta['prefetch']}"
        f"{'' if meta['prefetch_given'] else ' (its default)'}",
        f"  redis-server {meta['redis_version']} on 127.0.0.1 TCP (no persistence), "
        f"Python {meta['python']}, {meta['cpus']} CPUs",
        "",
        f"{'enqueue (one client process)':<{w}}{'jobs/s':>12}{'µs/job':>10}",
    ]
    for label, key in (
        ("  dispatch(), one job per call", "dispatch_jobs_per_s"),
        (
            f"  dispatch_many(), {min(BATCH, meta['jobs']):,} jobs per call",
            "dispatch_many_batched_jobs_per_s",
        ),
        (f"  dispatch_many(), all {meta['jobs']:,} in one call", "dispatch_many_all_jobs_per_s"),
    ):
        lines.append(f"{label:<{w}}{rate(f[key])}{micros(f[key])}")
    lines.append(
        f"{'  Redis commands per job (in scripts too)':<{w}}"
        f"{f['dispatch_redis_cmds_per_job']:>12.2f}"
        f"{f['dispatch_many_batched_redis_cmds_per_job']:>10.2f}"
        "  (one per call, many per call)"
    )
    lines += [
        "",
        f"{'reference':<{w}}{'ops/s':>12}{'µs/op':>10}",
        f"{'  redis-py INCR, sequential round trips':<{w}}"
        f"{rate(f['redis_incr_ops_per_s'])}{micros(f['redis_incr_ops_per_s'])}",
        f"{'  dispatch() rate / INCR rate':<{w}}{f['dispatch_to_incr_ratio']:>12.2f}",
        "",
        f"{'processing (no-op job: one INCR)':<{w}}{'-c 1':>12}{'-c 2':>10}",
    ]
    rows = (
        ("  jobs/s, worker spawn to last job done", "jobs_per_s", ",.0f"),
        ("  jobs/s, first to last job", "steady_jobs_per_s", ",.0f"),
        ("  worker start, spawn to first job (s)", "startup_s", ".2f"),
        ("  worker CPU µs/job, spawn to last job", "cpu_us_per_job", ",.1f"),
        ("  worker CPU µs/job, first to last job", "steady_cpu_us_per_job", ",.1f"),
        ("  redis-server CPU µs/job, spawn to last job", "redis_cpu_us_per_job", ",.1f"),
        ("  Redis commands per job, in scripts too", "redis_cmds_per_job", ".2f"),
        ("  peak RSS of a worker child (MB)", "child_peak_rss_mb", ".1f"),
        ("  jobs leased twice (a lease lapsed)", "leased_twice", ",.0f"),
    )
    for label, key, fmt in rows:
        lines.append(f"{label:<{w}}{f['c1_' + key]:>12{fmt}}{f['c2_' + key]:>10{fmt}}")
    lines += [
        "",
        f"{'idle pickup latency (-c 1, ' + str(meta['latency_jobs']) + ' jobs)':<{w}}"
        f"{'p50 ms':>12}{'p99 ms':>10}{'max ms':>10}",
        f"{'  dispatch to perform() start':<{w}}{f['latency_p50_ms']:>12.2f}"
        f"{f['latency_p99_ms']:>10.2f}{f['latency_max_ms']:>10.2f}",
        f"{'  dispatch to result() returned':<{w}}{f['round_trip_p50_ms']:>12.2f}"
        f"{f['round_trip_p99_ms']:>10.2f}",
        "",
        "CPU load of other processes meanwhile (cores; well above 0 means disturbed figures):",
        f"  enqueue+reference {f['other_cpu_cores_enqueue']:.2f}, "
        f"-c 1 {f['other_cpu_cores_c1']:.2f}, -c 2 {f['other_cpu_cores_c2']:.2f}, "
        f"latency {f['other_cpu_cores_latency']:.2f}",
    ]
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=10_000, help="N jobs per phase")
    parser.add_argument("--runs", type=int, default=1, help="report the median of R runs")
    parser.add_argument(
        "--prefetch",
        type=int,
        default=None,
        help="worker --prefetch (default: the worker's own default)",
    )
    parser.add_argument(
        "--latency-jobs",
        type=int,
        default=LATENCY_JOBS,
        help="jobs timed one at a time for pickup latency",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    for name in ("jobs", "runs", "prefetch", "latency_jobs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prepare()
    with tempfile.TemporaryDirectory(prefix="jobkit-bench-") as tmp, RedisServer() as server:
        os.environ["JOBKIT_REDIS_URL"] = server.url
        configure(redis_url=server.url)
        workers = Workers(server.url, Path(tmp))
        client = server.client(decode_responses=True)
        # A long-lived Redis has jobkit's scripts cached; load them as the first workers
        # on a fresh server would otherwise hit NOSCRIPT on their hot path.
        for name in scripts.NAMES:
            client.script_load(scripts.source(name))
        about = client.info("server")
        version = str(about["redis_version"])
        bench = Bench(
            server,
            client,
            workers,
            args.jobs,
            args.prefetch,
            args.latency_jobs,
            int(about["process_id"]),
        )
        try:
            runs = []
            for run in range(args.runs):
                log(f"run {run + 1}/{args.runs}")
                runs.append(one_run(bench))
        except KeyboardInterrupt:
            log("interrupted")
            return 130
        finally:
            workers.kill_all()
            client.close()
    figures = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    prefetch = args.prefetch
    if prefetch is None:
        prefetch = inspect.signature(worker_command).parameters["prefetch"].default
    meta: dict[str, Any] = {
        "jobs": args.jobs,
        "runs": args.runs,
        "prefetch": prefetch,
        "prefetch_given": args.prefetch is not None,
        "latency_jobs": args.latency_jobs,
        "redis_version": version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps({**meta, **{k: round(v, 3) for k, v in figures.items()}}, indent=2))
    else:
        print(render(figures, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
