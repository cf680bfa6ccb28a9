"""Dead letters (``jobkit dead``, ``GET /dead``): the dead-lettered jobs newest first, and
sending them back or deleting them, one, several or all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from jobkit.backend.batch import revive_many
from jobkit.backend.problems import Found
from jobkit.models import JobRecord, Status
from jobkit.ops.listing import JobQuery, id_pages

if TYPE_CHECKING:
    from jobkit.backend.store import Store

BATCH = 500  # jobs per round trip when all of them are retried


def dead_jobs(store: Store, limit: int = 50, offset: int = 0) -> Found[JobRecord]:
    """Dead-lettered jobs, newest first; a queue's dead set of another type is skipped
    and named in ``problems``."""
    ids = store.reads.dead_ids(limit, offset)
    records = [r for r in store.reads.get_many(ids.items) if r is not None]
    return Found(records, ids.problems)


def retry_dead(store: Store, ids: Sequence[str] | None = None) -> tuple[int, int]:
    """Send dead jobs back to their queues with a fresh attempt budget: ``ids``, or every
    dead job (None), a page at a time. Returns (revived, asked)."""
    if ids is not None:
        return sum(revive_many(store, ids)), len(ids)
    revived = asked = 0
    for page in id_pages(store, JobQuery(statuses=frozenset({Status.DEAD}), limit=BATCH)):
        revived += sum(revive_many(store, page))
        asked += len(page)
    return revived, asked


def purge_dead(store: Store, ids: Sequence[str] | None = None) -> int:
    """Delete dead jobs for good: ``ids``, or every dead job (None); how many."""
    return store.purge(list(ids or ()))
