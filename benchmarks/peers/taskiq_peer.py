"""taskiq: ``RedisStreamBroker`` (taskiq-redis), async jobs, ``taskiq worker --workers N``."""

from __future__ import annotations

import asyncio
import contextlib

import redis
from taskiq_redis import RedisStreamBroker

from benchmarks.peers import Peer, python_module
from benchmarks.peers.common import QUEUE, aincr, astamp, redis_url

broker = RedisStreamBroker(redis_url(), queue_name=QUEUE)


@broker.task(task_name="compare.incr")
async def incr_task(total: int) -> None:
    await aincr(total)


@broker.task(task_name="compare.stamp")
async def stamp_task() -> None:
    await astamp()


class Driver(Peer):
    name = "taskiq"
    dists = ("taskiq", "taskiq-redis")
    config = "RedisStreamBroker, async jobs, `taskiq worker --workers N`, no result backend"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(broker.startup())
        self.sync = redis.Redis.from_url(url)

    def enqueue(self, count: int, total: int) -> None:
        async def send() -> None:
            kiq = incr_task.kiq
            for _ in range(count):
                await kiq(total)

        self.loop.run_until_complete(send())

    def stamp(self) -> None:
        self.loop.run_until_complete(stamp_task.kiq())

    def worker_commands(self, processes: int) -> list[list[str]]:
        return [
            python_module(
                "taskiq", "worker", f"{__name__}:broker", "--workers", str(processes),
                "--log-level", "WARNING",
            )
        ]  # fmt: skip

    def after_flush(self) -> None:
        # the consumer group is created at the stream's end ("$") on startup: create it
        # again before jobs are sent, or a worker started later would skip them
        with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists
            self.sync.xgroup_create(QUEUE, broker.consumer_group_name, id="$", mkstream=True)

    def close(self) -> None:
        self.loop.run_until_complete(broker.shutdown())
        self.loop.close()
        self.sync.close()
