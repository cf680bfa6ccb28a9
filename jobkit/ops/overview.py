"""The state of every queue at a glance (``jobkit info``, and the HTTP API): per queue the
jobs ready, running, scheduled, retrying and dead, how long the job next in line has
waited, the rates of finished attempts over 1, 5 and 15 minutes (from the event streams),
the live workers serving it, and the archive's lag (events ``jobkit archiver`` has not
archived yet; None for a queue no archiver reads); and totals for the fleet.

Everything is read through the store's one fan-out (:meth:`Reads.fan_out`) and the event
reader, so a cluster is asked per master as one node is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from jobkit.backend.archive_feed import ArchiveFeed
from jobkit.backend.asides import Aside
from jobkit.backend.events import Events, Rates
from jobkit.backend.keys import split_lane
from jobkit.backend.problems import Found, unique
from jobkit.backend.reads import Counts
from jobkit.backend.worker_registry import WorkerRegistry
from jobkit.ops.queues import Queues

if TYPE_CHECKING:
    from jobkit.backend.keys import Shard
    from jobkit.backend.store import Store

# Scheduled jobs whose status is read to tell retries from delays, per queue at most:
# beyond it the split is scaled from the ones read.
STATUS_SAMPLE = 2000


@dataclass
class QueueView:
    """One queue now (None where a key is unreadable)."""

    queue: str
    ready: int | None
    running: int | None
    scheduled: int | None  # delayed jobs not due yet
    retrying: int | None  # jobs waiting out a retry back-off
    dead: int | None
    paused: bool
    next_waited_s: float | None  # how long the job next in line has been waiting
    per_minute: dict[str, dict[str, float]]  # done / failed -> 1m / 5m / 15m
    workers: list[str] = field(default_factory=list)
    archive_lag: int | None = None  # events not archived yet; None: no archiver reads it
    archive_lost: bool = False  # events trimmed before an archiver read them
    totals: dict[str, int] = field(default_factory=dict)  # its lifetime outcomes

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Overview:
    """Every queue's :class:`QueueView`, the fleet's totals, and what they were read from:
    each lane's ready jobs and the counts by state (with the keys set aside)."""

    queues: list[QueueView]
    fleet: dict[str, Any]
    lanes: dict[str, int | None]
    counts: Counts

    @property
    def asides(self) -> list[Aside]:
        """Every key the scripts set aside, oldest first (see :mod:`jobkit.backend.asides`)."""
        return self.counts.asides

    def as_dict(self) -> dict[str, Any]:
        """The one JSON shape of ``jobkit info --json`` and ``GET /stats`` (docs/json.md):
        ``{"queues": [one per queue], "lanes": {lane: ready}, "fleet": {totals of every
        queue}, "problems": [unreadable keys]}``."""
        fleet = {k: v for k, v in self.fleet.items() if k != "problems"}
        return {
            "queues": [v.as_dict() for v in self.queues],
            "lanes": self.lanes,
            "fleet": fleet,
            "problems": self.fleet["problems"],
        }


PerMinute = Callable[[str], dict[str, dict[str, float]]]


def overview(store: Store, per_minute: PerMinute | None = None) -> Overview:
    """Every queue at a glance (see the module doc). ``per_minute(queue)`` gives a queue's
    rates where the caller keeps them already (the dashboard's
    :class:`~jobkit.ops.throughput.Throughput`); without it they are read from the last
    15 minutes of events."""
    lanes = store.reads.known_lanes()
    sized = store.reads.lane_sizes(lanes)
    sizes = sized.ready
    counts = store.reads.counts()
    states = Queues(store).states(sizes, counts)
    queues = [state.queue for state in states]
    now_ms = store.reads.now_ms()
    heads = queue_heads(store, lanes)
    split = _retrying(store, queues)
    if per_minute is None:
        rates = Events(store).rates(now_ms, queues)
        per_minute = lambda queue: rates.get(queue, Rates()).per_minute()  # noqa: E731
    lag = ArchiveFeed(store, "info").lag(queues)
    registry = WorkerRegistry(store).live()  # keys of another type: named, not fatal
    live = registry.items
    serving: dict[str, list[str]] = {q: [] for q in queues}
    for worker in live:
        for queue in worker.queues:
            serving.setdefault(queue.split(":", 1)[0], []).append(worker.name)
    views = []
    for state in states:
        scheduled, retrying = split.get(state.queue, (None, None))
        oldest = heads.get(state.queue)
        views.append(
            QueueView(
                queue=state.queue,
                ready=state.ready,
                running=state.running,
                scheduled=scheduled,
                retrying=retrying,
                dead=state.dead,
                paused=state.paused,
                next_waited_s=None if oldest is None else max(0.0, (now_ms - oldest) / 1000),
                per_minute=per_minute(state.queue),
                workers=sorted(serving.get(state.queue, [])),
                archive_lag=lag[state.queue].behind if state.queue in lag else None,
                archive_lost=state.queue in lag and lag[state.queue].lost,
                totals=dict(own.totals) if (own := counts.by_queue.get(state.queue)) else {},
            )
        )
    fleet = {
        "ready": sum(v.ready or 0 for v in views),
        "running": counts.running,
        "scheduled": sum(v.scheduled or 0 for v in views),
        "retrying": sum(v.retrying or 0 for v in views),
        "dead": counts.dead,
        "workers": len(live),
        "totals": counts.totals,
        "per_minute": _sum_rates([v.per_minute for v in views]),
        # None: no archiver has read any queue
        "archive_lag": sum(x.behind for x in lag.values()) if lag else None,
        "problems": unique(sized.problems + counts.problems + registry.problems),
    }
    return Overview(views, fleet, sizes, counts)


def queue_rows(store: Store) -> Found[dict[str, Any]]:
    """The one JSON shape of ``jobkit queues --json`` and ``GET /queues``: every queue,
    its ready, running, scheduled and dead jobs (None where a key is unreadable), paused
    or not, and how long the job next in line has waited (s; None with nothing waiting);
    the unreadable keys named in ``problems``."""
    now_ms = store.reads.now_ms()
    lanes = store.reads.known_lanes()
    heads = queue_heads(store, lanes)
    sized = store.reads.lane_sizes(lanes)
    counts = store.reads.counts()
    rows = []
    for state in Queues(store).states(sized.ready, counts):
        head = heads.get(state.queue)
        waited = None if head is None else max(0.0, (now_ms - head) / 1000)
        rows.append({**state.as_dict(), "next_waited_s": waited})
    return Found(rows, unique(sized.problems + counts.problems))


def queue_heads(store: Store, lanes: list[str]) -> dict[str, int]:
    """Per queue, when the job next in line (the head of each lane) became due (ms)."""
    by_queue: dict[str, list[str]] = {}
    for lane in lanes:
        by_queue.setdefault(split_lane(lane)[0], []).append(lane)

    def add(pipe: Any, shard: Shard) -> None:
        for lane in by_queue[shard.queue]:
            pipe.zrange(shard.queue_key(lane), 0, 0)

    heads: dict[str, list[str]] = {}
    for queue, replies in store.reads.fan_out(add, by_queue).items():
        heads[queue] = [r[0] for r in replies if isinstance(r, list) and r]

    def times(pipe: Any, shard: Shard) -> None:
        for job_id in heads[shard.queue]:
            pipe.hmget(shard.job(job_id), "due_at", "created_at")

    out: dict[str, int] = {}
    for queue, replies in store.reads.fan_out(times, [q for q in heads if heads[q]]).items():
        due = [int(d or c) for d, c in (r for r in replies if isinstance(r, list)) if d or c]
        if due:
            out[queue] = min(due)
    return out


def _retrying(store: Store, queues: list[str]) -> dict[str, tuple[int, int]]:
    """Per queue, the jobs in ``scheduled`` split into (delayed, retrying): read from the
    statuses of up to :data:`STATUS_SAMPLE` of them, scaled for the rest."""

    def add(pipe: Any, shard: Shard) -> None:
        pipe.zcard(shard.scheduled)
        pipe.zrange(shard.scheduled, 0, STATUS_SAMPLE - 1)

    found = store.reads.fan_out(add, queues)
    ids = {q: r[1] for q, r in found.items() if isinstance(r[1], list)}

    def statuses(pipe: Any, shard: Shard) -> None:
        for job_id in ids[shard.queue]:
            pipe.hget(shard.job(job_id), "status")

    out: dict[str, tuple[int, int]] = {}
    for queue, replies in store.reads.fan_out(statuses, [q for q in ids if ids[q]]).items():
        total = found[queue][0]
        retry = sum(1 for r in replies if r == "retrying")
        if isinstance(total, int):
            retry = round(retry * total / max(1, len(replies)))
            out[queue] = (total - retry, retry)
    for queue in queues:
        total = found.get(queue, [None])[0]
        if queue not in out and isinstance(total, int):
            out[queue] = (total, 0)
    return out


def _sum_rates(rates: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for one in rates:
        for kind, windows in one.items():
            into = out.setdefault(kind, {})
            for label, n in windows.items():
                into[label] = round(into.get(label, 0.0) + n, 2)
    return out
