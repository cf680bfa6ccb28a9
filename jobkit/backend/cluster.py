"""The transport of a Redis Cluster: redis-py's cluster client, which routes each command
to the master of its key's slot, follows MOVED and ASK while slots move, and refreshes
its slot map when a node fails. jobkit's direct socket (:mod:`.wire`) is one node's
only; on a cluster every command goes through redis-py, with the same rule as the wire
for what may be sent again after a lost reply.

An idle worker waits for work on several queues at once. One BLPOP can only wait on
keys of one slot here, so a wait on several queues' wake lists runs one BLPOP per slot
in threads and returns when the first is woken (the others run out their short
timeout); a wait on one queue is a BLPOP with the claim queued behind it, as on one node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from jobkit.backend.wire import ReplyLost

# A command that may be sent again is tried this many times, this long apart at first
# (doubling): long enough for redis-py to learn a new slot map, and a replica to be
# promoted when its master dies with a short cluster-node-timeout; a longer outage is
# the callers' to ride out (workers and schedulers retry in loops).
ATTEMPTS = 4
FIRST_PAUSE = 0.1


class Settled:
    """Replies of commands that a cluster transport ran at once (see ``ClusterWire.send``)."""

    def __init__(self, replies: list[Any] | None, error: Exception | None) -> None:
        self.replies = replies
        self.error = error

    def read(self) -> None:
        """Nothing to read: the replies are here already."""


class ClusterWire:
    """The transport of one :class:`RedisCluster` client (see the module doc)."""

    packs = False  # routing needs the command's keys, not packed bytes

    def __init__(self, client: RedisCluster) -> None:
        self.client = client
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _tries(self, fn: Any, repeatable: bool) -> Any:
        """``fn()``; a repeatable one tried again after a connection failure (redis-py
        has refreshed its slot map meanwhile); any other raises :class:`ReplyLost`."""
        pause = FIRST_PAUSE
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return fn()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if not repeatable:
                    raise ReplyLost(f"{exc}; the command may or may not have run") from exc
                if attempt == ATTEMPTS:
                    raise
                time.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def execute(self, *command: Any, repeatable: bool = True) -> Any:
        """One command, routed by its key; an error reply is raised."""
        return self._tries(
            lambda: self.client.execute_command(*command),  # type: ignore[no-untyped-call]
            repeatable,
        )

    def execute_packed(self, data: bytes, *, repeatable: bool = True) -> Any:
        raise NotImplementedError("a cluster routes commands by key: send them unpacked")

    def pipeline(self, commands: Sequence[Any], *, repeatable: bool = True) -> list[Any]:
        """Several commands, one round trip per master; error replies in place."""

        def run() -> list[Any]:
            pipe = self.client.pipeline()  # type: ignore[no-untyped-call]
            for command in commands:
                pipe.execute_command(*command)
            return list(pipe.execute(raise_on_error=False))

        return list(self._tries(run, repeatable)) if commands else []

    def stream(self, commands: Iterable[Any]) -> list[Any]:
        return self.pipeline(list(commands))

    def send(self, commands: Sequence[Any]) -> Settled:
        """Run ``commands`` now (there is no reading later here); :meth:`collect` gives
        their replies, or raises what failed them."""
        try:
            return Settled(self.pipeline(commands), None)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            return Settled(None, exc)

    @staticmethod
    def collect(inflight: Any) -> list[Any]:
        if inflight.error is not None:
            raise inflight.error
        return list(inflight.replies)

    def wait_then(self, keys: Sequence[str], timeout: float, commands: Sequence[Any]) -> list[Any]:
        """BLPOP on ``keys``, then ``commands``; replies in place, the BLPOP's first."""
        slots: dict[int, list[str]] = {}
        for key in keys:
            slots.setdefault(key_slot(key.encode()), []).append(key)
        if len(slots) == 1:  # one queue: one node, the claim queued behind the wait
            return self.pipeline([("BLPOP", *keys, timeout), *commands])
        woken = self._first_woken(list(slots.values()), timeout)
        return [woken, *self.pipeline(commands)]

    def _first_woken(self, groups: list[list[str]], timeout: float) -> Any:
        """BLPOP each group (one slot each) at once; the first token, or None when all
        timed out."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="wake")
            pool = self._pool
        futures: set[Future[Any]] = {
            pool.submit(self.client.execute_command, "BLPOP", *group, timeout) for group in groups
        }
        while futures:
            done, futures = wait(futures, timeout=timeout + 1.0, return_when=FIRST_COMPLETED)
            if not done:
                return None
            for future in done:
                if future.exception() is None and future.result() is not None:
                    return future.result()
        return None

    def client_id(self) -> int:
        """No connection of its own to name here: a wait is ended by its timeout."""
        return 0

    def load_scripts(self, sources: Sequence[str]) -> None:
        """SCRIPT LOAD each of ``sources`` into every master."""
        for source in sources:
            self._tries(lambda s=source: self.client.script_load(s), True)
