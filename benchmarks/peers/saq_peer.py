"""saq (``saq[redis]`` needs redis<8: run through ``--peer-venv``): ``saq ... --workers N``,
``concurrency`` 10 (default) per process."""

from __future__ import annotations

import asyncio
from typing import Any

from saq import Queue

from benchmarks.peers import Peer, python_module
from benchmarks.peers.common import QUEUE, aincr, astamp, redis_url

CONCURRENCY = 10


async def incr_job(ctx: dict[str, Any], *, total: int) -> None:
    await aincr(total)


async def stamp_job(ctx: dict[str, Any]) -> None:
    await astamp()


settings = {
    "queue": Queue.from_url(redis_url(), name=QUEUE),
    "functions": [incr_job, stamp_job],
    "concurrency": CONCURRENCY,
}


class Driver(Peer):
    name = "saq"
    dists = ("saq", "redis")
    config = f"`saq --workers N`, concurrency {CONCURRENCY} (default)"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.loop = asyncio.new_event_loop()
        self.queue = Queue.from_url(url, name=QUEUE)
        self.loop.run_until_complete(self.queue.connect())

    def enqueue(self, count: int, total: int) -> None:
        async def send() -> None:
            enqueue = self.queue.enqueue
            for _ in range(count):
                await enqueue("incr_job", total=total)

        self.loop.run_until_complete(send())

    def stamp(self) -> None:
        self.loop.run_until_complete(self.queue.enqueue("stamp_job"))

    def worker_commands(self, processes: int) -> list[list[str]]:
        return [python_module("saq", f"{__name__}.settings", "--workers", str(processes))]

    def close(self) -> None:
        self.loop.run_until_complete(self.queue.disconnect())
        self.loop.close()
