"""Listing jobs in any state, newest first, a page at a time (``jobkit jobs``; the query
layer the HTTP API can share).

**Where jobs are found.** Every status has a per-queue index, so a listing never SCANs
the keyspace: queued jobs are in their lanes' ready sets, running ones in ``running``,
scheduled and retrying ones in ``scheduled``, dead ones in ``dead``, and succeeded or
cancelled ones in ``finished`` (keys.py), which the scripts that end a job write with
one ZADD (a whole batch of ``complete.lua`` in one) and the workers' chores trim of
entries older than the records kept (:func:`trim_finished`). An entry whose record has
expired, or whose record now says another status (the job is moving), is passed over.

**What "newest" means.** Each status is ordered by one time (:data:`ORDER_TIME`): queued
by when it became due (its creation, or the retry or revival that queued it again),
running by when its attempt started, scheduled and retrying by when they are due,
succeeded, cancelled and dead by when they ended. ``finished``, ``dead`` and
``scheduled`` are scored by that time already. A ready set is scored by priority band and
FIFO sequence, not time: adding a time index of ready jobs would cost a ZADD on every
dispatch and a ZREM on every claim, the hottest path there is, for a view an operator
opens now and then. So a lane is read in its own order, last in line first (for one
priority that is newest first), and merged with the rest by its jobs' due times read
from their records. ``running`` is scored by lease deadlines, which move with every
renewal, so it is read whole (it holds at most what the workers run, capped at
:data:`RUNNING_CAP` per queue) and sorted by start time.

**Why the cursor is stable.** Each of those ordered sources (a queue's lane, running,
scheduled, dead or finished set) is a *stream*, read in an order that does not change
while a job stays where it is: (score, id) in a sorted set, (start time, id) for running
jobs. A page merges the streams newest first (as the event reader merges queues) and the
cursor keeps, per stream, the position of the last entry the page consumed, or that the
stream was read to its end. The next page resumes every stream strictly after its
position, whatever moved meanwhile. So a job that stays put is listed exactly once; one
that moved after it was listed may show again in its new state (if its new place is
behind that stream's position) or not. Filters (status, name, since) are applied as the
streams are read, so a page stops after :data:`SCAN_BUDGET` entries read even when it
is not full: a selective filter never makes one call read everything; ``next_cursor``
goes on from there. The cursor carries the filters' digest and the resolved ``since``
time, so "since 10m" means the same instant on every page.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import redis

from jobkit.backend.keys import Shard, split_lane
from jobkit.errors import InvalidQuery, UnknownQueue
from jobkit.models import JobRecord, Status
from jobkit.ops import cursor

if TYPE_CHECKING:
    from jobkit.backend.store import Store

LISTABLE = (
    Status.QUEUED,
    Status.RUNNING,
    Status.SCHEDULED,
    Status.RETRYING,
    Status.SUCCEEDED,
    Status.DEAD,
    Status.CANCELLED,
)
# the time each status is ordered by (shown in `jobkit jobs --help`)
ORDER_TIME = {
    Status.QUEUED: "due (created, or queued again)",
    Status.RUNNING: "started",
    Status.SCHEDULED: "due",
    Status.RETRYING: "due",
    Status.SUCCEEDED: "finished",
    Status.DEAD: "finished",
    Status.CANCELLED: "finished",
}
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
RUNNING_CAP = 10_000  # running jobs read per queue (they are what the workers run now)
SCAN_BUDGET = 20_000  # index entries one page reads at most, filtered out or not
_FIELDS = ("status", "name", "due_at", "created_at", "started_at")
_DONE = 0  # a stream's position in the cursor once it was read to its end


@dataclass(frozen=True)
class JobQuery:
    """What to list: statuses (empty: all), queues (empty: all), a job class name, the
    earliest time (ms) by each status's order time, a page size and where to go on."""

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
    """A page of jobs, newest first, and the cursor of the next (None: nothing more)."""

    jobs: list[Listed]
    next_cursor: str | None


Position = tuple[float, str]  # (score or time, id): where a stream was left


@dataclass
class _Entry:
    job_id: str
    order: Position  # where it sits in its stream (stream order, descending)
    at_ms: int  # the time it is listed by (merge order)
    listed: bool  # False: passed over (record gone, moving, or filtered out)


@dataclass
class _Stream:
    """One ordered source of one queue (see the module doc)."""

    queue: str
    kind: str  # "queued", "running", "scheduled", "dead" or "finished"
    key: str
    statuses: frozenset[Status]
    lane: str = ""
    pos: Position | None = None  # the last entry consumed
    read_pos: Position | None = None  # the last entry read
    more: bool = True  # Redis may hold more entries after read_pos
    batch: int = 50
    buffer: deque[_Entry] = field(default_factory=deque)

    @property
    def name(self) -> str:
        return f"{self.queue}\t{self.kind}\t{self.lane}"

    @property
    def by_score(self) -> bool:
        """Whether the set's score is the order time (so ``since`` bounds the read)."""
        return self.kind in ("scheduled", "dead", "finished")

    def settle(self) -> None:
        """Consume the entries at the head that are not listed: never shown, they need
        no turn in the merge, and consuming them moves the position past them."""
        while self.buffer and not self.buffer[0].listed:
            self.pos = self.buffer.popleft().order

    def read(self, pipe: Any, since_ms: int | None) -> None:
        if self.kind == "running":
            pipe.zrange(self.key, 0, RUNNING_CAP - 1)
            return
        top = "+inf" if self.read_pos is None else repr(self.read_pos[0])
        low = str(since_ms) if since_ms is not None and self.by_score else "-inf"
        pipe.zrange(self.key, top, low, desc=True, byscore=True, withscores=True,
                    offset=0, num=self.batch)  # fmt: skip


def list_jobs(store: Store, query: JobQuery) -> JobPage:
    """One page of jobs matching ``query``, newest first (see the module doc)."""
    if not 1 <= query.limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be from 1 to {MAX_LIMIT}, not {query.limit}")
    known = store.queues()
    unknown = sorted(set(query.queues) - set(known))
    if unknown:
        raise UnknownQueue(f"no such queue: {', '.join(unknown)} (known: {', '.join(known)})")
    since_ms, positions = _decode(query)
    match = _Match(query.statuses or frozenset(LISTABLE), query.name, since_ms)
    streams = [
        s
        for s in _streams(store, query.queues or tuple(known), match.statuses)
        if positions.get(s.name) != _DONE
    ]
    for s in streams:
        p = positions.get(s.name)
        if isinstance(p, tuple):
            s.pos = s.read_pos = p
    picked: list[_Entry] = []
    read = 0
    live = list(streams)
    while len(picked) < query.limit and read < SCAN_BUDGET:
        read += _fill(store, [s for s in live if not s.buffer and s.more], match)
        live = [s for s in live if s.buffer or s.more]
        ready = [s for s in live if s.buffer]
        if not ready:
            if live:
                continue  # batches that held nothing to list: read on (within budget)
            break
        head = max(ready, key=lambda s: (s.buffer[0].at_ms, s.buffer[0].job_id))
        entry = head.buffer.popleft()
        head.pos = entry.order
        head.settle()
        picked.append(entry)
    records = store.get_many([e.job_id for e in picked])
    jobs = [Listed(r, e.at_ms) for e, r in zip(picked, records, strict=True) if r is not None]
    finished = all(not s.buffer and not s.more for s in streams)
    return JobPage(jobs, None if finished else _encode(query, since_ms, streams, positions))


@dataclass(frozen=True)
class _Match:
    statuses: frozenset[Status]
    name: str | None
    since_ms: int | None

    def __call__(self, status: Status, name: str | None, at_ms: int) -> bool:
        return (
            status in self.statuses
            and (self.name is None or name == self.name)
            and (self.since_ms is None or at_ms >= self.since_ms)
        )


def _streams(store: Store, queues: Sequence[str], wanted: frozenset[Status]) -> list[_Stream]:
    out: list[_Stream] = []
    lanes = store.tagged_lanes(queues) if Status.QUEUED in wanted else set()
    for queue in queues:
        shard = store.keys.shard(queue)
        if Status.QUEUED in wanted:
            for lane in [queue, *sorted(x for x in lanes if split_lane(x)[0] == queue)]:
                out.append(_Stream(queue, "queued", shard.queue_key(lane), _QUEUED, lane))
        for kind, statuses in _SETS:
            if statuses & wanted:
                out.append(_Stream(queue, kind, getattr(shard, kind), statuses))
    return out


_QUEUED = frozenset({Status.QUEUED})
_SETS = (
    ("running", frozenset({Status.RUNNING})),
    ("scheduled", frozenset({Status.SCHEDULED, Status.RETRYING})),
    ("finished", frozenset({Status.SUCCEEDED, Status.CANCELLED})),
    ("dead", frozenset({Status.DEAD})),
)


def _fill(store: Store, streams: list[_Stream], match: _Match) -> int:
    """Read the next batch of each of ``streams`` and their records' order fields: two
    pipelines through the store's one fan-out, whatever the number of streams. Returns
    how many index entries were read."""
    if not streams:
        return 0
    by_queue = _grouped(streams)
    since = match.since_ms
    replies = store.fan_out(lambda pipe, shard: _each(by_queue, shard, pipe, since), by_queue)
    rows: dict[str, list[tuple[_Stream, str, float]]] = {q: [] for q in by_queue}
    for queue, found in replies.items():
        for s, reply in zip(by_queue[queue], found, strict=True):
            rows[queue] += [(s, job_id, score) for job_id, score in _new_entries(s, reply)]

    def fields(pipe: Any, shard: Shard) -> None:
        for _, job_id, _ in rows[shard.queue]:
            pipe.hmget(shard.job(job_id), _FIELDS)

    for queue, found in store.fan_out(fields, by_queue).items():
        for (s, job_id, score), f in zip(rows[queue], found, strict=True):
            s.buffer.append(_entry(s, job_id, score, f, match))
    for s in streams:
        if s.kind == "running":
            ordered = sorted(s.buffer, key=lambda e: e.order, reverse=True)
            s.buffer = deque(e for e in ordered if s.pos is None or e.order < s.pos)
            s.more = False
        s.batch = max(s.batch, min(s.batch * 4, 1000))
        s.settle()
    return sum(len(r) for r in rows.values())


def _each(by_queue: dict[str, list[_Stream]], shard: Shard, pipe: Any, since: int | None) -> None:
    for s in by_queue[shard.queue]:
        s.read(pipe, since)


def _grouped(streams: Iterable[_Stream]) -> dict[str, list[_Stream]]:
    out: dict[str, list[_Stream]] = {}
    for s in streams:
        out.setdefault(s.queue, []).append(s)
    return out


def _new_entries(s: _Stream, reply: Any) -> list[tuple[str, float]]:
    """The entries of a read past the stream's read position (ties at its score included
    in the read are dropped up to it); ``more`` cleared when the read came back short."""
    if isinstance(reply, redis.ResponseError):  # an index key of another type: nothing
        s.more = False
        return []
    if s.kind == "running":
        return [(str(i), 0.0) for i in reply]
    rows = [(str(i), float(score)) for i, score in reply]
    s.more = len(rows) >= s.batch
    after = [(i, sc) for i, sc in rows if s.read_pos is None or (sc, i) < s.read_pos]
    if rows:
        s.read_pos = (rows[-1][1], rows[-1][0])
        if not after and s.more:  # a whole batch of ties with the position: read on
            s.batch = min(s.batch * 4, 100_000)
    return after


def _entry(s: _Stream, job_id: str, score: float, f: Any, match: _Match) -> _Entry:
    """An index entry with its record's fields: listed only where the record exists, says
    the status this stream holds (else it is moving, or garbage) and matches."""
    gone = isinstance(f, redis.ResponseError) or not f or f[0] is None
    status = None if gone else _status(f[0])
    if s.kind == "queued":
        at = 0 if gone else _ms(f[2]) or _ms(f[3])
        order = (score, job_id)
    elif s.kind == "running":
        at = 0 if gone else _ms(f[4])
        order = (float(at), job_id)
    else:
        at, order = int(score), (score, job_id)
    listed = status in s.statuses and match(status, None if gone else f[1], at)
    return _Entry(job_id, order, at, listed)


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


# -- the cursor ---------------------------------------------------------------------------


def _encode(
    query: JobQuery, since_ms: int | None, streams: list[_Stream], before: dict[str, Any]
) -> str:
    positions: dict[str, Any] = dict(before)
    for s in streams:
        if not s.buffer and not s.more:
            positions[s.name] = _DONE
        elif s.pos is not None:
            positions[s.name] = list(s.pos)
    return cursor.seal(query, since_ms, {"p": positions})


def _decode(query: JobQuery) -> tuple[int | None, dict[str, Any]]:
    """The ``since`` time and the streams' positions a cursor carries (the query's own
    ``since`` and none for the first page)."""
    since, positions = cursor.unseal(query, _positions, "not a cursor of this listing")
    return since, positions or {}


def _positions(data: dict[str, Any]) -> dict[str, Any]:
    return {
        str(name): _DONE if p == _DONE else (float(p[0]), str(p[1]))
        for name, p in data["p"].items()
    }
