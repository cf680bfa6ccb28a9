"""Queues as an operator sees them (``jobkit queues``): sizes and state, pause, resume,
and purge of ready jobs.

Pausing is a flag in the queue's own shard (``{prefix:queue}:paused``) that the claim
script checks: it takes effect with the next claim on any worker, needs no refresh on the
workers' side, and on a Redis Cluster lives on the master that claims from the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from jobkit import names
from jobkit.backend.keys import Shard, split_lane
from jobkit.backend.reads import Counts
from jobkit.backend.store import Store
from jobkit.backend.upkeep_calls import DrainArgs, PauseArgs
from jobkit.errors import UnknownQueue


@dataclass(frozen=True, slots=True)
class QueueState:
    """One queue: ready jobs (all its lanes), running, scheduled and dead now (None where
    a key is unreadable), and whether it is paused."""

    queue: str
    ready: int | None
    running: int | None
    scheduled: int | None
    dead: int | None
    paused: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Queues:
    """Reads and operations on whole queues."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def states(
        self, sizes: dict[str, int | None] | None = None, counts: Counts | None = None
    ) -> list[QueueState]:
        """Every queue of the registry, sorted by name; from the lanes' ``sizes`` and the
        ``counts`` the caller read already, if it did."""
        if sizes is None:
            sizes = self.store.reads.queue_sizes(self.store.reads.known_lanes())
        ready: dict[str, int | None] = {}
        for lane, size in sizes.items():
            queue = split_lane(lane)[0]
            before = ready.get(queue, 0)
            ready[queue] = None if before is None or size is None else before + size

        def add(pipe: Any, shard: Shard) -> None:
            pipe.exists(shard.paused)

        paused = self.store.reads.fan_out(add)
        by_queue = (counts or self.store.reads.counts()).by_queue
        out = []
        for queue in sorted(paused):
            c = by_queue.get(queue)
            out.append(
                QueueState(
                    queue,
                    ready.get(queue, 0),
                    c.running if c else None,
                    c.scheduled if c else None,
                    c.dead if c else None,
                    paused[queue][0] == 1,
                )
            )
        return out

    def pause(self, queue: str) -> bool:
        """Stop every worker claiming from ``queue`` (dispatch still works); False if it
        was paused already."""
        return bool(self._run("pause", queue, PauseArgs("pause", queue)))

    def resume(self, queue: str) -> bool:
        """Let workers claim from ``queue`` again; False if it was not paused."""
        return bool(self._run("pause", queue, PauseArgs("resume", queue)))

    def purge(self, queue: str) -> int:
        """Delete every ready job of ``queue`` (running, scheduled and dead jobs stay);
        how many were deleted."""
        return int(self._run("drain", queue, DrainArgs(queue)))

    def _run(self, script: str, queue: str, args: Sequence[Any]) -> Any:
        names.queue(queue)
        if queue not in self.store.reads.queues():
            known = ", ".join(self.store.reads.queues()) or "none yet"
            raise UnknownQueue(f"unknown queue {queue!r} (known queues: {known})")
        return self.store.run_script(script, [self.store.keys.shard(queue).base], args)
