"""The worker registry in Redis: who runs, where, doing what (``jobkit workers``).

A supervisor writes its hash with each heartbeat (``worker.lua``), so what a hash says a
worker runs can be one beat old. :meth:`WorkerRegistry.live` therefore checks each job it
names against the job's own record, which its end changes at once: a job that finished
is not shown running, however recent the beat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, cast

import orjson

from jobkit.backend.keys import queue_of
from jobkit.backend.problems import Failed, Found, refused
from jobkit.backend.store import Store
from jobkit.backend.upkeep_calls import WorkerArgs
from jobkit.status import CHILD_OUTCOMES, Outcome
from jobkit.status import FAILED_OUTCOMES as FAILED

# an attempt that did not succeed, in the order the counts are shown
FAILED_OUTCOMES = tuple(o.value for o in CHILD_OUTCOMES if o in FAILED)


@dataclass(frozen=True, slots=True)
class CurrentJob:
    """A job a worker runs now: its id, class and when its attempt started (epoch s)."""

    id: str
    name: str
    since: float | None


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One child process of a worker."""

    pid: int
    started_at: float | None
    rss_mb: float | None
    jobs: list[CurrentJob]
    done: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One live worker (a supervisor) as its last beat and its jobs' records tell it."""

    name: str
    host: str
    pid: int | None
    queues: list[str]
    tags: list[str]
    concurrency: int | None
    state: str
    started_at: float | None
    last_seen: float | None
    rss_mb: float | None
    done: int
    failed: int
    counts: dict[str, int]
    jobs: list[CurrentJob]
    children: list[ChildInfo] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _float(raw: Any) -> float | None:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def _json_list(raw: Any) -> list[Any]:
    try:
        found = orjson.loads(raw) if raw else []
    except orjson.JSONDecodeError:
        return []
    return found if isinstance(found, list) else []


def _split(raw: Any) -> list[str]:
    return [part for part in str(raw or "").split(",") if part]


class WorkerRegistry:
    """Workers' heartbeats in Redis: who runs, where, doing what."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def beat(self, name: str, ttl: int, fields: dict[str, Any]) -> None:
        args = WorkerArgs(name, "beat", ttl).argv(fields.items())
        self.store.run_script("worker", [self.store.keys.base], args)

    def gone(self, name: str) -> None:
        self.store.run_script("worker", [self.store.keys.base], WorkerArgs(name, "gone", 0))

    def prune(self, default_heartbeat: float) -> list[str]:
        """Drop every worker that missed two beats (``default_heartbeat``: the interval
        of one whose hash names none); the names dropped."""
        args = WorkerArgs("", "prune", default_heartbeat)
        pruned = self.store.run_script("worker", [self.store.keys.base], args)
        return [str(n) for n in pruned]

    def all(self) -> Found[dict[str, str]]:
        """Every live worker's hash, most recently seen first; a worker's key or the
        registry's of another type is skipped and named in ``problems``."""
        keys = self.store.keys
        pipe = self.store.redis.pipeline(transaction=False)
        pipe.zrevrange(keys.workers, 0, -1)
        [names] = pipe.execute(raise_on_error=False)
        if refused(names):
            return Found([], self.store.reads.unreadable([Failed(keys.workers, "zset", names)]))
        names = cast(list[str], names)
        pipe = self.store.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.worker(name))
        replies = pipe.execute(raise_on_error=False) if names else []
        pairs = list(zip(names, replies, strict=True))
        failed = [Failed(keys.worker(n), "hash", h) for n, h in pairs if refused(h)]
        hashes = [dict(h, name=n) for n, h in pairs if isinstance(h, dict) and h]
        return Found(hashes, self.store.reads.unreadable(failed))

    def live(self) -> Found[WorkerInfo]:
        """Every live worker with its children, each running job checked against its
        record (see the module doc), most recently seen first; the keys skipped named."""
        found = self.all()
        hashes = found.items
        named = [
            (h["name"], j)
            for h in hashes
            for j in _json_list(h.get("jobs"))
            if isinstance(j, dict) and queue_of(str(j.get("id", ""))) is not None
        ]
        running = self._running(named)
        return Found([self._info(h, running) for h in hashes], found.problems)

    def _running(self, named: list[tuple[str, dict[str, Any]]]) -> dict[str, CurrentJob]:
        """The jobs of ``named`` (worker, job) that their records say run under that
        worker now, by id."""
        pipe = self.store.redis.pipeline(transaction=False)
        for _, job in named:
            pipe.hmget(self.store.keys.job(str(job["id"])), "status", "worker", "started_at")
        replies = pipe.execute(raise_on_error=False) if named else []
        found: dict[str, CurrentJob] = {}
        for (worker, job), reply in zip(named, replies, strict=True):
            if isinstance(reply, list) and reply[0] == "running" and reply[1] == worker:
                started = _float(reply[2])
                since = None if started is None else started / 1000
                found[str(job["id"])] = CurrentJob(str(job["id"]), str(job.get("name")), since)
        return found

    @staticmethod
    def _info(h: dict[str, str], running: dict[str, CurrentJob]) -> WorkerInfo:
        def current(jobs: Any) -> list[CurrentJob]:
            listed = jobs if isinstance(jobs, list) else []
            ids = [str(j.get("id")) for j in listed if isinstance(j, dict)]
            return [running[i] for i in ids if i in running]

        children = [
            ChildInfo(
                pid=_int(c.get("pid")) or 0,
                started_at=_float(c.get("started_at")),
                rss_mb=_float(c.get("rss_mb")),
                jobs=current(c.get("jobs")),
                done=_int(c.get("done")) or 0,
                failed=_int(c.get("failed")) or 0,
            )
            for c in _json_list(h.get("children"))
            if isinstance(c, dict)
        ]
        counts = {k: _int(h.get(k)) or 0 for k in (Outcome.SUCCEEDED.value, *FAILED_OUTCOMES)}
        last_seen = _float(h.get("last_seen"))
        return WorkerInfo(
            name=h["name"],
            host=h.get("host", ""),
            pid=_int(h.get("pid")),
            queues=_split(h.get("queues")),
            tags=_split(h.get("tags")),
            concurrency=_int(h.get("concurrency")),
            state=h.get("state", ""),
            started_at=_float(h.get("started_at")),
            last_seen=None if last_seen is None else last_seen / 1000,
            rss_mb=_float(h.get("rss_mb")),
            done=counts[Outcome.SUCCEEDED.value],
            failed=sum(counts[k] for k in FAILED_OUTCOMES),
            counts=counts,
            jobs=current(_json_list(h.get("jobs"))),
            children=children,
        )
