"""streaq (on coredis, not redis-py, so it shares jobkit's environment): async jobs, a
``Worker`` with its defaults (``concurrency`` 16, prefetch 16 beyond the running ones,
results kept 5 minutes, the stock asyncio loop), ``streaq run --workers N``. Two
optimisations from its docs: coredis's optimized mode, and ``silent`` tasks (no log line per
job). uvloop, its other one, is left out: installed in this environment, taskiq would run on
it too."""

from __future__ import annotations

import asyncio
import contextlib

import coredis
from streaq import Worker

from benchmarks.peers import Peer, python_module
from benchmarks.peers.common import QUEUE, aincr, astamp, redis_url

coredis.Config.optimized = True  # drops coredis's runtime type checks, as streaq advises
worker: Worker[None] = Worker(redis_url=redis_url(), queue_name=QUEUE)


@worker.task(silent=True)
async def incr_task(total: int) -> None:
    await aincr(total)


@worker.task(silent=True)
async def stamp_task() -> None:
    await astamp()


class Driver(Peer):
    name = "streaq"
    dists = ("streaq", "coredis")
    config = (
        f"`streaq run --workers N`, async silent jobs, concurrency {worker.concurrency} "
        "(default), coredis optimized mode, asyncio loop; enqueue_many for bulk"
    )
    has_bulk = True

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.loop = asyncio.new_event_loop()
        # The worker's client holds an anyio task group, which must be left by the task that
        # entered it: one task holds the worker open until close(), and the calls below run
        # as tasks of their own on the same loop.
        self.closing: asyncio.Future[None] = self.loop.create_future()
        entered: asyncio.Future[None] = self.loop.create_future()
        self.holder = self.loop.create_task(self.hold(entered))
        self.loop.run_until_complete(entered)

    async def hold(self, entered: asyncio.Future[None]) -> None:
        try:
            async with worker:
                entered.set_result(None)
                await self.closing
        except BaseException as exc:
            if not entered.done():  # failed to connect: __init__ raises it
                entered.set_exception(exc)
            raise

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
                await worker.enqueue_many([incr_task.enqueue(total) for _ in range(size)])

        self.loop.run_until_complete(send())

    def stamp(self) -> None:
        async def send() -> None:
            await stamp_task.enqueue()

        self.loop.run_until_complete(send())

    def worker_commands(self, processes: int) -> list[list[str]]:
        return [python_module("streaq", "run", f"{__name__}:worker", "--workers", str(processes))]

    def close(self) -> None:
        self.closing.set_result(None)
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.holder)
        self.loop.close()
