"""Reading the event streams: every state change of every job, one capped stream per queue
(``events`` in :mod:`jobkit.backend.keys`), appended by the very script that made the
change (see ``event`` in ``scripts/_lib.lua``), so the record and the change agree.

Every view of what happened is read from here: a job's attempt history (``jobkit job``),
a worker's last jobs (``jobkit workers show``, also after it stopped), the rates in
``jobkit info`` and the feed of recent events. An entry's stream id is the Redis time
(ms) of the change. Streams are capped by length as they are written
(``JOBKIT_EVENTS_MAXLEN``) and by age by the workers' chores (``JOBKIT_EVENTS_MAX_AGE``):
what is older than the cap is gone, and the views say "as far as the events go".
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import redis

from jobkit.status import NOT_FAILED, Status

if TYPE_CHECKING:
    from jobkit.backend.keys import Shard
    from jobkit.backend.store import Store

BATCH = 1000  # entries read per round trip
# an attempt that ended: what a worker "has done"
ENDINGS = frozenset({Status.SUCCEEDED, Status.RETRYING, Status.DEAD, Status.CANCELLED})
WINDOWS = (60, 300, 900)  # seconds: the rates' 1, 5 and 15 minutes


class Event(NamedTuple):
    """One state change of one job (a tuple: the archiver makes tens of thousands a
    second)."""

    at_ms: int  # Redis time of the change
    seq: str  # the stream entry's id (unique within its queue)
    queue: str
    id: str
    job_class: str
    from_status: str  # '' for a job just created
    to_status: str
    attempt: int
    worker: str
    duration_ms: int | None  # how long the attempt ran, for one that ended
    reason: str
    error_type: str = ""  # a failed attempt's error: its type ...
    error_message: str = ""  # ... and the start of its message

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.at_ms / 1000, tz=timezone.utc)

    @property
    def ended_attempt(self) -> bool:
        """Whether this event ends an attempt (from running to anything)."""
        return self.from_status == "running"

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "queue": self.queue,
            "id": self.id,
            "class": self.job_class,
            "from": self.from_status or None,
            "to": self.to_status,
            "attempt": self.attempt,
            "worker": self.worker or None,
            "duration_ms": self.duration_ms,
            "reason": self.reason or None,
            "error_type": self.error_type or None,
            "error_message": self.error_message or None,
        }


def parse(queue: str, entry: Any) -> tuple[Event, ...]:
    """The events of an entry as XRANGE returns it, ``(id, {field: value})`` through
    redis-py or ``[id, [field, value, ...]]`` as Redis sends it: one, or a batch's (a
    dispatch_many call's, a claim's or a completion's jobs in one entry, see ``events``
    in _lib.lua); none if it is no event."""
    try:
        seq, fields = entry
        if isinstance(fields, list):
            pairs = iter(fields)
            fields = dict(zip(pairs, pairs, strict=True))
        seq = str(seq)
        get = fields.get
        if "jobs" in fields:
            return _batch(queue, seq, get("from", ""), get("to", ""), fields["jobs"])
        ms = get("ms")
        # positional, in Event's field order (the archiver parses tens of thousands a second)
        return (
            Event(
                int(seq.partition("-")[0]),
                seq,
                queue,
                fields["id"],
                get("class", ""),
                get("from", ""),
                get("to", ""),
                int(get("attempt") or 0),
                get("worker", ""),
                int(float(ms)) if ms else None,
                get("reason", ""),
                get("error", ""),
                get("message", ""),
            ),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return ()


def _batch(queue: str, seq: str, from_: str, to: str, jobs: str) -> tuple[Event, ...]:
    """A batch entry's events: ``jobs`` a JSON array of [id, class, attempt, worker, ms];
    a job of another shape is left out, not the batch."""
    at = int(seq.partition("-")[0])
    out = []
    for job in orjson.loads(jobs):
        try:
            job_id, job_class, attempt, worker, ms = job
            out.append(
                Event(at, seq, queue, str(job_id), job_class or "", from_, to,
                      int(attempt or 0), worker or "", int(float(ms)) if ms else None, "")
            )  # fmt: skip
        except (TypeError, ValueError):
            continue
    return tuple(out)


class Events:
    """Reads of the event streams of one store's queues."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _walk(
        self,
        queues: Iterable[str],
        newest_first: bool,
        start: str | None = None,
        end: str | None = None,
    ) -> Iterator[Event]:
        """Every event of ``queues`` in time order (or newest first), between the stream
        ids ``start`` and ``end`` (both included; None: no bound), read lazily in
        batches through the store's one fan-out, merged across queues."""
        streams = {q: self._stream(q, newest_first, start, end) for q in queues}
        merged = heapq.merge(
            *streams.values(), key=lambda e: (e.at_ms, e.seq), reverse=newest_first
        )
        yield from merged

    def _stream(
        self, queue: str, newest_first: bool, start: str | None, end: str | None
    ) -> Iterator[Event]:
        low, high = start or "-", end or "+"
        while True:
            shard_replies = self.store.reads.fan_out(_ranger(newest_first, low, high), [queue]).get(
                queue, [[]]
            )
            batch = shard_replies[0]
            if isinstance(batch, redis.ResponseError):
                return  # an events key of another type: nothing to read
            for entry in batch:
                yield from parse(queue, entry)
            if len(batch) < BATCH:
                return
            last = str(batch[-1][0])
            if newest_first:
                high = "(" + last
            else:
                low = "(" + last

    def between(
        self,
        queue: str,
        start: str | None = None,
        end: str | None = None,
        *,
        newest_first: bool = False,
    ) -> Iterator[Event]:
        """The events of one queue between the stream ids ``start`` and ``end`` (both
        included; ``(`` before an id excludes it; None: no bound), read lazily in batches."""
        return self._stream(queue, newest_first, start, end)

    def of_job(
        self,
        job_id: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
        scan: int | None = None,
    ) -> list[Event]:
        """Every event of one job, oldest first, from ``since_ms`` (its creation) to
        ``until_ms`` (its end, for one that ended; None: now), looking at no more than
        ``scan`` entries of its queue's stream (None: no bound). The stream holds every
        queue's job, so a busy queue makes the window's read long: the bounds keep a
        page's read short."""
        return self.job_events(job_id, since_ms, until_ms, scan)[0]

    def job_events(
        self, job_id: str, since_ms: int | None, until_ms: int | None, scan: int | None
    ) -> tuple[list[Event], bool]:
        """:meth:`of_job`, and whether the scan bound cut the read short."""
        queue = job_id.partition(":")[0]
        start = str(since_ms) if since_ms is not None else None
        end = str(until_ms) if until_ms is not None else None
        found: list[Event] = []
        for read, event in enumerate(self._walk([queue], False, start, end), 1):
            if event.id == job_id:
                found.append(event)
            if scan is not None and read >= scan:
                return found, True
        return found, False

    def of_worker(self, name: str, limit: int = 20) -> list[Event]:
        """The last ``limit`` attempts worker ``name`` ended (its children lease under
        their supervisor's name), newest first, in any queue."""
        out: list[Event] = []
        for event in self._walk(self.store.reads.queues(), True):
            if event.ended_attempt and event.worker == name:
                out.append(event)
                if len(out) >= limit:
                    break
        return out

    def recent(self, limit: int = 50, queues: Iterable[str] | None = None) -> list[Event]:
        """The last ``limit`` events of ``queues`` (default: every queue), newest first."""
        names = self.store.reads.queues() if queues is None else list(queues)
        out = []
        for event in self._walk(names, True):
            out.append(event)
            if len(out) >= limit:
                break
        return out

    def rates(self, now_ms: int, queues: Iterable[str] | None = None) -> dict[str, Rates]:
        """Per queue: attempts that succeeded and that failed in the last 1, 5 and 15
        minutes, per minute, as far as the events go."""
        names = self.store.reads.queues() if queues is None else list(queues)
        out = {q: Rates() for q in names}
        since = str(now_ms - WINDOWS[-1] * 1000)
        for queue in names:
            for event in self._walk([queue], False, since):
                if event.ended_attempt:
                    out[queue].count(event, now_ms)
        return out

    def trim(self, queues: Iterable[str], max_age: float, now_ms: int) -> None:
        """Drop events older than ``max_age`` seconds."""
        oldest = str(now_ms - int(max_age * 1000))
        self.store.reads.fan_out(
            lambda pipe, shard: pipe.execute_command("XTRIM", shard.events, "MINID", oldest),
            queues,
        )


@dataclass
class Rates:
    """Attempts that ended, by outcome, in each window (see :data:`WINDOWS`)."""

    done: tuple[int, int, int] = (0, 0, 0)
    failed: tuple[int, int, int] = (0, 0, 0)

    def count(self, event: Event, now_ms: int) -> None:
        age = (now_ms - event.at_ms) / 1000
        hits = tuple(1 if age <= w else 0 for w in WINDOWS)
        if event.to_status == "succeeded":
            self.done = _add(self.done, hits)
        elif failed(event):
            self.failed = _add(self.failed, hits)

    def per_minute(self) -> dict[str, dict[str, float]]:
        """{"done": {"1m": ..., "5m": ..., "15m": ...}, "failed": {...}}: per minute."""
        labels = [f"{w // 60}m" for w in WINDOWS]
        return {
            kind: {
                label: round(n / (w / 60), 2)
                for label, n, w in zip(labels, counts, WINDOWS, strict=True)
            }
            for kind, counts in (("done", self.done), ("failed", self.failed))
        }


def failed(event: Event) -> bool:
    """Whether an event ends an attempt that failed: it left `running` for anything but
    success or a cancel, and not as a hand-back (:data:`NOT_FAILED`)."""
    return (
        event.ended_attempt
        and event.to_status not in ("succeeded", "cancelled")
        and event.reason not in NOT_FAILED
    )


def _add(a: tuple[int, int, int], b: tuple[int, ...]) -> tuple[int, int, int]:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _ranger(newest_first: bool, low: str, high: str) -> Callable[[Any, Shard], None]:
    def add(pipe: Any, shard: Shard) -> None:
        if newest_first:
            pipe.xrevrange(shard.events, high, low, count=BATCH)
        else:
            pipe.xrange(shard.events, low, high, count=BATCH)

    return add
