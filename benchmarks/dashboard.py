"""The dashboard under load: how fast its pages answer with 100,000 jobs in Redis and
1,000,000 rows in the history archive, and what Redis pays for live pages, one open or
fifty.

    python -m benchmarks.dashboard [--jobs 100000] [--rows 1000000] [--requests 20]
                                   [--viewers 50] [--seconds 20]

Starts its own redis-server and a `jobkit serve` (the archive: SQLite in a temporary
folder). Fills Redis with ``--jobs`` jobs: 40 % ready (no worker on their queue), 40 % run
to success and 20 % dead-lettered by a worker that then stops; a `jobkit archiver` archives
them all, and ``--rows`` older jobs are added to the archive with plain inserts into
jobkit's own tables. Times ``--requests`` GETs each of the overview, a jobs page, a
jobs page filtered by class, a search, and a job's page (a different job each time, old
and new), then, with no worker running, reads Redis's commands processed per second
while one page holds the live stream open, then while ``--viewers`` do. Prints p50 / p95
/ max per page and the two command rates.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as `python benchmarks/dashboard.py`
    sys.path.insert(0, str(ROOT))

from benchmarks.procs import log, percentile, prepare  # noqa: E402
from tests.support.redis_server import RedisServer, free_port  # noqa: E402

JOBS_MODULE = "tests.support.dash_jobs"


def fill_redis(url: str, n: int, env: dict[str, str]) -> list[str]:
    """``n`` jobs: 40 % ready, 40 % succeeded, 20 % dead. Returns some of their ids."""
    import jobkit
    from tests.support import dash_jobs

    jobkit.configure(redis_url=url)
    ready, done, dead = int(n * 0.4), int(n * 0.4), n - int(n * 0.4) * 2
    ids: list[str] = []
    for start in range(0, done, 1000):
        handles = dash_jobs.Nap.dispatch_many([{"n": i} for i in range(min(1000, done - start))])
        ids += [h.id for h in handles][:5]
    for start in range(0, dead, 1000):
        params = [{"message": f"Timeout talking to upstream {i}"} for i in range(1000)]
        ids += [h.id for h in dash_jobs.Doom.dispatch_many(params[: dead - start])][:5]
    worker = subprocess.Popen(
        [sys.executable, "-m", "jobkit", "worker", "-A", JOBS_MODULE, "-q", dash_jobs.QUEUE,
         "-c", "2", "--prefetch", "32", "--no-log-jobs"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    store = jobkit.get_store()
    try:
        while True:
            counts = store.reads.counts()
            finished = counts.totals.get("succeeded", 0) + (counts.dead or 0)
            if finished >= done + dead:
                break
            log(f"  {finished:,} of {done + dead:,} run")
            time.sleep(2)
    finally:
        os.killpg(worker.pid, 9)
        worker.wait()
    for start in range(0, ready, 1000):
        handles = dash_jobs.Nap.dispatch_many([{"n": i} for i in range(min(1000, ready - start))],
                                              queue="backlog")  # fmt: skip
        ids += [h.id for h in handles][:5]
    return ids


def archive_redis(url: str, path: Path, env: dict[str, str]) -> None:
    """Run `jobkit archiver` over everything Redis holds, as a fleet's archivers would
    have: the dashboard's search then walks Redis only as far as their lag."""
    import jobkit
    from jobkit.backend.archive_feed import ArchiveFeed

    jobkit.configure(redis_url=url)
    archiver = subprocess.Popen(
        [sys.executable, "-m", "jobkit", "archiver", "--log-level", "WARNING"],
        cwd=ROOT, env={**env, "JOBKIT_HISTORY_URL": f"sqlite:///{path}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    store = jobkit.get_store()
    try:
        while True:
            time.sleep(2)
            lag = ArchiveFeed(store, "bench").lag()
            behind = sum(x.behind for x in lag.values())
            log(f"  {behind:,} events to archive")
            if lag and len(lag) == len(store.reads.queues()) and behind == 0:
                return
    finally:
        os.killpg(archiver.pid, 9)
        archiver.wait()


def fill_archive(path: Path, rows: int) -> None:
    """``rows`` archived jobs (and an attempt each) over the last 7 days, inserted in
    batches straight into jobkit's tables."""
    from sqlalchemy import create_engine, insert

    from jobkit.archive.schema import attempts, ensure_schema, jobs

    engine = create_engine(f"sqlite:///{path}")
    ensure_schema(engine)  # made already by the archiver
    now = datetime.now(timezone.utc)
    classes = [f"app.jobs.Class{i}" for i in range(20)]
    rng = random.Random(7)
    batch = 20_000
    with engine.begin() as conn:
        for start in range(0, rows, batch):
            job_rows, attempt_rows = [], []
            for i in range(start, min(rows, start + batch)):
                created = now - timedelta(seconds=rng.uniform(0, 7 * 86_400))
                started = created + timedelta(seconds=rng.expovariate(1 / 2))
                ran = rng.expovariate(1 / 0.2)
                failed = i % 10 == 0
                job_id = f"archived:{i:08x}"
                job_rows.append({
                    "id": job_id, "queue": f"q{i % 5}", "job_class": classes[i % 20],
                    "params": f'{{"account": {i % 1000}, "note": "row {i}"}}',
                    "status": "dead" if failed else "succeeded", "attempts": 1,
                    "result": None if failed else '"ok"',
                    "error_type": "TimeoutError" if failed else None,
                    "error_message": f"Timeout after {ran:.1f}s" if failed else None,
                    "created_at": created, "started_at": started,
                    "finished_at": started + timedelta(seconds=ran),
                    "duration_ms": int(ran * 1000), "changed_at": started + timedelta(seconds=ran),
                    "event_ms": int(created.timestamp() * 1000), "event_seq": 0,
                })  # fmt: skip
                attempt_rows.append({
                    "job_id": job_id, "attempt": 1, "worker": "w1", "queue": f"q{i % 5}",
                    "job_class": classes[i % 20],
                    "outcome": "dead" if failed else "succeeded",
                    "started_at": started, "finished_at": started + timedelta(seconds=ran),
                    "duration_ms": int(ran * 1000),
                })  # fmt: skip
            conn.execute(insert(jobs), job_rows)
            conn.execute(insert(attempts), attempt_rows)
            log(f"  {min(rows, start + batch):,} archive rows")
    engine.dispose()


def time_pages(base: str, ids: list[str], requests: int, rows: int) -> dict[str, list[float]]:
    pages = {
        "overview": lambda i: "/",
        "jobs page": lambda i: "/jobs",
        "jobs by class": lambda i: "/jobs?name=tests.support.dash_jobs.Doom&status=dead",
        "search (live and archive)": lambda i: "/search?q="
        + quote("class:tests.support.dash_jobs.Doom error:Timeout"),
        "search a params value": lambda i: "/search?q=" + quote("params.account=42"),
        "job page": lambda i: "/jobs/" + quote(ids[i % len(ids)], safe=""),
        "archived job page": lambda i: "/jobs/" + quote(f"archived:{i * 7919 % rows:08x}", safe=""),
    }  # fmt: skip
    out: dict[str, list[float]] = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for name, path in pages.items():
            client.get(path(0))  # warm
            times = []
            for i in range(requests):
                started = time.perf_counter()
                response = client.get(path(i + 1))
                times.append(time.perf_counter() - started)
                assert response.status_code == 200, (
                    name,
                    response.status_code,
                    response.text[:300],
                )
            out[name] = sorted(times)
    return out


def commands_per_second(client: Any, seconds: float) -> float:
    before = int(client.info("stats")["total_commands_processed"])
    time.sleep(seconds)
    after = int(client.info("stats")["total_commands_processed"])
    return (after - before - 2) / seconds


def viewers(base: str, n: int, seconds: float, redis_client: Any) -> float:
    """Redis's commands per second while ``n`` pages hold the live stream open."""
    stop = threading.Event()
    opened = threading.Barrier(n + 1)

    def view() -> None:
        with (
            httpx.Client(base_url=base, timeout=None) as client,
            client.stream("GET", "/live") as r,
        ):
            opened.wait()
            try:
                for _ in r.iter_lines():
                    if stop.is_set():
                        return
            except httpx.HTTPError:
                return  # the server stopped first

    threads = [threading.Thread(target=view, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    opened.wait()
    time.sleep(4)  # the first reads (the last hour of events) settle
    rate = commands_per_second(redis_client, seconds)
    stop.set()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    prepare()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        redis = stack.enter_context(RedisServer())
        env = {**os.environ, "JOBKIT_REDIS_URL": redis.url, "PYTHONPATH": str(ROOT)}
        log(f"filling Redis with {args.jobs:,} jobs")
        ids = fill_redis(redis.url, args.jobs, env)
        history = Path(tmp) / "history.db"
        log("archiving them (jobkit archiver, until it has read every event)")
        archive_redis(redis.url, history, env)
        log(f"adding {args.rows:,} older rows to the archive")
        fill_archive(history, args.rows)
        port = free_port()
        serve = subprocess.Popen(
            [sys.executable, "-m", "jobkit", "serve", "-A", JOBS_MODULE, "--port", str(port),
             "--log-level", "WARNING"],
            cwd=ROOT, env={**env, "JOBKIT_HISTORY_URL": f"sqlite:///{history}"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        stack.callback(lambda: (os.killpg(serve.pid, 9), serve.wait()))
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        log("timing the pages")
        timings = time_pages(base, ids, args.requests, args.rows)
        client = redis.client(decode_responses=True)
        log("live streams: one viewer, then many")
        idle = commands_per_second(client, 5)
        one = viewers(base, 1, args.seconds, client)
        many = viewers(base, args.viewers, args.seconds, client)
    print(f"{args.jobs:,} jobs in Redis, {args.rows:,} rows in the archive (SQLite), "
          f"{args.requests} requests a page\n")  # fmt: skip
    print("| page | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|")
    for name, times in timings.items():
        ms = [t * 1000 for t in times]
        print(
            f"| {name} | {statistics.median(ms):.0f} | {percentile(ms, 95):.0f} | {max(ms):.0f} |"
        )
    print("\n| live pages open | Redis commands / s |\n|---|---:|")
    print(f"| none | {idle:.1f} |\n| 1 | {one:.1f} |\n| {args.viewers} | {many:.1f} |")


if __name__ == "__main__":
    main()
