"""Script calls over many jobs at once, a round trip per batch (one per master on a
cluster): the indexes' trim, and the operator's retry, cancel and purge of whole pages
of jobs (``jobkit.ops.bulk``). Each call is still one script on one job's shard, so
every job's change is whole; the batch only saves round trips. ``revive``, ``cancel``
and ``purge`` are not sent again after a lost reply (see ``scripts.UNREPEATABLE``): the
error reaches the caller, which reports the batch as not known to have run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from jobkit.backend.calls import CancelArgs, ReviveArgs
from jobkit.backend.keys import queue_of
from jobkit.backend.upkeep_calls import TrimArgs
from jobkit.models import CancelOutcome

if TYPE_CHECKING:
    from jobkit.backend.store import ScriptCall, Store

TRIM_BATCH = 5000  # index entries one trim call drops at most (Redis is not held long)
TRIM_ROUNDS = 20  # calls per queue per chore at most: the rest waits for the next
CANCEL_CODES = {  # cancel.lua's replies
    1: CancelOutcome.CANCELLED,
    2: CancelOutcome.REQUESTED,
    0: CancelOutcome.FINISHED,
    -1: CancelOutcome.UNKNOWN,
}


def trim_finished(store: Store, queues: Iterable[str], max_age: float, now_ms: int) -> None:
    """Drop the index entries of jobs that ended over ``max_age`` seconds ago: their
    records are gone (the workers' chores; ``jobkit jobs`` passes over any left)."""
    oldest = now_ms - int(max_age * 1000)
    pending = list(queues)
    for _ in range(TRIM_ROUNDS):
        calls = [
            ("trim", [store.keys.shard(q).base], TrimArgs(oldest, TRIM_BATCH)) for q in pending
        ]
        dropped = store.run_scripts(calls) if calls else []
        pending = [q for q, n in zip(pending, dropped, strict=True) if int(n) >= TRIM_BATCH]
        if not pending:
            return


def revive_many(store: Store, ids: Sequence[str]) -> list[bool]:
    """:meth:`Store.revive` for each of ``ids`` (ids that name no queue: False); a job
    whose record cannot be queued again counts as not revived."""
    known = [i for i in ids if queue_of(i) is not None]
    calls: list[ScriptCall] = [("revive", store.job_keys(i), ReviveArgs(i)) for i in known]
    replies = dict(zip(known, store.run_scripts(calls), strict=True))
    return [replies.get(i) == 1 for i in ids]


def cancel_many(store: Store, ids: Sequence[str], ttl: int) -> list[CancelOutcome]:
    """:meth:`Store.cancel` for each of ``ids``."""
    known = [i for i in ids if queue_of(i) is not None]
    calls: list[ScriptCall] = [("cancel", store.job_keys(i), CancelArgs(i, ttl)) for i in known]
    replies = dict(zip(known, store.run_scripts(calls), strict=True))
    return [CANCEL_CODES[int(replies[i])] if i in replies else CancelOutcome.UNKNOWN for i in ids]


class BulkProgress:
    """The progress of bulk actions, one hash each (``bulk:<id>`` in keys.py), kept
    ``ttl`` seconds after its last change, so any server (not only the one doing the
    work) can report it."""

    def __init__(self, store: Store, ttl: int = 86_400) -> None:
        self.store = store
        self.ttl = ttl

    def write(self, action_id: str, fields: dict[str, str | int]) -> None:
        key = self.store.keys.bulk(action_id)
        pipe = self.store.redis.pipeline(transaction=False)
        pipe.hset(key, mapping=fields)
        pipe.expire(key, self.ttl)
        pipe.execute()

    def read(self, action_id: str) -> dict[str, str] | None:
        found = self.store.redis.hgetall(self.store.keys.bulk(action_id))
        return dict(found) if found else None
