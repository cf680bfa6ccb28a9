"""ArdiQ (needs Python >= 3.12: run through ``--ardiq-venv``): a Rust core (tokio) runs the
worker loop and the Redis I/O; jobs are async Python. Its defaults: ``concurrency`` 16,
``prefetch`` 32, results kept 5 minutes. ``ardiq run ... --workers N`` (N > 1 adds a
supervisor process); ``--quiet`` drops the start-up banner, and no job is logged at INFO."""

from __future__ import annotations

import asyncio

from ardiq import Ardiq

from benchmarks.peers import Peer, python_module
from benchmarks.peers.common import QUEUE, aincr, astamp, redis_url

app = Ardiq(redis_url=redis_url(), queue_name=QUEUE)


@app.task(name="compare.incr")
async def incr_task(total: int) -> None:
    await aincr(total)


@app.task(name="compare.stamp")
async def stamp_task() -> None:
    await astamp()


class Driver(Peer):
    name = "ardiq"
    dists = ("ardiq", "redis")
    config = (
        f"`ardiq run --workers N`, async jobs, concurrency {app.concurrency} and prefetch "
        f"{app.prefetch} (defaults); enqueue_many for bulk"
    )
    has_bulk = True

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.loop = asyncio.new_event_loop()

    def enqueue(self, count: int, total: int) -> None:
        async def send() -> None:
            enqueue = incr_task.enqueue
            for _ in range(count):
                await enqueue(total)

        self.loop.run_until_complete(send())

    def enqueue_bulk(self, count: int, total: int, batch: int) -> None:
        async def send() -> None:
            for start in range(0, count, batch):
                size = min(batch, count - start)
                await app.enqueue_many([incr_task.prepare(total) for _ in range(size)])

        self.loop.run_until_complete(send())

    def stamp(self) -> None:
        self.loop.run_until_complete(stamp_task.enqueue())

    def worker_commands(self, processes: int) -> list[list[str]]:
        return [
            python_module("ardiq", "run", f"{__name__}:app", "--quiet", "--workers", str(processes))
        ]

    def close(self) -> None:
        self.loop.close()
