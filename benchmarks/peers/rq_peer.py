"""rq: ``SimpleWorker`` (runs jobs in the worker process; rq's default ``Worker`` forks a
work horse per job, far slower for no-op jobs). N worker processes = N ``rq worker``."""

from __future__ import annotations

import redis
from rq import Queue

from benchmarks.peers import Peer, python_module
from benchmarks.peers.common import QUEUE, incr, stamp


def incr_job(total: int) -> None:
    incr(total)


def stamp_job() -> None:
    stamp()


class Driver(Peer):
    name = "rq"
    dists = ("rq",)
    config = "N x `rq worker -w SimpleWorker` (default Worker forks per job); enqueue_many"
    has_bulk = True

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.connection = redis.Redis.from_url(url)
        self.queue = Queue(QUEUE, connection=self.connection)

    def enqueue(self, count: int, total: int) -> None:
        enqueue = self.queue.enqueue
        for _ in range(count):
            enqueue(incr_job, total)

    def enqueue_bulk(self, count: int, total: int, batch: int) -> None:
        for start in range(0, count, batch):
            size = min(batch, count - start)
            self.queue.enqueue_many(
                [Queue.prepare_data(incr_job, args=(total,)) for _ in range(size)]
            )

    def stamp(self) -> None:
        self.queue.enqueue(stamp_job)

    def worker_commands(self, processes: int) -> list[list[str]]:
        one = python_module(
            "rq.cli", "worker", "-w", "rq.worker.SimpleWorker", "-u", self.url,
            "--logging_level", "WARNING", "--disable-job-desc-logging", QUEUE,
        )  # fmt: skip
        return [one] * processes

    def close(self) -> None:
        self.connection.close()
