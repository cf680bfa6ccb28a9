"""arq (needs redis<6: run through ``--peer-venv``): asyncio worker, ``max_jobs`` 10 and
``poll_delay`` 0.5 s (defaults), results not kept; N worker processes = N workers, started
with ``run_worker`` rather than the ``arq`` command, which logs every job at INFO."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from arq import create_pool, run_worker
from arq.connections import RedisSettings

from benchmarks.peers import Peer, python_module
from benchmarks.peers.common import QUEUE, aincr, astamp, redis_url


async def incr_job(ctx: dict[str, Any], total: int) -> None:
    await aincr(total)


async def stamp_job(ctx: dict[str, Any]) -> None:
    await astamp()


class WorkerSettings:
    functions: ClassVar[list[Any]] = [incr_job, stamp_job]
    queue_name = QUEUE
    keep_result = 0
    redis_settings = RedisSettings.from_dsn(redis_url())


class Driver(Peer):
    name = "arq"
    dists = ("arq", "redis")
    config = "N x run_worker(), max_jobs 10, poll_delay 0.5 s (defaults), keep_result 0"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.loop = asyncio.new_event_loop()
        settings = RedisSettings.from_dsn(url)
        self.pool = self.loop.run_until_complete(create_pool(settings, default_queue_name=QUEUE))

    def enqueue(self, count: int, total: int) -> None:
        async def send() -> None:
            enqueue = self.pool.enqueue_job
            for _ in range(count):
                await enqueue("incr_job", total)

        self.loop.run_until_complete(send())

    def stamp(self) -> None:
        self.loop.run_until_complete(self.pool.enqueue_job("stamp_job"))

    def worker_commands(self, processes: int) -> list[list[str]]:
        return [python_module(__name__)] * processes

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.aclose())
        self.loop.close()


if __name__ == "__main__":
    run_worker(WorkerSettings)  # type: ignore[arg-type]
