"""The archiver's write rate: rows per second from a filled event stream into SQLite
(and PostgreSQL with ``--history-url``).

    python -m benchmarks.archive [--jobs 20000] [--history-url postgresql+psycopg://...]

Fills one queue's stream by dispatching ``--jobs`` jobs (each: one "created" event), then
times one in-process archiver until it has archived them all. Needs a Redis
(JOBKIT_REDIS_URL, or the embedded one). Processing throughput with archiving on vs off
is not measured here yet.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

import jobkit
from jobkit import BaseJob
from jobkit.archive.archiver import Archiver
from jobkit.archive.schema import ensure_schema
from jobkit.archive.writer import Writer, database_url, make_engine


class Noop(BaseJob):
    """Never run: its dispatches only fill the stream."""

    queue = "archive-bench"

    class Params(BaseModel):
        n: int

    def perform(self) -> None:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--history-url", default=None)
    args = parser.parse_args(argv)
    settings = jobkit.configure()
    store = jobkit.get_store()
    store.purge()
    for start in range(0, args.jobs, 1000):
        Noop.dispatch_many([{"n": i} for i in range(start, min(start + 1000, args.jobs))])
    with tempfile.TemporaryDirectory() as folder:
        writer = Writer(make_engine(database_url(args.history_url, Path(folder))))
        ensure_schema(writer.engine)
        archiver = Archiver(store, writer, settings)
        began = time.perf_counter()
        while archiver.archived < args.jobs:
            archiver.step()
        took = time.perf_counter() - began
    rate = args.jobs / took
    print(f"{writer.engine.dialect.name}: {args.jobs} rows in {took:.2f} s, {rate:.0f} rows/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
