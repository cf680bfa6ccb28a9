"""Search and history on a large archive: what ``jobkit.ops.search`` and
``jobkit.ops.history`` cost on a million archived jobs, in SQLite and in PostgreSQL.

    python -m benchmarks.search_history [--rows 1000000] [--live 100000] [--runs 3]
                                        [--no-postgres] [--json]

Starts its own redis-server and (unless ``--no-postgres``) PostgreSQL server, then for
each database fills a new archive through the archive's own writer with ``--rows`` jobs
spread evenly over the last seven days, and one attempt per job that ran (five queues,
twenty classes; about 90 % succeeded, 4 % dead, 3 % retried, 2 % cancelled, 1 % never
started; params with an account number and a region; errors on the failures).
PostgreSQL is ANALYZEd after the fill, as its autovacuum would soon do; SQLite is not
(jobkit never runs ANALYZE there). Times the archive's part of a few searches
(:func:`jobkit.archive.search.search_archive`, limit 50) and ``history()`` over a day
and over a week, each the median of ``--runs``. Then, with ``--live`` jobs waiting in
Redis and no archive, the live walk of a search that matches nothing (its whole budget).
Prints milliseconds per database.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as `python benchmarks/search_history.py`
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from benchmarks.archive_cost import history_url, start_servers  # noqa: E402
from benchmarks.bench_jobs import Incr  # noqa: E402
from benchmarks.procs import log, prepare  # noqa: E402
from jobkit import configure, get_store  # noqa: E402
from jobkit.archive.rows import Rows  # noqa: E402
from jobkit.archive.schema import ensure_schema  # noqa: E402
from jobkit.archive.search import search_archive  # noqa: E402
from jobkit.archive.writer import Writer, make_engine  # noqa: E402
from jobkit.ops import search as live_search  # noqa: E402
from jobkit.ops.history import history  # noqa: E402
from jobkit.ops.search import parse_search  # noqa: E402

DAYS = 7
BATCH = 10_000
REGIONS = ("emea", "apac", "amer", "latam")
FAILURES = (
    ("TimeoutError", "Timeout talking to upstream after 30s"),
    ("ConnectionError", "connection refused by billing-db:5432"),
    ("ValueError", "account {n} has no owner"),
)
SEARCHES = (
    ("class, exact", "class:app.jobs.Sync7"),
    ("status + error", "status:dead error:timeout"),
    ("queue + class prefix + status", "queue:q2 class:app.jobs.Report* status:retrying"),
    ("params path, one match", "params.account=4242"),
    ("free words, common", '"connection refused"'),
    ("free word, absent", "zzzz-not-there"),
    ("id prefix", "id:{prefix}"),
    ("nothing: the newest 50", ""),
)
HISTORIES = (("history(24)", 24, 60), ("history(24, 5 min)", 24, 5), ("history(24*7)", 24 * 7, 60))


def job_rows(first: int, count: int, total: int, now_ms: int, rng: random.Random) -> Rows:
    """Rows of jobs ``first`` to ``first + count`` of ``total``, in creation order."""
    rows = Rows()
    span = DAYS * 86_400_000
    for i in range(first, first + count):
        queue = f"q{i % 5}"
        kind = "Sync" if i % 2 else "Report"
        job_class = f"app.jobs.{kind}{(i // 2) % 10}"
        job_id = f"{queue}:{rng.getrandbits(128):032x}"
        created = now_ms - span + (i * span) // total
        started = created + int(rng.expovariate(1 / 200))  # waits about 0.2 s
        ran = max(1, int(rng.lognormvariate(4, 1.2)))  # runs about 55 ms, a long tail
        roll = rng.random()
        status = ("succeeded" if roll < 0.90 else "dead" if roll < 0.94 else "failed"
                  if roll < 0.97 else "cancelled" if roll < 0.99 else "queued")  # fmt: skip
        account = rng.randrange(100_000)
        error = (None, None)
        if status in ("dead", "failed"):
            kind_, message = FAILURES[i % len(FAILURES)]
            error = (kind_, message.format(n=account))
        ended = None if status == "queued" else started + ran
        rows.jobs[job_id] = {
            "id": job_id, "queue": queue, "job_class": job_class,
            "params": orjson.dumps({"account": account, "region": rng.choice(REGIONS)}).decode(),
            "status": status, "attempts": 0 if ended is None else 1,
            "result": "null" if status == "succeeded" else None,
            "error_type": error[0], "error_message": error[1], "traceback": None,
            "reason": None, "worker": None if ended is None else f"w{i % 8}",
            "created_at": created, "started_at": None if ended is None else started,
            "finished_at": ended if status in ("succeeded", "dead", "cancelled") else None,
            "duration_ms": None if ended is None else ran,
            "changed_at": ended or created, "event_ms": ended or created, "event_seq": 0,
        }  # fmt: skip
        if ended is not None:
            rows.attempts[(job_id, 1)] = {
                "job_id": job_id, "attempt": 1, "queue": queue, "job_class": job_class,
                "worker": f"w{i % 8}", "outcome": "retrying" if status == "failed" else status,
                "reason": None, "error_type": error[0], "error_message": error[1],
                "traceback": None, "started_at": started, "finished_at": ended,
                "duration_ms": ran,
            }  # fmt: skip
    return rows


def fill(url: str, total: int) -> tuple[float, str]:
    """A new archive of ``total`` jobs: seconds it took, and one of its ids."""
    engine = make_engine(url)
    ensure_schema(engine)
    writer = Writer(engine)
    rng = random.Random(7)
    now_ms = int(time.time() * 1000)
    began = time.perf_counter()
    some_id = ""
    for first in range(0, total, BATCH):
        rows = job_rows(first, min(BATCH, total - first), total, now_ms, rng)
        writer.write(rows)
        some_id = some_id or next(iter(rows.jobs))
        if first % 200_000 == 0:
            log(f"  {first:,} of {total:,} rows written")
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - began, some_id


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def measure(url: str, rows: int, runs: int, redis_url: str, folder: Path) -> dict[str, float]:
    """Fill an archive at ``url`` and time every search and history on it (ms)."""
    took, some_id = fill(url, rows)
    configure(redis_url=redis_url, history_url=url, data_dir=folder)
    out = {"fill (s)": took}
    for label, text in SEARCHES:
        query = parse_search(text.format(prefix=some_id[:14]))
        found = search_archive(query, 50)
        assert found is not None
        out[label] = median_ms(lambda q=query: search_archive(q, 50), runs)
        log(f"  {label}: {out[label]:.0f} ms, {len(found)} rows")
    for label, hours, minutes in HISTORIES:
        out[label] = median_ms(lambda h=hours, m=minutes: history(h, m), runs)
        log(f"  {label}: {out[label]:.0f} ms")
    return out


def live_walk(live: int, runs: int, redis_url: str, folder: Path) -> dict[str, float]:
    """The live search's cost with ``live`` jobs in Redis and no archive: a query that
    matches nothing walks its whole budget."""
    configure(redis_url=redis_url, data_dir=folder)
    store = get_store()
    store.redis.flushall()
    for first in range(0, live, BATCH):
        Incr.dispatch_many([{"total": i} for i in range(first, min(live, first + BATCH))],
                           delay=3600)  # fmt: skip
    result = live_search.search(store, "zzzz-not-there")
    log(f"  live: {result.note}")
    return {f"live walk, {result.looked_at:,} of {result.live_total:,} jobs": median_ms(
        lambda: live_search.search(store, "zzzz-not-there"), runs
    )}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--live", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    prepare()
    results: dict[str, dict[str, float]] = {}
    with ExitStack() as stack:
        env, postgres = start_servers(stack, not args.no_postgres)
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis_url = env["JOBKIT_REDIS_URL"]
        for name in ("sqlite", "postgresql"):
            url = history_url(name, postgres, folder, 0)
            if url is not None:
                log(f"{name}: filling {args.rows:,} rows")
                results[name] = measure(url, args.rows, args.runs, redis_url, folder)
        live = live_walk(args.live, args.runs, redis_url, folder)
    if args.json:
        print(json.dumps({"rows": args.rows, "runs": args.runs, **results, "redis": live}))
        return 0
    print(_render(results, live, args.rows, args.runs))
    return 0


def _render(results: dict[str, dict[str, Any]], live: dict[str, float], rows: int,
            runs: int) -> str:  # fmt: skip
    names = list(results)
    lines = [f"{rows:,} archived jobs over {DAYS} days, median of {runs} run(s), ms",
             f"{'':<34}" + "".join(f"{n:>12}" for n in names)]  # fmt: skip
    for label in results[names[0]] if names else ():
        cells = "".join(f"{results[n][label]:>12,.1f}" for n in names)
        lines.append(f"{label:<34}{cells}")
    for label, ms in live.items():
        lines.append(f"{label:<34}{ms:>12,.1f}  (Redis)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
