"""Searching jobs, live and archived, from one line an operator types (the dashboard's
search box): ``class:SyncAccount status:dead error:Timeout params.account=42 id:…`` and
free words, every part ANDed.

**Live** (Redis): a bounded walk of the newest jobs through the listing's indexes
(:mod:`jobkit.ops.listing`), never a SCAN and never a whole index at once: each queue's
``created`` index newest created first, or one status group's own index when
``status:`` names one group (``status:dead`` reads the dead index, newest death first);
``queue:`` (and an ``id:`` prefix that names a queue) picks the queues read. The
queues' indexes are merged newest first, a batch at a time; each batch's ``status``,
``name``, ``params`` and ``error`` fields come in one round trip (HMGET per job) and
are matched here. The walk stops at ``limit`` matches or after :data:`LIVE_BUDGET` jobs
examined (with the archive searched as well and an archiver reading every queue, only
as far as the archivers' lag, at least :data:`ARCHIVED_BUDGET`: the archive holds the
rest), and the result says how far it looked. An ``id:`` that is a whole id is read
directly instead.

**Archive** (when one is configured): one SQL query with the same filters
(:mod:`jobkit.archive.search`). A job is listed once: where Redis holds it, Redis's
record is the one shown, and only if it matches (the archive's copy may be older).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobkit.archive.lookup import archived_record, history_url
from jobkit.archive.search import Seen, matches, search_archive
from jobkit.backend.archive_feed import ArchiveFeed
from jobkit.backend.keys import Shard, job_id, queue_of
from jobkit.errors import HistoryUnavailable, InvalidQuery
from jobkit.models import JobError, JobRecord, Source, Status
from jobkit.ops.listing import MAX_LIMIT, index_for
from jobkit.ops.search_query import SearchQuery, parse_search

if TYPE_CHECKING:
    from jobkit.backend.store import Store

__all__ = ["LIVE_BUDGET", "SearchQuery", "SearchResult", "parse_search", "search"]

LIVE_BUDGET = 20_000  # live jobs one search examines at most
# ... at least, when the archive was searched too and an archiver reads every queue: it
# holds every job the archivers have read, so the walk need reach only as far as their
# lag (see _archived_budget)
ARCHIVED_BUDGET = 2_000
FIELDS = ("status", "name", "params", "error")  # what matching a live job reads


@dataclass(frozen=True)
class SearchResult:
    """What a search found, newest first, and how far it looked."""

    jobs: list[JobRecord]  # each with its source; an id at most once (Redis wins)
    looked_at: int  # live jobs examined
    live_total: int  # live jobs there are (the created indexes' sizes)
    archive: str  # "searched" | "none" (no archive configured) | "unavailable"
    complete: bool  # the live search examined every live job that could match
    note: str  # one sentence on how far it looked


def search(
    store: Store, query: str | SearchQuery, limit: int = 50, *, budget: int | None = None
) -> SearchResult:
    """Jobs matching ``query`` (text is parsed by :func:`parse_search`), newest created
    first, at most ``limit`` (1 to 1000), live and archived (see the module doc);
    ``budget`` live jobs examined at most (:data:`LIVE_BUDGET`, or the archivers' lag
    once the archive was searched: see :func:`_archived_budget`; unless given)."""
    q = parse_search(query) if isinstance(query, str) else query
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be from 1 to {MAX_LIMIT}, not {limit}")
    total = _live_total(store)
    configured = history_url() is not None
    if q.job_id is not None and queue_of(q.job_id) is not None:
        found = _by_id(store, q, q.job_id, configured, total)
        if found is not None:
            return found
    archive, why, hits = ("none", "", [])
    if configured:
        try:
            hits = search_archive(q, limit) or []
            archive = "searched"
        except HistoryUnavailable as exc:
            archive, why = "unavailable", str(exc)
    if budget is None:
        budget = _archived_budget(store) if archive == "searched" else LIVE_BUDGET
    walk = _walk(store, q, limit, budget)
    live = {r.id: r for r in walk.matched}
    jobs = [(r, _ms(r)) for r in live.values()]
    jobs += _archived_hits(store, q, [(r, at) for r, at in hits if r.id not in live])
    jobs.sort(key=lambda pair: (pair[1], pair[0].id), reverse=True)
    complete = walk.stopped == "end"
    note = _live_note(walk, total, limit) + _archive_note(archive, why)
    return SearchResult([r for r, _ in jobs[:limit]], walk.looked, total, archive, complete, note)


def _archived_budget(store: Store) -> int:
    """How far to walk Redis when the archive was searched: as far as the archivers are
    behind (each job they have not archived yet is at least one event they have not
    read), at least :data:`ARCHIVED_BUDGET`; the whole :data:`LIVE_BUDGET` when a queue
    has no archiver reading it, or lost events to the archive."""
    queues = store.reads.queues()
    lag = ArchiveFeed(store, "search").lag(queues)
    if set(queues) - set(lag) or any(x.lost for x in lag.values()):
        return LIVE_BUDGET
    behind = sum(x.behind for x in lag.values())
    return min(LIVE_BUDGET, max(ARCHIVED_BUDGET, behind))


def _by_id(
    store: Store, q: SearchQuery, wanted: str, configured: bool, total: int
) -> SearchResult | None:
    """The job whose id is ``wanted``, read directly (Redis, else the archive) and
    matched against the rest of the query; None when neither holds it, or the archive
    cannot be read (then the id is taken as a prefix, and the walk says so)."""
    record = store.reads.get(wanted)
    if record is None and configured:
        try:
            record = archived_record(wanted)
        except HistoryUnavailable:
            return None
    if record is None:
        return None
    jobs = [record] if matches(q, _seen(record)) else []
    live = record.source is Source.REDIS
    # a job Redis holds is Redis's to describe (it wins over the archive): the archive
    # has nothing to add, so it counts as searched whenever there is one
    archive = "searched" if configured else "none"
    where = "Redis" if live else "the archive"
    note = f"read the job by its id from {where}" + _archive_note(archive, "")
    return SearchResult(jobs, int(live), total, archive, True, note)


def _archived_hits(
    store: Store, q: SearchQuery, hits: list[tuple[JobRecord, int]]
) -> list[tuple[JobRecord, int]]:
    """Archive hits, each replaced by Redis's record where Redis still holds the job
    (kept only if that matches): one round trip for them all."""
    held = store.reads.get_many([r.id for r, _ in hits]) if hits else []
    out: list[tuple[JobRecord, int]] = []
    for (archived, changed_ms), live in zip(hits, held, strict=True):
        if live is None:
            out.append((archived, _ms(archived) or changed_ms))
        elif matches(q, _seen(live)):
            out.append((live, _ms(live)))
    return out


def _seen(record: JobRecord) -> Seen:
    return Seen(record.id, record.queue, record.name, record.status, record.params_json,
                record.error)  # fmt: skip


def _ms(record: JobRecord) -> int:
    """The time a job sorts by: when it was created (0 when unknown)."""
    return int(record.created_at.timestamp() * 1000) if record.created_at else 0


# -- the live walk ----------------------------------------------------------------------


@dataclass
class _Stream:
    """One queue's index, read newest first from the score ``top`` (included), past the
    ``skip`` entries of that very score read already."""

    queue: str
    key: str
    top: float | None = None
    skip: int = 0
    batch: int = 64
    more: bool = True
    buffer: deque[tuple[float, str]] = field(default_factory=deque)


@dataclass
class _Walk:
    matched: list[JobRecord] = field(default_factory=list)
    looked: int = 0
    stopped: str = "end"  # "end" (every entry read), "limit" or "budget"
    narrowed: bool = False  # some indexes only: a status group's, or some queues'


def _walk(store: Store, q: SearchQuery, limit: int, budget: int) -> _Walk:
    """The newest live jobs matching ``q``, up to ``limit``, ``budget`` examined at
    most: a batch of index entries merged newest first, then their fields in one
    round trip, then the next."""
    kind = index_for(q.statuses)
    known = store.reads.queues()
    queues = [name for name in known if _may_hold(name, q)]
    walk = _Walk(narrowed=kind != "created" or len(queues) < len(known))
    streams = [_Stream(name, getattr(store.keys.shard(name), kind)) for name in queues]
    ids: list[str] = []
    batch = 100
    while walk.looked < budget:
        entries = _merged(store, streams, min(batch, budget - walk.looked))
        if not entries:
            return _finish(store, q, walk, ids)
        batch = min(batch * 2, 1000)
        wanted = [e for e in entries if q.job_id is None or e.startswith(q.job_id)]
        fields = dict(zip(wanted, store.reads.job_fields(wanted, FIELDS), strict=True))
        for n, entry in enumerate(entries, 1):
            found = fields.get(entry)
            if found is not None and matches(q, _fields_seen(entry, found)):
                ids.append(entry)
                if len(ids) >= limit:
                    walk.looked += n
                    walk.stopped = "limit"
                    return _finish(store, q, walk, ids)
        walk.looked += len(entries)
    walk.stopped = "budget"
    if all(not s.buffer and not s.more for s in streams):
        walk.stopped = "end"
    return _finish(store, q, walk, ids)


def _finish(store: Store, q: SearchQuery, walk: _Walk, ids: list[str]) -> _Walk:
    """The matches' whole records (one round trip), each matched again: a job that
    moved since its fields were read is left out."""
    records = store.reads.get_many(ids) if ids else []
    walk.matched = [r for r in records if r is not None and matches(q, _seen(r))]
    return walk


def _may_hold(queue: str, q: SearchQuery) -> bool:
    """Whether ``queue`` may hold a match: it is the one asked for, and the id prefix
    asked for may start one of its ids."""
    if q.queue is not None and queue != q.queue:
        return False
    if q.job_id is None:
        return True
    start = job_id(queue, "")
    return q.job_id.startswith(start) or start.startswith(q.job_id)


def _fields_seen(entry: str, f: list[Any]) -> Seen:
    raw_status, name, params, error = f
    try:
        status = Status(raw_status) if raw_status else None
    except ValueError:
        status = None
    return Seen(entry, queue_of(entry) or "", name or "", status, params or "",
                JobError.from_json(error))  # fmt: skip


def _merged(store: Store, streams: list[_Stream], want: int) -> list[str]:
    """The next ``want`` ids across ``streams``, newest first: every index shows its
    next entry before one is taken, hungry ones read in one round trip together."""
    out: list[str] = []
    while len(out) < want:
        hungry = [s for s in streams if not s.buffer and s.more]
        if hungry:
            _read(store, hungry)
            continue
        ready = [s for s in streams if s.buffer]
        if not ready:
            break
        head = max(ready, key=lambda s: s.buffer[0][0])
        out.append(head.buffer.popleft()[1])
    return out


def _read(store: Store, streams: list[_Stream]) -> None:
    """The next batch of each of ``streams`` (one pipeline through the fan-out). A
    batch may end inside a run of equal scores: the next read starts at that score,
    past the entries of it read already."""
    by_queue = {s.queue: s for s in streams}

    def add(pipe: Any, shard: Shard) -> None:
        s = by_queue[shard.queue]
        top = "+inf" if s.top is None else repr(s.top)
        pipe.zrange(s.key, top, "-inf", desc=True, byscore=True, withscores=True,
                    offset=s.skip, num=s.batch)  # fmt: skip

    for queue, (reply,) in store.reads.fan_out(add, by_queue).items():
        s = by_queue[queue]
        if isinstance(reply, Exception):  # an index key of another type: nothing to walk
            s.more = False
            continue
        rows = [(float(score), str(member)) for member, score in reply]
        s.buffer.extend(rows)
        if len(rows) < s.batch:
            s.more = False
            continue
        last = rows[-1][0]
        tail = sum(1 for score, _ in rows if score == last)
        s.skip = s.skip + tail if s.top == last else tail
        s.top = last
        s.batch = min(s.batch * 4, 1000)


def _live_total(store: Store) -> int:
    def add(pipe: Any, shard: Shard) -> None:
        pipe.zcard(shard.created)

    return sum(n for (n,) in store.reads.fan_out(add).values() if isinstance(n, int))


def _live_note(walk: _Walk, total: int, limit: int) -> str:
    if walk.stopped == "limit":
        return (
            f"stopped at {limit:,} matches, after the newest {walk.looked:,} of {total:,} live jobs"
        )
    if walk.stopped == "budget":
        return f"looked at the newest {walk.looked:,} of {total:,} live jobs"
    if walk.narrowed:
        return f"looked at every live job that could match ({walk.looked:,} of {total:,})"
    return f"looked at all {walk.looked:,} live jobs"


def _archive_note(archive: str, why: str) -> str:
    if archive == "searched":
        return "; the archive was searched"
    if archive == "unavailable":
        return f"; the archive could not be read ({why})"
    return "; there is no archive"
