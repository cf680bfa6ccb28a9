"""jobkit: ``jobkit worker -c N`` (a supervisor and N child processes), jobs logged off."""

from __future__ import annotations

from typing import cast

from pydantic import BaseModel

from benchmarks.peers import Peer, python_module
from benchmarks.peers.common import QUEUE, incr, stamp
from jobkit import BaseJob, configure

PREFETCH = 32  # `jobkit worker --prefetch` default


class IncrParams(BaseModel):
    total: int = 0


class Incr(BaseJob):
    name = "compare.incr"
    queue = QUEUE
    Params = IncrParams

    def perform(self) -> None:
        incr(cast(IncrParams, self.params).total)


class Stamp(BaseJob):
    name = "compare.stamp"
    queue = QUEUE

    def perform(self) -> None:
        stamp()


class Driver(Peer):
    name = "jobkit"
    dists = ("jobkit",)
    config = f"worker -c N --prefetch {PREFETCH}, --no-log-jobs; dispatch_many for bulk"
    has_bulk = True

    def __init__(self, url: str) -> None:
        super().__init__(url)
        configure(redis_url=url)

    def enqueue(self, count: int, total: int) -> None:
        dispatch = Incr.dispatch
        for _ in range(count):
            dispatch(total=total)

    def enqueue_bulk(self, count: int, total: int, batch: int) -> None:
        params = [{"total": total}] * min(batch, count)
        for start in range(0, count, batch):
            Incr.dispatch_many(params[: min(batch, count - start)])

    def stamp(self) -> None:
        Stamp.dispatch()

    def worker_commands(self, processes: int) -> list[list[str]]:
        return [
            python_module(
                "jobkit", "worker", "-A", __name__, "-q", QUEUE, "-c", str(processes),
                "--prefetch", str(PREFETCH), "--log-level", "WARNING", "--no-log-jobs",
            )
        ]  # fmt: skip
