"""celery: redis broker, no result backend (results ignored), prefork pool ``-c N``,
default prefetch multiplier (4); gossip, mingle and heartbeat off."""

from __future__ import annotations

from celery import Celery

from benchmarks.peers import Peer, python_module
from benchmarks.peers.common import QUEUE, incr, redis_url, stamp

app = Celery("compare", broker=redis_url())
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="compare.incr")
def incr_task(total: int) -> None:
    incr(total)


@app.task(name="compare.stamp")
def stamp_task() -> None:
    stamp()


class Driver(Peer):
    name = "celery"
    dists = ("celery", "kombu")
    config = (
        "redis broker, no result backend, prefork -c N, prefetch x4 (default), "
        "--without-gossip/mingle/heartbeat"
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.after_flush()

    def enqueue(self, count: int, total: int) -> None:
        delay = incr_task.delay
        for _ in range(count):
            delay(total)

    def stamp(self) -> None:
        stamp_task.delay()

    def worker_commands(self, processes: int) -> list[list[str]]:
        return [
            python_module(
                "celery", "-A", __name__, "worker", "-P", "prefork", "-c", str(processes),
                "-Q", QUEUE, "-l", "WARNING", "--without-gossip", "--without-mingle",
                "--without-heartbeat",
            )
        ]  # fmt: skip

    def after_flush(self) -> None:
        # kombu keeps the queue's binding in Redis and declares it once per connection, so
        # a message published after FLUSHALL would find no queue: declare it again
        with app.connection_for_write() as conn:
            app.amqp.queues[QUEUE].bind(conn.default_channel).declare()

    def close(self) -> None:
        app.close()
