"""Listing jobs in any state, newest first, a page at a time (``jobkit jobs``,
``GET /jobs``, the bulk actions).

**Where jobs are found.** Every job is in its queue's ``created`` index from its creation
until its record goes (keys.py), scored by when it was created, and every status has an
index of its own: ``dead`` (by when it died), ``finished`` (succeeded and cancelled, by
when they ended), ``scheduled`` (scheduled and retrying, by when they are due) and
``running``. A listing never SCANs the keyspace.

**One order per listing, that a job keeps.** A listing of one status group reads that
group's index, newest first by its time (the dead by when they died, ...); any other
listing (several groups, queued jobs, or every status) reads ``created``, newest created
first. Either way a job's place is (its time, a hash of its id), which moving to another
status does not change while it is listed: ``created`` keeps its entry whatever the job
does, and a job that leaves a group's index has left the listing's statuses. So the
cursor is that place alone, where the page stopped: the next page resumes every queue's
index strictly after it. A job that existed when the first page was read is listed
exactly once however it moves meanwhile (as long as it still matches), and a cursor is a
few dozen characters whatever the number of queues (:mod:`jobkit.ops.cursor`).

``running`` is scored by lease deadlines, which move with every renewal: it is read whole
(it holds at most what the workers run, capped at :data:`RUNNING_CAP` per queue) and
ordered by start time. Filters (status, name, since) are applied as the indexes are read,
so a page stops after :data:`SCAN_BUDGET` entries read even when it is not full: a
selective filter never makes one call read everything; ``next_cursor`` goes on from
there. An entry whose record has expired, or now says a status the listing does not
want, is passed over.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from jobkit.backend.keys import Shard
from jobkit.backend.problems import Failed, Found, refused
from jobkit.errors import InvalidQuery, UnknownQueue
from jobkit.models import JobRecord, Status
from jobkit.ops import cursor

if TYPE_CHECKING:
    from jobkit.backend.store import Store

LISTABLE = (
    Status.WAITING,
    Status.QUEUED,
    Status.RUNNING,
    Status.SCHEDULED,
    Status.RETRYING,
    Status.SUCCEEDED,
    Status.DEAD,
    Status.CANCELLED,
)
# the indexes of one status group, and the time each is ordered by
_GROUPS = {
    "dead": frozenset({Status.DEAD}),
    "finished": frozenset({Status.SUCCEEDED, Status.CANCELLED}),
    "scheduled": frozenset({Status.SCHEDULED, Status.RETRYING}),
    "running": frozenset({Status.RUNNING}),
}
ORDER_TIME = {
    "created": "created",
    "dead": "finished",
    "finished": "finished",
    "scheduled": "due",
    "running": "started",
}
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
RUNNING_CAP = 10_000  # running jobs read per queue (they are what the workers run now)
SCAN_BUDGET = 20_000  # index entries one page reads at most, filtered out or not
MAX_TIES = 100_000  # entries of one score a read may take to see them all
_FIELDS = ("status", "name", "started_at")
_ANY = ("queued", None, None)  # the fields of an entry listed without reading its record
KIND = "L"  # this listing's cursors (the archive's are "A")


@dataclass(frozen=True)
class JobQuery:
    """What to list: statuses (empty: all), queues (empty: all), a job class name, the
    earliest time (ms) by the listing's order time, a page size and where to go on."""

    statuses: frozenset[Status] = frozenset()
    queues: tuple[str, ...] = ()
    name: str | None = None
    since_ms: int | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    def digest(self) -> str:
        what = [sorted(s.value for s in self.statuses), sorted(self.queues), self.name]
        return hashlib.blake2b(orjson.dumps(what), digest_size=6).hexdigest()


@dataclass(frozen=True)
class Listed:
    """One job of a page and the time (ms) it was ordered by."""

    record: JobRecord
    at_ms: int


@dataclass(frozen=True)
class JobPage:
    """A page of jobs, newest first, the cursor of the next (None: nothing more), and the
    indexes of another type it had to skip, named."""

    jobs: list[Listed]
    next_cursor: str | None
    problems: list[str] = field(default_factory=list)


def index_for(statuses: frozenset[Status]) -> str:
    """The index a listing of ``statuses`` reads: one group's own, else ``created``."""
    for kind, group in _GROUPS.items():
        if statuses and statuses <= group:
            return kind
    return "created"


def tie(job_id: str) -> int:
    """The second half of a job's place: a hash of its id (48 bits), which orders the jobs
    of one millisecond and keeps the cursor short whatever the ids."""
    return int.from_bytes(hashlib.blake2b(job_id.encode(), digest_size=6).digest(), "big")


Place = tuple[int, int]  # (time in ms, tie): a job's place in the listing's order


@dataclass
class _Entry:
    job_id: str
    place: Place
    listed: bool  # False: passed over (record gone, moving, or filtered out)


@dataclass
class _Stream:
    """One queue's index, read newest first in batches from ``top`` (a score, included)."""

    queue: str
    key: str
    kind: str
    top: int | None = None
    batch: int = 50
    more: bool = True
    buffer: list[_Entry] = field(default_factory=list)  # newest first


@dataclass(frozen=True)
class _Match:
    statuses: frozenset[Status]
    name: str | None
    since_ms: int | None
    after: Place | None  # the cursor's position: only places below it

    def everything(self) -> bool:
        """Whether every status and class is wanted (no record needs reading to tell)."""
        return self.name is None and self.statuses == frozenset(LISTABLE)

    def __call__(self, status: Status | None, name: str | None, at_ms: int) -> bool:
        return (
            status in self.statuses
            and (self.name is None or name == self.name)
            and (self.since_ms is None or at_ms >= self.since_ms)
        )


def list_jobs(store: Store, query: JobQuery) -> JobPage:
    """One page of jobs matching ``query``, newest first (see the module doc)."""
    failed: list[Failed] = []
    registry = store.reads.registry()
    picked, next_cursor = _page(store, query, failed, registry)
    records = store.reads.get_many([e.job_id for e in picked])
    jobs = [Listed(r, e.place[0]) for e, r in zip(picked, records, strict=True) if r is not None]
    return JobPage(jobs, next_cursor, registry.problems + store.reads.unreadable(failed))


def id_pages(store: Store, query: JobQuery) -> Iterator[list[str]]:
    """The ids of every job matching ``query``, a page (``query.limit``) at a time, in the
    listing's order: what a bulk action walks, never holding more than a page."""
    while True:
        picked, next_cursor = _page(store, query)
        if picked:
            yield [e.job_id for e in picked]
        if next_cursor is None:
            return
        query = replace(query, cursor=next_cursor)


def _page(
    store: Store,
    query: JobQuery,
    failed: list[Failed] | None = None,
    registry: Found[str] | None = None,
) -> tuple[list[_Entry], str | None]:
    """The entries of one page and the cursor of the next (see the module doc); an index
    of another type is passed over, and added to ``failed``. ``registry``: the queues'
    registry, when the caller read it (an unreadable one names no queue: the queues asked
    for are then taken at their word)."""
    if not 1 <= query.limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be from 1 to {MAX_LIMIT}, not {query.limit}")
    registry = registry or store.reads.registry()
    known = registry.items
    unknown = sorted(set(query.queues) - set(known))
    if unknown and not registry.problems:
        raise UnknownQueue(f"no such queue: {', '.join(unknown)} (known: {', '.join(known)})")
    since_ms, after = cursor.unseal(KIND, query, "not a cursor of this listing")
    kind = index_for(query.statuses)
    match = _Match(query.statuses or frozenset(LISTABLE), query.name, since_ms, after)
    streams = [_Stream(q, getattr(store.keys.shard(q), kind), kind) for q in query.queues or known]
    for s in streams:
        s.top = None if after is None else after[0]
    picked: list[_Entry] = []
    last: Place | None = None  # the place of the last entry merged, listed or not
    read = 0
    while len(picked) < query.limit:
        hungry = [s for s in streams if not s.buffer and s.more]
        if hungry:  # every index must show its next entry before one is picked
            if read >= SCAN_BUDGET and last is not None:
                break  # the next page goes on from `last`
            read += _fill(store, hungry, match, failed)
            continue
        ready = [s for s in streams if s.buffer]
        if not ready:
            break
        head = max(ready, key=lambda s: s.buffer[0].place)
        entry = head.buffer.pop(0)
        last = entry.place
        if entry.listed:
            picked.append(entry)
    done = all(not s.buffer and not s.more for s in streams)
    if done or last is None:
        return picked, None
    return picked, cursor.seal(KIND, query, since_ms, last)


def _fill(store: Store, streams: list[_Stream], match: _Match, failed: list[Failed] | None) -> int:
    """Read the next batch of each of ``streams`` and their records' fields: two
    pipelines through the store's one fan-out, whatever the number of streams. Returns
    how many index entries were read."""
    if not streams:
        return 0
    by_queue = {s.queue: s for s in streams}

    def read(pipe: Any, shard: Shard) -> None:
        s = by_queue[shard.queue]
        if s.kind == "running":
            pipe.zrange(s.key, 0, RUNNING_CAP - 1)
            return
        top = "+inf" if s.top is None else str(s.top)
        low = "-inf" if match.since_ms is None else str(match.since_ms)
        pipe.zrange(s.key, top, low, desc=True, byscore=True, withscores=True,
                    offset=0, num=s.batch)  # fmt: skip

    rows: dict[str, list[tuple[str, int]]] = {}
    for queue, (reply,) in store.reads.fan_out(read, by_queue).items():
        if refused(reply) and failed is not None:
            failed.append(Failed(by_queue[queue].key, "zset", reply))
        rows[queue] = _new_rows(by_queue[queue], reply)

    def fields(pipe: Any, shard: Shard) -> None:
        for job_id, _ in rows[shard.queue]:
            pipe.hmget(shard.job(job_id), _FIELDS)

    if streams[0].kind == "created" and match.everything():
        # nothing to filter by: every entry is listed, and one whose record expired drops
        # out when the page's records are read (a page may come out a job short)
        found_by_queue = {q: [_ANY] * len(r) for q, r in rows.items() if r}
    else:
        found_by_queue = store.reads.fan_out(fields, [q for q in rows if rows[q]])
    for queue, found in found_by_queue.items():
        s = by_queue[queue]
        entries = [
            _entry(s, i, at, f, match) for (i, at), f in zip(rows[queue], found, strict=True)
        ]
        entries.sort(key=lambda e: e.place, reverse=True)
        if match.after is not None:
            entries = [e for e in entries if e.place < match.after]
        s.buffer.extend(entries)
    return sum(len(r) for r in rows.values())


def _new_rows(s: _Stream, reply: Any) -> list[tuple[str, int]]:
    """The (id, score) pairs of a read that are sure to be whole: a full batch may have
    cut the entries of its last score short, so those are read again from that score on
    (a batch of nothing but ties is read again four times as large)."""
    if isinstance(reply, Exception):  # an index key of another type: nothing to list
        s.more = False
        return []
    if s.kind == "running":
        s.more = False
        return [(str(i), 0) for i in reply]
    rows = [(str(i), int(score)) for i, score in reply]
    if len(rows) < s.batch:
        s.more = False
        return rows
    bottom = rows[-1][1]
    whole = [r for r in rows if r[1] > bottom]
    if whole:
        s.top = bottom
        s.batch = min(s.batch * 4, 1000)
    elif s.batch < MAX_TIES:
        s.batch = min(s.batch * 4, MAX_TIES)
    else:  # more jobs of one millisecond than any dispatch makes: take these, go below
        s.top, whole = bottom - 1, rows
    return whole


def _entry(s: _Stream, job_id: str, score: int, f: Any, match: _Match) -> _Entry:
    """An index entry with its record's fields: listed only where the record exists, says
    a status this index holds (else it is moving, or garbage) and matches."""
    gone = isinstance(f, Exception) or not f or f[0] is None
    status = None if gone else _status(f[0])
    at = (0 if gone else _ms(f[2])) if s.kind == "running" else score
    held = s.kind == "created" or status in _GROUPS.get(s.kind, frozenset())
    listed = not gone and held and match(status, f[1], at)
    return _Entry(job_id, (at, tie(job_id)), listed)


def _status(raw: str) -> Status | None:
    try:
        return Status(raw)
    except ValueError:
        return None


def _ms(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0
