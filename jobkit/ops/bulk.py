"""Bulk actions by filter (``POST /jobs/bulk``): retry, cancel or purge every job that
matches the listing's filters, counted first if asked (a dry run), else done in the
background, its progress readable by id from any server.

The work pages through the indexes as the listing does (:func:`jobkit.ops.listing.id_pages`,
:data:`PAGE` jobs at a time, one round trip of script calls per page), never loading an
index whole, and touches the jobs that matched when it reached them: one moved or gone
meanwhile is refused by its script, counted as failed, never hurt. A job that comes back
to the index during the action (retried, then dead again) is behind the cursor already,
so the action ends.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from jobkit.backend.batch import BulkProgress, cancel_many, revive_many
from jobkit.connection import get_settings
from jobkit.errors import InvalidQuery
from jobkit.models import Status
from jobkit.ops.audit import record
from jobkit.ops.listing import JobQuery, id_pages

if TYPE_CHECKING:
    from jobkit.backend.store import Store

log = logging.getLogger("jobkit.bulk")

PAGE = 500  # jobs per round trip


class Action(str, Enum):
    """What a bulk action does to each matching job."""

    RETRY = "retry"  # a dead job back with a fresh budget, a retrying one back now
    CANCEL = "cancel"  # withdraw what has not started, stop what runs
    PURGE = "purge"  # delete dead jobs for good

    def __str__(self) -> str:
        return self.value


# the statuses each action takes (and without a status filter, works on)
TAKES = {
    Action.RETRY: frozenset({Status.DEAD, Status.RETRYING}),
    Action.CANCEL: frozenset(
        {Status.QUEUED, Status.SCHEDULED, Status.WAITING, Status.RETRYING, Status.RUNNING}
    ),
    Action.PURGE: frozenset({Status.DEAD}),
}
DEFAULT = {**TAKES, Action.RETRY: frozenset({Status.DEAD})}


@dataclass(frozen=True)
class BulkRequest:
    """An action and the filters of the jobs it is for."""

    action: Action
    query: JobQuery

    def describe(self) -> str:
        """The filters in one line, for the audit log and the progress."""
        q = self.query
        parts = [f"status={','.join(sorted(s.value for s in q.statuses))}"]
        parts += [f"queue={','.join(q.queues)}"] if q.queues else []
        parts += [f"name={q.name}"] if q.name else []
        parts += [f"since_ms={q.since_ms}"] if q.since_ms is not None else []
        return " ".join(parts)


def bulk_request(
    action: str,
    statuses: frozenset[Status] = frozenset(),
    queues: tuple[str, ...] = (),
    name: str | None = None,
    since_ms: int | None = None,
) -> BulkRequest:
    """The request for ``action`` on the jobs matching the filters; raises
    :class:`InvalidQuery` for an unknown action or a status the action does not take."""
    try:
        act = Action(action)
    except ValueError:
        raise InvalidQuery(
            f"action: {action!r} is not one of {', '.join(a.value for a in Action)}"
        ) from None
    wrong = sorted(s.value for s in statuses - TAKES[act])
    if wrong:
        takes = ", ".join(sorted(s.value for s in TAKES[act]))
        raise InvalidQuery(f"{act.value} takes {takes} jobs, not {', '.join(wrong)}")
    query = JobQuery(statuses or DEFAULT[act], queues, name, since_ms, PAGE)
    return BulkRequest(act, query)


def count(store: Store, request: BulkRequest) -> int:
    """How many jobs the action would touch now (a dry run; pages through the indexes)."""
    return sum(len(page) for page in id_pages(store, request.query))


def start(store: Store, request: BulkRequest, role: str = "", client: str = "") -> dict[str, Any]:
    """Count the matching jobs, then start the action on them in a thread of this
    process; its progress (see :func:`progress`), with its id. Raises
    :class:`InvalidQuery` for filters the listing refuses (an unknown queue). The audit
    log gets an entry now (the jobs counted) and one when the action ends (the jobs
    it touched)."""
    total = count(store, request)
    action_id = os.urandom(8).hex()
    tracker = BulkProgress(store)
    tracker.write(action_id, {"action": request.action.value, "filters": request.describe(),
                              "role": role, "state": "running", "total": total, "done": 0,
                              "failed": 0, "started_ms": store.reads.now_ms()})  # fmt: skip
    record(store, role, f"bulk {request.action.value}", request.describe(), total,
           f"id {action_id}", client)  # fmt: skip
    thread = threading.Thread(
        target=_run, args=(store, request, action_id, tracker, role, client),
        name=f"bulk-{action_id}", daemon=True,
    )  # fmt: skip
    thread.start()
    found = progress(store, action_id)
    assert found is not None
    return found


def progress(store: Store, action_id: str) -> dict[str, Any] | None:
    """``{"id", "action", "filters", "role", "state": running | done | failed, "total",
    "done", "failed", "started_ms", "finished_ms"?, "error"?}``; None for an unknown id
    (or one whose record expired, a day after it ended)."""
    if not action_id.isalnum() or len(action_id) > 64:
        return None
    found = BulkProgress(store).read(action_id)
    if found is None:
        return None
    out: dict[str, Any] = {"id": action_id, **found}
    for key in ("total", "done", "failed", "started_ms", "finished_ms"):
        if key in out:
            out[key] = int(out[key])
    return out


def _run(
    store: Store,
    request: BulkRequest,
    action_id: str,
    tracker: BulkProgress,
    role: str,
    client: str,
) -> None:
    done = failed = 0
    try:
        ttl = get_settings().result_ttl
        for page in id_pages(store, request.query):
            if request.action is Action.RETRY:
                worked = sum(revive_many(store, page))
            elif request.action is Action.CANCEL:
                worked = sum(bool(o) for o in cancel_many(store, page, ttl))
            else:
                worked = store.purge(page)
            done, failed = done + worked, failed + len(page) - worked
            tracker.write(action_id, {"done": done, "failed": failed})
    except Exception as exc:  # reported with the progress; the server goes on
        log.error("bulk %s %s failed: %s", request.action, action_id, exc)
        tracker.write(action_id, {"state": "failed", "error": str(exc)[:500],
                                  "finished_ms": store.reads.now_ms()})  # fmt: skip
        return
    record(store, role, f"bulk {request.action.value} done", request.describe(), done,
           f"id {action_id}, {failed} refused", client)  # fmt: skip
    tracker.write(action_id, {"state": "done", "finished_ms": store.reads.now_ms()})
    log.info("bulk %s %s: %d done, %d failed", request.action, action_id, done, failed)
