"""Redis access for cron schedules and the scheduler's wake-ups (store layer: every Redis
command of the scheduler is issued here, on top of a :class:`~jobkit.backend.store.Store`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.client import PubSub
from redis.cluster import RedisCluster

from jobkit.backend.keys import queue_of
from jobkit.backend.store import ScriptCall, Store
from jobkit.models import NewJob
from jobkit.schedule import BoundSchedule, Plan


@dataclass(frozen=True, slots=True)
class FireResult:
    """What the cron_fire script did with one slot."""

    slot: int
    job_id: str
    code: int  # 1 enqueued, 0 already handled, -1 not due yet by Redis time
    detail: str  # 'queued', the existing job's status, or ms to wait


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """A schedule's hash in Redis, parsed; times are epoch seconds."""

    key: str
    cursor: int | None
    last_slot: int | None
    last_job: str | None
    last_fired_at: float | None
    next_slot: int | None
    fired: int
    skipped: int

    @classmethod
    def from_hash(cls, key: str, h: dict[str, str]) -> ScheduleState:
        def num(field: str) -> int | None:
            raw = h.get(field)
            return int(raw) if raw else None

        fired_ms = num("last_fired_at")
        return cls(
            key=key,
            cursor=num("cursor"),
            last_slot=num("last_slot"),
            last_job=h.get("last_job") or None,
            last_fired_at=None if fired_ms is None else fired_ms / 1000,
            next_slot=num("next_slot"),
            fired=num("fired") or 0,
            skipped=num("skipped") or 0,
        )


class WakeListener:
    """The scheduler's subscription to the ``sched:wake`` channel.

    A dedicated connection, so waiting is a local poll on its socket: Redis rounds the
    timeouts of blocking commands (BLPOP) to its ``hz`` tick, up to 100 ms late, which
    would blow the lateness budget. Messages carry the new due time in ms (Redis time).
    """

    def __init__(self, store: Store) -> None:
        pubsub: PubSub = store.redis.pubsub(ignore_subscribe_messages=True)
        self._pubsub = pubsub
        self._pubsub.psubscribe(store.keys.sched_wake_pattern)  # every queue's channel
        self._prefix = "{" + store.keys.prefix + ":"
        self.queues: set[str] = set()  # queues heard from (a scheduler adds them at once)

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` s; the earliest due time announced meanwhile, or None.
        The queues announcing are added to :attr:`queues`.

        May return None early (a subscription confirmation); callers loop to their deadline.
        """
        msg = self._pubsub.get_message(timeout=max(0.0, timeout))
        earliest: int | None = None
        while msg is not None:
            due = _due_ms(msg)
            if due is not None and (earliest is None or due < earliest):
                earliest = due
            queue = _queue(msg, self._prefix)
            if queue:
                self.queues.add(queue)
            msg = self._pubsub.get_message(timeout=0.0)  # coalesce a burst of wake-ups
        return earliest

    def close(self) -> None:
        self._pubsub.close()


def _queue(msg: dict[str, Any], prefix: str) -> str | None:
    """The queue whose channel ``{prefix:queue}:sched:wake`` a message came on."""
    channel = str(msg.get("channel") or "")
    if not channel.startswith(prefix):
        return None
    return channel[len(prefix) :].split("}", 1)[0] or None


def _due_ms(msg: dict[str, Any]) -> int | None:
    if msg.get("type") not in ("message", "pmessage"):
        return None
    try:
        return int(float(msg["data"]))
    except (TypeError, ValueError):
        return None


class ScheduleStore:
    """Schedule state and the atomic slot firing, for one :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys = store.keys

    def now(self) -> float:
        """Redis server time, epoch seconds."""
        sec, usec = self.store.redis.time()
        return float(sec + usec / 1_000_000)

    def promote_and_time(self, queues: Sequence[str], limit: int) -> tuple[int, int, float]:
        """Promote due delayed jobs of ``queues`` and read Redis time, in one round trip
        (one per master on a cluster).

        Returns (moved, ms until the next scheduled entry of any or -1, Redis time in s).
        """
        calls = [("promote", [self.keys.shard(queue).base], (limit,)) for queue in queues]
        if isinstance(self.store.redis, RedisCluster):
            promoted = self.store.run_scripts(calls)
            sec, usec = self.store.redis.time()  # refused in a cluster pipeline: no key
        else:
            pipe = self.store.redis.pipeline(transaction=False)
            for name, keys, args in calls:
                self.store.queue_script(pipe, name, keys, args)
            pipe.time()
            *promoted, (sec, usec) = pipe.execute()
        moved, wait = 0, -1
        for n, ms in promoted:
            moved += int(n)
            if int(ms) >= 0:
                wait = int(ms) if wait < 0 else min(wait, int(ms))
        return moved, wait, sec + usec / 1_000_000

    def _key(self, bound: BoundSchedule) -> str:
        """A schedule's state lives in its job class's queue's shard, with the jobs it
        enqueues: one slot for cron_fire."""
        return self.keys.shard(bound.job.queue).schedule(bound.key)

    def cursors(self, schedules: Sequence[BoundSchedule]) -> dict[str, int | None]:
        """The last handled slot of each schedule, by key (None: never handled)."""
        pipe = self.store.redis.pipeline(transaction=False)
        for bound in schedules:
            pipe.hget(self._key(bound), "cursor")
        replies = pipe.execute()
        return {b.key: int(v) if v else None for b, v in zip(schedules, replies, strict=True)}

    def fire(self, bound: BoundSchedule, job: NewJob, plan: Plan) -> tuple[bool, list[FireResult]]:
        """Run cron_fire for ``plan``; ``job`` carries the fields every slot's job shares.

        Returns (whether this call moved the cursor, one result per slot it looked at).
        """
        [out] = self.fire_many([(bound, job, plan)])
        return out

    def fire_many(
        self, items: Sequence[tuple[BoundSchedule, NewJob, Plan]]
    ) -> list[tuple[bool, list[FireResult]]]:
        """:meth:`fire` for several schedules in one round trip (one script call each)."""
        calls: list[ScriptCall] = []
        for bound, job, plan in items:
            args: list[Any] = [bound.key, plan.next, plan.skip_to, plan.missed, len(plan.fire)]
            args.extend((job.name, job.lane, job.params_json, job.priority,
                         job.max_attempts, job.timeout, job.result_ttl, job.limits))  # fmt: skip
            for slot in plan.fire:
                args.extend((slot, bound.job_id(slot)))
            keys = [self.keys.shard(bound.job.queue).base, self._key(bound)]
            calls.append(("cron_fire", keys, args))
        out = []
        for (bound, _, plan), raw in zip(items, self.store.run_scripts(calls), strict=True):
            results = [
                FireResult(slot, bound.job_id(slot), int(code), str(detail))
                for slot, code, detail in zip(plan.fire, raw[1::2], raw[2::2], strict=False)
            ]
            out.append((bool(raw[0]), results))
        return out

    def states(self, schedules: Sequence[BoundSchedule]) -> list[ScheduleState]:
        """The stored state of each schedule (empty fields for one never run)."""
        pipe = self.store.redis.pipeline(transaction=False)
        for bound in schedules:
            pipe.hgetall(self._key(bound))
        replies = pipe.execute()
        return [ScheduleState.from_hash(b.key, h) for b, h in zip(schedules, replies, strict=True)]

    def job_statuses(self, ids: Sequence[str]) -> list[str | None]:
        """The status of each job id (None where the hash is gone)."""
        known = [i for i in ids if queue_of(i) is not None]
        pipe = self.store.redis.pipeline(transaction=False)
        for job_id in known:
            pipe.hget(self.keys.job(job_id), "status")
        found = dict(zip(known, pipe.execute() if known else [], strict=True))
        return [cast(str | None, found.get(i)) for i in ids]
