"""Finding and listing jobs, for ``jobkit job`` / ``jobkit jobs`` and ``GET /jobs``: the
filters parsed once, a job read from Redis or else from the history archive, a page read
from Redis's indexes or from the archive, and the page's JSON shape.

The live listing and the archived one take the same :class:`JobQuery` and give the same
:class:`JobPage`, so a caller only says which it wants.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from datetime import datetime, timezone
from typing import Any

from jobkit import registry, units
from jobkit.archive.lookup import ArchivedAttempt, archived_attempts, archived_record, archived_rows
from jobkit.backend.events import Event, Events
from jobkit.backend.store import Store
from jobkit.connection import get_settings, get_store
from jobkit.errors import InvalidQuery, InvalidTransition, JobNotFound, UnknownJobError
from jobkit.handle import JobHandle
from jobkit.models import TERMINAL_STATUSES, CancelOutcome, JobRecord, Source, Status
from jobkit.ops import cursor
from jobkit.ops.listing import LISTABLE, MAX_LIMIT, JobPage, JobQuery, Listed, list_jobs

ARCHIVE_KIND = "A"  # the archived listing's cursors (the live one's are "L")

__all__ = [
    "ArchivedAttempt",
    "Event",
    "archived_page",
    "attempts_of",
    "cancel_job",
    "dispatch_job",
    "events_of",
    "find_job",
    "job_history",
    "list_page",
    "local_ms",
    "page_as_dict",
    "parse_since",
    "parse_statuses",
    "retry_job",
]


def find_job(store: Store, job_id: str) -> JobRecord | None:
    """The job from Redis, or else as the history archive last saw it (its ``source``
    says which); None when neither holds it."""
    return store.reads.get(job_id) or archived_record(job_id)


def list_page(query: JobQuery, store: Store | None, *, archived: bool = False) -> JobPage:
    """One page of jobs, newest first: from Redis's per-status indexes, or with
    ``archived`` from the history archive (no Redis needed: ``store`` may be None)."""
    if archived:
        return archived_page(query)
    if store is None:
        raise ValueError("the live listing reads Redis: pass a store")
    return list_jobs(store, query)


def archived_page(query: JobQuery) -> JobPage:
    """One page of the history archive matching ``query``, newest change first, with the
    live listing's filters, page size and page shape (read without Redis). Raises
    :class:`InvalidQuery` for a limit out of range or a cursor not of this listing."""
    if not 1 <= query.limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be from 1 to {MAX_LIMIT}, not {query.limit}")
    foreign = "not a cursor of the archived listing (a cursor of the live listing goes without it)"
    since_ms, after = cursor.unseal(ARCHIVE_KIND, query, foreign)
    rows, position = archived_rows(
        query.statuses, query.queues, query.name, since_ms, after, query.limit
    )
    jobs = [Listed(record, at_ms) for record, at_ms in rows]
    if position is None:
        return JobPage(jobs, None)
    return JobPage(jobs, cursor.seal(ARCHIVE_KIND, query, since_ms, position))


def parse_statuses(raw: str | None) -> frozenset[Status]:
    """Comma-separated status names (empty: every status). Raises :class:`InvalidQuery`."""
    if not raw:
        return frozenset()
    names = [s.strip() for s in raw.split(",") if s.strip()]
    known = {s.value: s for s in LISTABLE}
    wrong = [n for n in names if n not in known]
    if wrong or not names:
        raise InvalidQuery(f"{', '.join(wrong) or raw!r} is not a status: use {', '.join(known)}")
    return frozenset(known[n] for n in names)


def parse_since(raw: str, now_ms: Callable[[], int]) -> int:
    """Epoch ms of ``raw``: an ISO time (UTC unless it says otherwise), or a duration
    (90s, 10m, 2h, 1d) counted back from ``now_ms()``. Raises :class:`InvalidQuery`."""
    try:
        ago = units.seconds(raw)
    except ValueError:
        pass
    else:
        return now_ms() - int(ago * 1000)
    try:
        at = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidQuery(
            f"since: {raw!r} is neither an ISO time (2024-05-01T12:00) nor a duration (10m, 2h)"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return int(at.timestamp() * 1000)


def local_ms() -> int:
    """This host's clock: what ``since`` counts back from for the archive, which is read
    without Redis (its times came from Redis, so a skewed host shifts the bound)."""
    return int(time.time() * 1000)


def page_as_dict(page: JobPage) -> dict[str, Any]:
    """``{"jobs": [...], "next_cursor": ..., "problems": [...]}``: each job's view with
    the time it is listed by, ``at``, and the indexes skipped (keys of another type)."""
    listed = []
    for item in page.jobs:
        at = listed_at(item.at_ms)
        listed.append({**item.record.as_dict(), "at": at.isoformat() if at else None})
    return {"jobs": listed, "next_cursor": page.next_cursor, "problems": page.problems}


def listed_at(ms: int) -> datetime | None:
    """The time a job is listed by (None for none known)."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms > 0 else None


EVENT_SCAN = 50_000  # stream entries a job's history reads at most (its queue's others too)


def events_of(store: Store, record: JobRecord, scan: int | None = EVENT_SCAN) -> list[Event]:
    """Every state change of a job Redis holds, oldest first, as far as the events go:
    read between its creation and its end (a job that ended), at most ``scan`` entries of
    its queue's stream."""
    since = int(record.created_at.timestamp() * 1000) if record.created_at else None
    until = None
    if record.status in TERMINAL_STATUSES and record.finished_at is not None:
        until = int(record.finished_at.timestamp() * 1000) + 1000  # events of its end
    return Events(store).of_job(record.id, since_ms=since, until_ms=until, scan=scan)


def attempts_of(record: JobRecord) -> list[ArchivedAttempt]:
    """The archived attempts of a job (empty without an archive)."""
    return archived_attempts(record.id)


def job_history(store: Store, record: JobRecord) -> dict[str, Any]:
    """What a job went through: ``{"history": [events]}`` from Redis's event stream for a
    live job, ``{"attempts_archived": [...]}`` for one read from the archive."""
    if record.source is Source.ARCHIVE:
        return {"attempts_archived": [a.as_dict() for a in attempts_of(record)]}
    return {"history": [e.as_dict() for e in events_of(store, record)]}


def waited_by(store: Store, record: JobRecord) -> list[str]:
    """The jobs dispatched to wait for ``record`` (see jobkit.workflow); one look in
    Redis only for a job some wait for."""
    return store.flows.dependants(record.id) if record.waited_for else []


def job_document(store: Store, record: JobRecord, history: bool = False) -> dict[str, Any]:
    """The one JSON shape of a job (``jobkit job --json``, ``GET /jobs/{id}``, and each
    job of a listing without ``history``): its record (``id``, ``status``, ``source``:
    redis or archive, ...), ``progress`` (the latest attempt's: see docs/progress.md),
    ``waits_for`` and ``waited_by`` (the jobs it depends on, those that depend on it:
    see jobkit.workflow) and, with ``history``, :func:`job_history`'s key."""
    view = record.as_dict()
    view["progress"] = None if record.progress is None else record.progress.as_dict()
    view["waits_for"] = list(record.waits_for)
    view["waited_by"] = waited_by(store, record)
    if history:
        view.update(job_history(store, record))
    return view


def retry_job(store: Store, job_id: str) -> JobRecord:
    """Send a dead job back to its queue with a fresh attempt budget, or a retrying one
    back now (see revive.lua); the job as it is now. Raises :class:`JobNotFound` for an
    unknown id and :class:`InvalidTransition` for a job in another state."""
    if not store.revive(job_id):  # JobNotFound for an id that names no queue
        rec = store.reads.get(job_id)
        if rec is None:
            raise JobNotFound(f"no job {job_id!r}")
        raise InvalidTransition(
            f"job {job_id} is {rec.status.value}: only dead or retrying jobs are retried"
        )
    rec = store.reads.get(job_id)
    if rec is None:  # purged in the instant since
        raise JobNotFound(f"no job {job_id!r}")
    return rec


def cancel_job(store: Store, job_id: str) -> CancelOutcome:
    """Withdraw a job not started, or have its worker stop a running one (see
    :meth:`Store.cancel`); a refusal says why."""
    return store.cancel(job_id, get_settings().result_ttl)


def dispatch_job(
    name: str,
    params: dict[str, Any],
    store: Store | None = None,
    allowed: Collection[str] | None = None,
    **options: Any,
) -> JobHandle:
    """Dispatch the job class registered as ``name`` (one of ``allowed``, if given) with
    ``params`` and dispatch options (``queue``, ``priority``, ``delay``, ``at``,
    ``job_id``). Raises :class:`UnknownJobError` for a name not registered (or not
    allowed), and whatever :meth:`BaseJob.dispatch_params` refuses."""
    if allowed is not None and name not in allowed:
        raise UnknownJobError(f"no job named {name!r}")
    cls = registry.lookup(name)
    return cls.dispatch_params(params, store=store or get_store(), **options)
