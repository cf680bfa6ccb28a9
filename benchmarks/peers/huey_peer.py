"""huey: ``RedisHuey`` (blocking pops, results off), consumer ``-k thread -w 1`` for one
process; ``-k process -w 2`` for two."""

from __future__ import annotations

from huey import RedisHuey

from benchmarks.peers import Peer, python_module
from benchmarks.peers.common import QUEUE, incr, redis_url, stamp

huey = RedisHuey(QUEUE, url=redis_url(), results=False)


@huey.task()
def incr_task(total: int) -> None:
    incr(total)


@huey.task()
def stamp_task() -> None:
    stamp()


class Driver(Peer):
    name = "huey"
    dists = ("huey",)
    config = "RedisHuey(results=False), consumer -k thread -w 1 / -k process -w 2, -n -q"

    def enqueue(self, count: int, total: int) -> None:
        for _ in range(count):
            incr_task(total)

    def stamp(self) -> None:
        stamp_task()

    def worker_commands(self, processes: int) -> list[list[str]]:
        kind = "thread" if processes == 1 else "process"
        return [
            python_module(
                "huey.bin.huey_consumer", f"{__name__}.huey", "-k", kind,
                "-w", str(processes), "-n", "-q",
            )
        ]  # fmt: skip
