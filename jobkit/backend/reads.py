"""The read side of Redis (``store.reads``, which holds its
:class:`~jobkit.backend.store.Store`): jobs, counts and queue sizes for handles, the CLI
and HTTP. Garbage in Redis (a key of another type) is reported in what
these return, never raised as a crash of the command that asked.

A view across queues reads every queue's shard through one function, :meth:`Reads.fan_out`:
one pipeline (one round trip per master on a cluster) over the queues of the registry.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import redis

from jobkit.backend.asides import Aside, parse_hash
from jobkit.backend.keys import Keys, Shard, queue_of, split_lane
from jobkit.backend.problems import Failed, Found, name_keys, refused
from jobkit.backend.socket_link import UndecodableReply, raise_errors
from jobkit.models import JobRecord

if TYPE_CHECKING:
    from jobkit.backend.store import Store
    from jobkit.backend.transport import Transport

_SHARD_SETS = ("running", "scheduled", "dead")


class QueueCounts(NamedTuple):
    """One queue's jobs running, scheduled and dead now (None where its key is
    unreadable) and its lifetime totals by outcome."""

    running: int | None
    scheduled: int | None
    dead: int | None
    totals: dict[str, int]


class Counts(NamedTuple):
    """Jobs running, scheduled and dead now across queues (None where a key is
    unreadable), lifetime totals by outcome (succeeded, failed, dead), each queue's own
    figures, unreadable keys, and the keys the scripts set aside (oldest first)."""

    running: int | None
    scheduled: int | None
    dead: int | None
    totals: dict[str, int]
    problems: list[str]
    by_queue: dict[str, QueueCounts]
    asides: list[Aside]

    def as_dict(self) -> dict[str, Any]:
        out = self._asdict()
        out["by_queue"] = {q: c._asdict() for q, c in self.by_queue.items()}
        out["asides"] = [a.as_dict() for a in self.asides]
        return out


class LaneSizes(NamedTuple):
    """Ready jobs per lane (None where the lane's key is unreadable) and those keys."""

    ready: dict[str, int | None]
    problems: list[str]


def _int(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


def _sum(values: Iterable[int | None]) -> int | None:
    values = list(values)
    return None if any(v is None for v in values) else sum(v or 0 for v in values)


class Reads:
    """Plain reads (``store.reads``), on the :class:`~jobkit.backend.store.Store` it
    holds."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.redis: Any = store.redis  # redis.Redis, or redis.cluster.RedisCluster
        self.keys: Keys = store.keys
        self._wire: Transport = store.wire

    def now_ms(self) -> int:
        """Redis's clock (ms), the one every job time comes from."""
        sec, usec = self.redis.time()
        return int(sec) * 1000 + int(usec) // 1000

    # -- across queues ------------------------------------------------------------------

    def queues(self) -> list[str]:
        """Every queue of the registry (see :meth:`Store.register_queues`), sorted; none
        when the registry is unreadable (:meth:`registry` names it)."""
        return self.registry().items

    def registry(self) -> Found[str]:
        """Every queue of the registry, sorted, and the registry named in ``problems``
        when Redis refuses to read it (a key of another type): the views fan out over it,
        so without that message they would show no queue and say nothing."""
        try:
            return Found(sorted(cast(set[str], self.redis.smembers(self.keys.queues))))
        except redis.ResponseError as exc:
            return Found([], self.unreadable([Failed(self.keys.queues, "set", exc)]))

    def fan_out(
        self, add: Callable[[Any, Shard], None], queues: Iterable[str] | None = None
    ) -> dict[str, list[Any]]:
        """Read every queue's shard in one pipeline: ``add(pipe, shard)`` queues a shard's
        commands; their replies by queue (errors in place, not raised). The one way a
        view across queues reads Redis, so none loops over shards on its own."""
        names = self.queues() if queues is None else list(queues)
        pipe = self.redis.pipeline(transaction=False)
        sizes: list[int] = []
        for queue in names:
            before = len(pipe)
            add(pipe, self.keys.shard(queue))
            sizes.append(len(pipe) - before)
        replies = iter(pipe.execute(raise_on_error=False) if len(pipe) else [])
        return {q: [next(replies) for _ in range(n)] for q, n in zip(names, sizes, strict=True)}

    def fan_out_raw(
        self, commands: Callable[[Shard], Sequence[Any]], queues: Iterable[str]
    ) -> dict[str, list[Any]]:
        """As :meth:`fan_out`, for a hot path: ``commands(shard)`` gives a shard's
        commands as argument tuples, sent over the transport, one round trip per master;
        replies by queue as Redis sends them on one node (on a cluster, through redis-py's
        reply parsing), errors in place."""
        names = list(queues)
        batches = [commands(self.keys.shard(queue)) for queue in names]
        flat = [command for batch in batches for command in batch]
        replies = iter(self._wire.pipeline(flat) if flat else [])
        return {q: [next(replies) for _ in b] for q, b in zip(names, batches, strict=True)}

    def unreadable(self, failed: Sequence[Failed]) -> list[str]:
        """One message per key whose read Redis refused (see
        :mod:`jobkit.backend.problems`): what each holds instead."""
        return name_keys(self.redis, failed)

    def counts(self) -> Counts:
        """How many jobs are running, scheduled and dead now, the lifetime totals, per
        queue and in all, and what the scripts set aside (each queue's ``asides``, read in
        the same pipeline). A key of the wrong type is reported in ``problems``."""

        def add(pipe: Any, shard: Shard) -> None:
            for name in _SHARD_SETS:
                pipe.zcard(getattr(shard, name))
            pipe.hgetall(shard.stats)
            pipe.hgetall(shard.asides)

        failed: list[Failed] = []
        per_queue: dict[str, QueueCounts] = {}
        asides: list[Aside] = []
        registry = self.registry()
        for queue, replies in self.fan_out(add, registry.items).items():
            shard = self.keys.shard(queue)
            names = [getattr(shard, n) for n in _SHARD_SETS] + [shard.stats, shard.asides]
            wants = ["zset"] * len(_SHARD_SETS) + ["hash", "hash"]
            failed += [
                Failed(key, want, r)
                for key, want, r in zip(names, wants, replies, strict=True)
                if refused(r)
            ]
            sizes = [None if refused(n) else int(n) for n in replies[:3]]
            stats, noted = replies[3], replies[4]
            own = {} if refused(stats) else {n: _int(v) for n, v in stats.items()}
            per_queue[queue] = QueueCounts(sizes[0], sizes[1], sizes[2], own)
            if not refused(noted):
                asides += parse_hash(queue, noted)
        totals: dict[str, int] = {}
        for c in per_queue.values():
            for name, n in c.totals.items():
                totals[name] = totals.get(name, 0) + n
        return Counts(
            _sum(c.running for c in per_queue.values()),
            _sum(c.scheduled for c in per_queue.values()),
            _sum(c.dead for c in per_queue.values()),
            totals,
            registry.problems + self.unreadable(failed),
            per_queue,
            sorted(asides, key=lambda a: (a.at_ms or 0, a.kept)),
        )

    def queue_sizes(self, lanes: Iterable[str]) -> dict[str, int | None]:
        """Ready jobs per lane (None for a queue key of the wrong type)."""
        return self.lane_sizes(lanes).ready

    def lane_sizes(self, lanes: Iterable[str]) -> LaneSizes:
        """Ready jobs per lane, and the lanes' keys of the wrong type named."""
        by_queue: dict[str, list[str]] = {}
        for lane in lanes:
            by_queue.setdefault(split_lane(lane)[0], []).append(lane)

        def add(pipe: Any, shard: Shard) -> None:
            for lane in by_queue[shard.queue]:
                pipe.zcard(shard.queue_key(lane))

        out: dict[str, int | None] = {}
        failed: list[Failed] = []
        for queue, sizes in self.fan_out(add, by_queue).items():
            shard = self.keys.shard(queue)
            for lane, n in zip(by_queue[queue], sizes, strict=True):
                out[lane] = None if refused(n) else int(n)
                if refused(n):
                    failed.append(Failed(shard.queue_key(lane), "zset", n))
        return LaneSizes(out, self.unreadable(failed))

    def tagged_lanes(self, queues: Iterable[str] | None = None) -> set[str]:
        """Every tagged lane a job was ever sent to, in ``queues`` (default: all)."""

        def add(pipe: Any, shard: Shard) -> None:
            pipe.smembers(shard.lanes)

        found: set[str] = set()
        for (members,) in self.fan_out(add, queues).values():
            if not isinstance(members, Exception):
                found.update(members)
        return found

    def known_lanes(self) -> list[str]:
        """Every queue of the registry and the tagged lanes of each (for `info`)."""
        return sorted({*self.queues(), *self.tagged_lanes()})

    def dead_ids(self, limit: int = 100, offset: int = 0) -> Found[str]:
        """Newest dead jobs first, across queues; a dead set's key of another type is
        skipped and named in ``problems``."""

        def add(pipe: Any, shard: Shard) -> None:
            pipe.zrevrange(shard.dead, 0, offset + limit - 1, withscores=True)

        lists = []
        failed: list[Failed] = []
        registry = self.registry()
        for queue, (members,) in self.fan_out(add, registry.items).items():
            if refused(members):
                failed.append(Failed(self.keys.shard(queue).dead, "zset", members))
                continue
            lists.append([(-score, job_id) for job_id, score in members])
        merged = heapq.merge(*lists)  # each newest first: merge by time, newest first
        ids = [job_id for _, job_id in list(merged)[offset : offset + limit]]
        return Found(ids, registry.problems + self.unreadable(failed))

    # -- one job ------------------------------------------------------------------------

    def get(self, job_id: str, *, wait_ms: int = 0) -> JobRecord | None:
        """The job (None if Redis holds none, or the id names no queue); with
        ``wait_ms``, first register as waiting for its outcome that long, so its
        completion pushes the token :meth:`wait_done` blocks on."""
        if queue_of(job_id) is None:
            return None
        key = self.keys.job(job_id)
        read = ("HGETALL", key)
        if wait_ms:
            register = ("SET", self.keys.of_job(job_id).waiter(job_id), 1, "PX", wait_ms)
            replies = self._wire.pipeline([register, read])
            raise_errors(replies[:1])
            reply = replies[1]
        else:
            reply = self._wire.pipeline([read])[0]
        if isinstance(reply, UndecodableReply):  # text some other client wrote: as best we can
            reply = self.redis.hgetall(key)  # (decodes with U+FFFD)
        if isinstance(reply, redis.ResponseError):  # a key of another type: not a job
            return JobRecord.unreadable(job_id, str(reply))
        if not isinstance(reply, dict):  # RESP2: field, value, field, value ...
            pairs = iter(reply)
            reply = dict(zip(pairs, pairs, strict=True))
        return JobRecord.from_hash(job_id, reply) if reply else None

    def get_many(self, ids: Sequence[str]) -> list[JobRecord | None]:
        """Each job (None where Redis holds none); a key of another type is reported as
        an unreadable record, not raised."""
        readable = [i for i in ids if queue_of(i) is not None]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in readable:
            pipe.hgetall(self.keys.job(job_id))
        found = dict(
            zip(readable, pipe.execute(raise_on_error=False) if readable else [], strict=True)
        )
        out: list[JobRecord | None] = []
        for job_id in ids:
            h = found.get(job_id)
            if isinstance(h, redis.ResponseError):
                out.append(JobRecord.unreadable(job_id, str(h)))
            else:
                out.append(JobRecord.from_hash(job_id, h) if h else None)
        return out

    def job_fields(self, ids: Sequence[str], fields: Sequence[str]) -> list[list[Any] | None]:
        """The named fields of each job's record as Redis holds them, in one round trip
        (one per master on a cluster); None for a job Redis holds nothing of, or whose
        key is no record (or unreadable): the caller keeps what it knows otherwise."""
        keyed = [(job_id, self.keys.job(job_id)) for job_id in ids if queue_of(job_id)]
        if not keyed:
            return [None] * len(ids)
        replies = self._wire.pipeline([("HMGET", key, *fields) for _, key in keyed])
        found = {
            job_id: reply
            for (job_id, _), reply in zip(keyed, replies, strict=True)
            if isinstance(reply, list) and any(value is not None for value in reply)
        }
        return [found.get(job_id) for job_id in ids]

    def wait_done(self, job_id: str, timeout: float) -> bool:
        """Block until the job's completion token exists (left in place for other waiters)."""
        key = self.keys.of_job(job_id).done(job_id)
        return self._wire.execute("BLMOVE", key, key, "RIGHT", "LEFT", timeout) is not None
