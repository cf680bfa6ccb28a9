"""Dependencies between jobs in Redis (``store.flows``): recording that a job waits for
others, storing it waiting, and delivering what ended to the jobs waiting for it.

Each call runs on one shard (see the dependency section of ``_lib.lua``): depend.lua on
the shard of the job waited for, wait.lua and release.lua on the waiting job's. A job
that ends with dependants leaves a notice for each in its queue's ``notices`` stream;
workers deliver the notices (:meth:`Flows.deliver`) through a consumer group, so a
deliverer killed between reading a notice and acknowledging it leaves the notice to
another (XAUTOCLAIM), and release.lua counts a notice delivered twice once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import redis

from jobkit.backend.flow_calls import (
    DependArgs,
    DependReply,
    Notice,
    WaitArgs,
    WaitReply,
    release_argv,
)
from jobkit.backend.keys import NOTICE_GROUP, Keys

if TYPE_CHECKING:
    from jobkit.backend.store import ScriptCall, Store

CLAIM_IDLE_MS = 30_000  # a notice read and not acknowledged this long is another's to deliver


class Flows:
    """The dependency calls of the :class:`~jobkit.backend.store.Store` it holds."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys: Keys = store.keys
        self._grouped: set[str] = set()  # queues whose notices group exists
        self._reclaim_at: dict[str, float] = {}  # queue -> when to look for stranded notices

    def depend(self, job_id: str, deps: Sequence[str], takes: bool) -> list[DependReply]:
        """Record, on each dependency's shard, that ``job_id`` waits for it; or learn how
        it ended already. One reply per dependency, in order."""
        flag = "1" if takes else "0"
        calls: list[ScriptCall] = [
            ("depend", [self.keys.of_job(d).base], DependArgs(d, job_id, flag)) for d in deps
        ]
        return [DependReply.parse(raw) for raw in self.store.run_scripts(calls)]

    def release(self, notices: Sequence[Notice]) -> None:
        """Tell waiting jobs what their dependencies did (each notice on its job's shard)."""
        by_base: dict[str, list[Notice]] = {}
        for n in notices:
            try:
                base = self.keys.of_job(n.job).base
            except ValueError:  # an id of no queue (garbage in the stream): nobody to tell
                continue
            by_base.setdefault(base, []).append(n)
        calls: list[ScriptCall] = [
            ("release", [base], release_argv(group)) for base, group in by_base.items()
        ]
        self.store.run_scripts(calls)

    def wait(self, args: WaitArgs, deps: Sequence[str]) -> WaitReply:
        """Store the waiting job (after :meth:`depend` and any :meth:`release`)."""
        base = self.keys.of_job(args.id).base
        return WaitReply.parse(self.store.run_script("wait", [base], args.argv(deps)))

    def dependants(self, job_id: str) -> list[str]:
        """The jobs that wait (or waited) for ``job_id``, sorted."""
        try:
            found = self.store.redis.hkeys(self.keys.of_job(job_id).dependants(job_id))
        except (ValueError, redis.ResponseError):  # an id of no queue; garbage
            return []
        return sorted(str(j) for j in found)

    # -- delivery ------------------------------------------------------------------------

    def deliver(self, queues: Iterable[str], consumer: str, count: int = 100) -> int:
        """Deliver the notices of ``queues`` to the waiting jobs of other queues: new ones,
        and those another deliverer read and left unacknowledged for 30 s. How many."""
        done = 0
        for queue in queues:
            stream = self.keys.shard(queue).notices
            entries = self._read(queue, stream, consumer, count)
            if not entries:
                continue
            self.release([notice for _, notice in entries])
            ids = [entry_id for entry_id, _ in entries]
            self.store.redis.xack(stream, NOTICE_GROUP, *ids)
            self.store.redis.xdel(stream, *ids)
            done += len(ids)
        return done

    def _read(self, queue: str, stream: str, consumer: str, count: int) -> list[tuple[str, Notice]]:
        client: Any = self.store.redis
        if queue not in self._grouped:
            try:  # MKSTREAM: a queue whose jobs nobody waits for has an empty stream
                client.xgroup_create(stream, NOTICE_GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._grouped.add(queue)
        try:
            reply = client.xreadgroup(NOTICE_GROUP, consumer, {stream: ">"}, count=count)
            rows = [row for _, found in reply for row in found]
            now = time.monotonic()
            if len(rows) < count and now >= self._reclaim_at.get(queue, 0.0):
                self._reclaim_at[queue] = now + CLAIM_IDLE_MS / 2000
                claimed = client.xautoclaim(
                    stream, NOTICE_GROUP, consumer, CLAIM_IDLE_MS, "0-0", count=count
                )
                rows += claimed[1]
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream was deleted: its group with it
                self._grouped.discard(queue)
                return []
            raise
        return [(str(entry_id), _notice(fields)) for entry_id, fields in rows if fields]


def _notice(fields: dict[Any, Any]) -> Notice:
    def get(name: str) -> str:
        return str(fields.get(name) or "")

    return Notice(get("job"), get("dep"), get("outcome"), get("result"))
