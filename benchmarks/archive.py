"""The archiver alone: how fast one in-process archiver turns finished jobs' events into
rows, into SQLite and into PostgreSQL, and where its time goes.

    python -m benchmarks.archive [--jobs 10000] [--runs 3] [--no-postgres]

Starts its own redis-server (and, unless ``--no-postgres``, a PostgreSQL server). In each
run: dispatches ``--jobs`` no-op jobs, runs them with one ``jobkit worker -c 2`` (no
archiver running: every job's three events, created, claimed and succeeded, wait in the
stream), stops the worker, then times one archiver (``Archiver.step`` in this process,
nothing else running) from the first read to the last event acknowledged, into a fresh
database. Prints medians per database: jobs and events per second, and the seconds spent
reading the stream, reading the jobs' records, folding events into rows, writing, and
acknowledging.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as `python benchmarks/archive.py`
    sys.path.insert(0, str(ROOT))


from benchmarks.archive_cost import rounds, settle, start_servers  # noqa: E402
from benchmarks.bench_jobs import QUEUE, Stamp  # noqa: E402
from benchmarks.procs import prepare  # noqa: E402
from jobkit import get_store  # noqa: E402
from jobkit.archive import archiver as archiving  # noqa: E402
from jobkit.archive.schema import ensure_schema  # noqa: E402
from jobkit.archive.writer import Writer, make_engine  # noqa: E402
from jobkit.connection import get_settings  # noqa: E402
from jobkit.settings import Settings  # noqa: E402

PARTS = ("read", "records", "fold", "write", "ack")
TIMEOUT = 300.0


def finish_jobs(n: int, env: dict[str, str]) -> None:
    """``n`` jobs dispatched and run by a worker, their events left in the stream."""
    store = get_store()
    store.redis.flushall()
    for start in range(0, n, 1000):
        Stamp.dispatch_many([{}] * min(1000, n - start))
    worker = [sys.executable, "-m", "jobkit", "worker", "-A", "benchmarks.bench_jobs",
              "-q", QUEUE, "-c", "2", "--prefetch", "16", "--no-log-jobs"]  # fmt: skip
    proc = subprocess.Popen(worker, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT
        while int(store.reads.counts().totals.get("succeeded", 0)) < n:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker did not finish the jobs")
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
        settle()  # the next run's jobs must not go to its connections (see settle)


def archive_all(url: str, settings: Settings, events: int) -> dict[str, float]:
    """Time one archiver over ``events`` waiting events; seconds per part."""
    engine = make_engine(url)
    ensure_schema(engine)
    store = get_store()
    archiver = archiving.Archiver(store, Writer(engine), settings)
    spent: dict[str, float] = collections.defaultdict(float)

    def timed(part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[part] += time.perf_counter() - began

        return run

    archiver.feed.read = timed("read", archiver.feed.read)  # type: ignore[method-assign]
    archiver.feed.ack = timed("ack", archiver.feed.ack)  # type: ignore[method-assign]
    archiver.writer.write = timed("write", archiver.writer.write)  # type: ignore[method-assign]
    store.reads.job_fields = timed("records", store.reads.job_fields)  # type: ignore[method-assign]
    names = vars(archiving)  # the archiver's own name for fold, so its calls are timed
    fold = names["fold"]
    names["fold"] = timed("fold", fold)
    try:
        began = time.perf_counter()
        while archiver.archived < events:
            if not archiver.step() and time.perf_counter() - began > TIMEOUT:
                raise RuntimeError(f"archived {archiver.archived} of {events} events")
        took = time.perf_counter() - began
    finally:
        names["fold"] = fold
        del store.reads.job_fields
        engine.dispose()
    return {"seconds": took, **{part: spent[part] for part in PARTS}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    prepare()
    results: dict[str, list[dict[str, float]]] = {}
    with ExitStack() as stack:
        env, postgres = start_servers(stack, not args.no_postgres)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for name, url in rounds(args.runs, ("sqlite", "postgresql"), postgres, folder):
            assert url is not None
            finish_jobs(args.jobs, env)  # the run's database is empty, the jobs new
            results.setdefault(name, []).append(archive_all(url, get_settings(), 3 * args.jobs))
    print(f"{args.jobs:,} finished jobs (3 events each), median of {args.runs} run(s)")
    print(f"{'database':<12}{'jobs/s':>8}{'events/s':>10}" + "".join(f"{p:>9}" for p in PARTS))
    for name, runs in results.items():
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        rate = args.jobs / median["seconds"]
        parts = "".join(f"{median[p]:>8.2f}s" for p in PARTS)
        print(f"{name:<12}{rate:>8,.0f}{3 * rate:>10,.0f}{parts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
