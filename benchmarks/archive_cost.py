"""What the history archiver costs processing, and how fast it archives under load.

    python benchmarks/archive_cost.py [--jobs 10000] [--runs 3] [--no-postgres] [--json]

Starts its own redis-server (and, unless ``--no-postgres``, a PostgreSQL server), then,
in each of ``--runs`` rounds and for each mode in turn (no archiver, an archiver into
SQLite, an archiver into PostgreSQL): dispatches ``--jobs`` jobs, starts the archiver
(when the mode has one) and one ``jobkit worker -c 2 --prefetch 16 --no-log-jobs``, and
times the worker from its spawn to the last job done; then how long until the archive
holds every job as succeeded. Prints medians per mode: processing jobs/s (and its ratio
to no archiver: the issue's target is under 5 % slower) and the archive's rows/s, from
the worker's spawn to the last row (one row per job, three events each).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as `python benchmarks/archive_cost.py`
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select  # noqa: E402

from benchmarks import compare  # noqa: E402
from benchmarks.bench_jobs import QUEUE, Stamp  # noqa: E402
from benchmarks.compare import BenchError, Workers  # noqa: E402
from benchmarks.procs import log, prepare  # noqa: E402
from jobkit import configure, get_store  # noqa: E402
from jobkit.archive.schema import jobs as jobs_table  # noqa: E402
from tests.support.postgres_server import PostgresServer  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

MODES = ("off", "sqlite", "postgresql")
T = TypeVar("T")
BATCH = 1000
TIMEOUT = 300.0


def succeeded_in_redis() -> int:
    return int(get_store().reads.counts().totals.get("succeeded", 0))


def archived(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = select(func.count()).where(jobs_table.c.status == "succeeded")
            return int(conn.execute(query).scalar_one())
    except Exception:
        return 0
    finally:
        engine.dispose()


def wait(predicate: Any, what: str, workers: Workers | None = None) -> float:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if workers is not None:
            workers.check()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return time.perf_counter()


def one_run(
    mode: str, history: str | None, n: int, env: dict[str, str], logs: Path
) -> dict[str, float]:
    get_store().redis.flushall()
    for i in range(0, n, BATCH):
        Stamp.dispatch_many([{}] * min(BATCH, n - i))
    procs = Workers(logs, f"{mode}-{time.monotonic_ns()}")
    try:
        if history is not None:
            procs.start([[sys.executable, "-m", "jobkit", "archiver"]],
                        {**env, "JOBKIT_HISTORY_URL": history})  # fmt: skip
            wait(lambda: "events into" in procs.log_tails(), "the archiver to start", procs)
        spawned = time.perf_counter()
        worker = [sys.executable, "-m", "jobkit", "worker", "-A", "benchmarks.bench_jobs",
                  "-q", QUEUE, "-c", "2", "--prefetch", "16", "--no-log-jobs"]  # fmt: skip
        procs.start([worker], env)
        done = wait(lambda: succeeded_in_redis() >= n, "the jobs", procs)
        out = {"per_s": n / (done - spawned)}
        if history is not None:
            rows = wait(lambda: archived(history) >= n, "the archive", procs)
            out["rows_per_s"] = n / (rows - spawned)
            out["archive_after_s"] = rows - done
        return out
    finally:
        procs.kill()
        settle()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    prepare()
    results = each_mode(
        args.runs,
        not args.no_postgres,
        lambda mode, history, env, folder: one_run(mode, history, args.jobs, env, folder),
    )
    report = _report(results, args.jobs, args.runs)
    print(json.dumps(report, indent=2) if args.json else _render(report))
    return 0


def settle() -> None:
    """Wait until Redis has let go of the killed processes' connections (see
    :func:`benchmarks.compare.settle`): the next run's jobs must not go to a dead worker."""
    if not compare.settle(get_store().redis, timeout=10.0):
        raise BenchError("Redis still holds blocked connections of killed processes")


def start_servers(stack: ExitStack, postgres: bool) -> tuple[dict[str, str], str | None]:
    """A redis-server with jobkit configured on it and, if ``postgres``, a PostgreSQL
    server, both stopped with ``stack``: the environment of the processes a benchmark
    starts, and PostgreSQL's URL."""
    server = stack.enter_context(RedisServer())
    url = stack.enter_context(PostgresServer()).url if postgres else None
    configure(redis_url=server.url)
    return {**os.environ, "JOBKIT_REDIS_URL": server.url, "PYTHONPATH": str(ROOT)}, url


def each_mode(
    runs: int, postgres: bool, run: Callable[[str, str | None, dict[str, str], Path], T]
) -> dict[str, list[T]]:
    """``run(mode, history, env, folder)`` for each of :data:`MODES` in turn, ``runs``
    times (interleaved), on servers of its own (see :func:`start_servers`); the results
    by mode."""
    results: dict[str, list[T]] = {}
    with ExitStack() as stack:
        env, url = start_servers(stack, postgres)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for mode, history in rounds(runs, MODES, url, folder):
            results.setdefault(mode, []).append(run(mode, history, env, folder))
    return results


def rounds(
    runs: int, modes: Sequence[str], postgres: str | None, folder: Path
) -> Iterator[tuple[str, str | None]]:
    """Each run's modes in turn (interleaved runs), each with its history database (see
    :func:`history_url`; PostgreSQL left out without a server), progress on stderr."""
    for run in range(runs):
        for mode in modes:
            if mode != "postgresql" or postgres is not None:
                log(f"run {run + 1}/{runs}: {mode}")
                yield mode, history_url(mode, postgres, folder, run)


def history_url(mode: str, postgres: str | None, folder: Path, run: int) -> str | None:
    """The history database of one run: none ("off"), a new SQLite file in ``folder``, or
    PostgreSQL's, emptied."""
    if mode == "sqlite":
        return f"sqlite:///{folder / f'history-{run}.db'}"
    if mode == "postgresql" and postgres is not None:
        engine = create_engine(postgres)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        engine.dispose()
        return postgres
    return None


def _report(results: dict[str, list[dict[str, float]]], jobs: int, runs: int) -> dict[str, Any]:
    medians = {
        mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        for mode, rs in results.items()
    }
    base = medians["off"]["per_s"]
    for figures in medians.values():
        figures["vs_off"] = figures["per_s"] / base
    return {"jobs": jobs, "runs": runs, "medians": medians, "all": results}


def _render(report: dict[str, Any]) -> str:
    head = f"{'mode':<12}{'jobs/s':>10}{'vs off':>9}{'rows/s':>10}{'archive done after':>20}"
    title = f"{report['jobs']:,} jobs, median of {report['runs']} interleaved run(s) per mode"
    lines = [title, head]
    for mode, f in report["medians"].items():
        rows = f"{f['rows_per_s']:,.0f}" if "rows_per_s" in f else "-"
        after = f"{f['archive_after_s']:.2f} s" if "archive_after_s" in f else "-"
        lines.append(f"{mode:<12}{f['per_s']:>10,.0f}{f['vs_off']:>9.3f}{rows:>10}{after:>20}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
