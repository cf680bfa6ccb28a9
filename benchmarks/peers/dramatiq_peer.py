"""dramatiq: ``RedisBroker``, ``dramatiq -p N -t 8`` (N processes of 8 worker threads)."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from benchmarks.peers import Peer, python_module
from benchmarks.peers.common import QUEUE, incr, redis_url, stamp

THREADS = 8

broker = RedisBroker(url=redis_url())
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def incr_actor(total: int) -> None:
    incr(total)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def stamp_actor() -> None:
    stamp()


class Driver(Peer):
    name = "dramatiq"
    dists = ("dramatiq",)
    config = f"RedisBroker, `dramatiq -p N -t {THREADS}`, default middleware"

    def enqueue(self, count: int, total: int) -> None:
        send = incr_actor.send
        for _ in range(count):
            send(total)

    def stamp(self) -> None:
        stamp_actor.send()

    def worker_commands(self, processes: int) -> list[list[str]]:
        return [
            python_module(
                "dramatiq", __name__, "-p", str(processes), "-t", str(THREADS), "-Q", QUEUE
            )
        ]

    def close(self) -> None:
        broker.close()
