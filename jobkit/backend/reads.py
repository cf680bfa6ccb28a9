"""The read side of :class:`~jobkit.backend.store.Store`: jobs, counts and queue sizes for
handles, the CLI and HTTP. Garbage in Redis (a key of another type) is reported in what
these return, never raised as a crash of the command that asked."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, cast

import redis

from jobkit.backend.keys import Keys
from jobkit.backend.wire import UndecodableReply, Wire, raise_errors
from jobkit.models import JobRecord


class Counts(NamedTuple):
    """Jobs running, scheduled and dead now (None where the key is unreadable), lifetime
    totals by outcome (succeeded, failed, dead), and unreadable keys."""

    running: int | None
    scheduled: int | None
    dead: int | None
    totals: dict[str, int]
    problems: list[str]

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


def _int(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


class Reads:
    """Plain reads, mixed into :class:`~jobkit.backend.store.Store`."""

    redis: redis.Redis
    keys: Keys
    _wire: Wire

    def get(self, job_id: str, *, wait_ms: int = 0) -> JobRecord | None:
        """The job; with ``wait_ms``, first register as waiting for its outcome that
        long, so its completion pushes the token :meth:`wait_done` blocks on."""
        read = ("HGETALL", self.keys.job(job_id))
        if wait_ms:
            register = ("SET", self.keys.waiter(job_id), 1, "PX", wait_ms)
            replies = self._wire.pipeline([register, read])
            raise_errors(replies[:1])
            reply = replies[1]
        else:
            reply = self._wire.pipeline([read])[0]
        if isinstance(reply, UndecodableReply):  # text some other client wrote: as best we can
            reply = self.redis.hgetall(self.keys.job(job_id))  # (decodes with U+FFFD)
        if isinstance(reply, redis.ResponseError):  # a key of another type: not a job
            return JobRecord.unreadable(job_id, str(reply))
        if not isinstance(reply, dict):  # RESP2: field, value, field, value ...
            pairs = iter(reply)
            reply = dict(zip(pairs, pairs, strict=True))
        return JobRecord.from_hash(job_id, reply) if reply else None

    def get_many(self, ids: Sequence[str]) -> list[JobRecord | None]:
        """Each job (None where Redis holds none); a key of another type is reported as
        an unreadable record, not raised."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self.keys.job(job_id))
        out: list[JobRecord | None] = []
        for job_id, h in zip(ids, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(h, redis.ResponseError):
                out.append(JobRecord.unreadable(job_id, str(h)))
            else:
                out.append(JobRecord.from_hash(job_id, h) if h else None)
        return out

    def wait_done(self, job_id: str, timeout: float) -> bool:
        """Block until the job's completion token exists (left in place for other waiters)."""
        key = self.keys.done(job_id)
        return self._wire.execute("BLMOVE", key, key, "RIGHT", "LEFT", timeout) is not None

    def counts(self) -> Counts:
        """How many jobs are running, scheduled and dead now, and the lifetime totals.
        A shared key of the wrong type is reported in ``problems``, not raised."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        for key in (k.running, k.scheduled, k.dead):
            pipe.zcard(key)
        pipe.hgetall(k.stats)
        *sizes, stats = pipe.execute(raise_on_error=False)
        keys = (k.running, k.scheduled, k.dead, k.stats)
        problems = [
            f"{key}: {reply}"
            for key, reply in zip(keys, (*sizes, stats), strict=True)
            if isinstance(reply, Exception)
        ]
        running, scheduled, dead = (None if isinstance(n, Exception) else int(n) for n in sizes)
        totals = {} if isinstance(stats, Exception) else {n: _int(v) for n, v in stats.items()}
        return Counts(running, scheduled, dead, totals, problems)

    def queue_sizes(self, lanes: Iterable[str]) -> dict[str, int | None]:
        """Ready jobs per lane (None for a queue key of the wrong type)."""
        lanes = list(lanes)
        pipe = self.redis.pipeline(transaction=False)
        for lane in lanes:
            pipe.zcard(self.keys.queue(lane))
        sizes = pipe.execute(raise_on_error=False)
        return {
            lane: None if isinstance(n, Exception) else int(n)
            for lane, n in zip(lanes, sizes, strict=True)
        }

    def tagged_lanes(self) -> set[str]:
        """Every lane a tagged job was ever sent to (none if that set is unreadable)."""
        try:
            return cast(set[str], self.redis.smembers(self.keys.lanes))
        except redis.ResponseError:
            return set()

    def known_lanes(self) -> list[str]:
        """Every lane with jobs waiting, found by SCAN (for `info` and `--tags '*'`)."""
        prefix = self.keys.queue("")
        found = {
            key.removeprefix(prefix)
            for key in self.redis.scan_iter(match=self.keys.queue("*"), count=500)
        }
        found.update(self.tagged_lanes())
        return sorted(found)

    def dead_ids(self, limit: int = 100, offset: int = 0) -> list[str]:
        """Newest dead jobs first. Raises ``redis.ResponseError`` if the dead set's key
        holds another type."""
        return cast(list[str], self.redis.zrevrange(self.keys.dead, offset, offset + limit - 1))
