"""Whether the archiver keeps up with a fleet that runs flat out, for a while.

    python benchmarks/archive_sustained.py [--rate 4000] [--seconds 20] [--runs 1]
                                           [--archivers 1] [--no-postgres]

Starts its own redis-server (and, unless ``--no-postgres``, a PostgreSQL server). For
each mode in turn (no archiver, archivers into SQLite, into PostgreSQL): starts
``--archivers`` archiver processes, one ``jobkit worker -c 2 --prefetch 16`` and a
producer process that dispatches ``--rate`` jobs a second (a batch every 10 ms) for
``--seconds``, all on this machine. Every half second it samples the jobs done and the
archive's lag (events written to the streams and not archived yet, as ``jobkit info``
shows it). Prints per mode: the rate the jobs were dispatched and done at, and the
archive's lag: its median and largest sample, the last sample before the producer
stopped, and how long after the last job the archive held every job.
A lag that stays flat over the run is an archiver that keeps up; one that grows with
time is one that falls behind.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as `python benchmarks/archive_sustained.py`
    sys.path.insert(0, str(ROOT))

from benchmarks.archive_cost import (  # noqa: E402
    archived,
    each_mode,
    settle,
    succeeded_in_redis,
    wait,
)
from benchmarks.bench_jobs import QUEUE, Stamp  # noqa: E402
from benchmarks.compare import Workers  # noqa: E402
from benchmarks.procs import prepare  # noqa: E402
from jobkit import configure, get_store  # noqa: E402
from jobkit.backend.archive_feed import ArchiveFeed  # noqa: E402

CPU_PARTS = ("worker", "producer", "redis", "archiver", "postgres")
SAMPLE = 0.5  # seconds between samples
TICK = 0.01  # seconds between the producer's batches


def produce(rate: int, seconds: float) -> None:
    """The producer process: ``rate`` jobs a second for ``seconds``, a batch per tick."""
    configure()
    per_tick = max(1, round(rate * TICK))
    began = time.monotonic()
    ticks = 0
    while time.monotonic() - began < seconds:
        Stamp.dispatch_many([{}] * per_tick)
        ticks += 1
        ahead = began + ticks * TICK - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    get_store().redis.set("bench:producer_cpu", repr(time.process_time()))
    get_store().redis.rpush("bench:produced", ticks * per_tick)


def lag_events() -> int:
    """Events in the streams not archived yet, over every queue (0 before a group)."""
    return sum(lag.behind for lag in ArchiveFeed(get_store(), "bench").lag().values())


def redis_cpu() -> float:
    """CPU seconds the redis-server has used (INFO cpu, all its threads)."""
    info = get_store().redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def postgres_cpu() -> float:
    """CPU seconds the PostgreSQL processes alive now have used."""
    total = 0.0
    for proc in psutil.process_iter(["name", "cpu_times"]):
        if proc.info["name"] == "postgres" and proc.info["cpu_times"] is not None:
            total += proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return total


def one_run(mode: str, history: str | None, args: argparse.Namespace, env: dict[str, str],
            logs: Path) -> dict[str, Any]:  # fmt: skip
    store = get_store()
    store.redis.flushall()
    archivers = Workers(logs, f"{mode}-archiver-{time.monotonic_ns()}")
    fleet = Workers(logs, f"{mode}-worker-{time.monotonic_ns()}")
    feeder = Workers(logs, f"{mode}-producer-{time.monotonic_ns()}")
    with ExitStack() as stop:
        stop.callback(settle)  # last: once every group below is killed
        for group in (archivers, fleet, feeder):
            stop.callback(group.kill)
        if history is not None:
            archivers.start([[sys.executable, "-m", "jobkit", "archiver"]] * args.archivers,
                            {**env, "JOBKIT_HISTORY_URL": history})  # fmt: skip
            wait(lambda: archivers.log_tails().count("events into") >= args.archivers,
                 "the archivers to start", archivers)  # fmt: skip
        redis_before, pg_before = redis_cpu(), postgres_cpu()
        worker = [sys.executable, "-m", "jobkit", "worker", "-A", "benchmarks.bench_jobs",
                  "-q", QUEUE, "-c", "2", "--prefetch", "16", "--no-log-jobs"]  # fmt: skip
        fleet.start([worker], env)
        producer = [sys.executable, str(Path(__file__).resolve()), "--produce",
                    "--rate", str(args.rate), "--seconds", str(args.seconds)]  # fmt: skip
        began = time.perf_counter()
        feeder.start([producer], env)
        lags: list[int] = []
        while not store.redis.llen("bench:produced"):
            fleet.check()
            archivers.check()
            if feeder.procs[0].poll() not in (None, 0):
                feeder.check()
            time.sleep(SAMPLE)
            if history is not None:
                lags.append(lag_events())
        produced = int(store.redis.lindex("bench:produced", 0) or 0)
        done = wait(lambda: succeeded_in_redis() >= produced, "the jobs", fleet)
        out: dict[str, Any] = {
            "dispatched_per_s": produced / args.seconds,
            "per_s": produced / (done - began),
            "worker_us": fleet.cpu_seconds() / produced * 1e6,
            "producer_us": float(store.redis.get("bench:producer_cpu") or 0) / produced * 1e6,
        }
        if history is not None:
            # events trimmed unarchived (an archiver far behind the streams' cap) never
            # arrive: the archiver says LOST, and the run reports it instead of waiting
            rows = wait(lambda: archived(history) >= produced or "LOST" in archivers.log_tails(),
                        "the archive", archivers)  # fmt: skip
            lost = "LOST" in archivers.log_tails()
            out.update(
                lag_median=statistics.median(lags), lag_max=max(lags), lag_last=lags[-1],
                archive_after_s=float("nan") if lost else rows - done, lost=float(lost),
                archiver_us=archivers.cpu_seconds() / produced * 1e6,
            )  # fmt: skip
        out["redis_us"] = (redis_cpu() - redis_before) / produced * 1e6
        out["postgres_us"] = (postgres_cpu() - pg_before) / produced * 1e6
        return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--archivers", type=int, default=1, help="archiver processes")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--produce", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.produce:
        produce(args.rate, args.seconds)
        return 0
    prepare()
    results = each_mode(
        args.runs,
        not args.no_postgres,
        lambda mode, history, env, folder: one_run(mode, history, args, env, folder),
    )
    print(f"{args.rate:,} jobs/s offered for {args.seconds:.0f} s, {args.archivers} "
          f"archiver(s), median of {args.runs} run(s) per mode")  # fmt: skip
    print(f"{'mode':<12}{'dispatched/s':>13}{'done/s':>8}{'lag median':>12}{'lag max':>10}"
          f"{'lag last':>10}{'archive done after':>20}")  # fmt: skip
    for mode, runs in results.items():
        m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        if "lag_max" not in m:
            print(f"{mode:<12}{m['dispatched_per_s']:>13,.0f}{m['per_s']:>8,.0f}")
            continue
        print(f"{mode:<12}{m['dispatched_per_s']:>13,.0f}{m['per_s']:>8,.0f}{m['lag_median']:>12,.0f}{m['lag_max']:>10,.0f}"
              f"{m['lag_last']:>10,.0f}{m['archive_after_s']:>18.2f} s"
              f"{'  events LOST (trimmed unarchived)' if m['lost'] else ''}")  # fmt: skip
    print("CPU per job, µs (the archiver's and the databases' until the archive held every job)")
    print(f"{'mode':<12}" + "".join(f"{part:>10}" for part in CPU_PARTS))
    for mode, runs in results.items():
        m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{mode:<12}" + "".join(f"{m.get(f'{p}_us', 0):>10.0f}" for p in CPU_PARTS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
