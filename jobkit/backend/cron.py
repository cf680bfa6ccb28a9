"""Redis access for cron schedules and the scheduler's wake-ups (store layer: every Redis
command of the scheduler is issued here, on top of a :class:`~jobkit.backend.store.Store`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

import orjson
from redis.client import PubSub
from redis.cluster import RedisCluster

from jobkit.backend.calls import (
    CronFireArgs,
    CronFireReply,
    CronJob,
    CronPauseArgs,
    CronRunArgs,
    PromoteArgs,
)
from jobkit.backend.keys import job_id as make_job_id
from jobkit.backend.keys import queue_of
from jobkit.backend.leasing import promoted as promoted_in
from jobkit.backend.problems import Failed, Found, refused
from jobkit.backend.store import ScriptCall, Store
from jobkit.models import NewJob


def cron_job(job: NewJob) -> CronJob:
    """The fields of ``job`` every slot's job of a schedule shares."""
    return CronJob(job.name, job.lane, job.params_json, job.priority, job.max_attempts,
                   job.timeout, job.result_ttl, job.limits, job.spec.version)  # fmt: skip


class SlotOutcome(IntEnum):
    """What cron_fire did with one slot (its reply's codes: see its header)."""

    FIRED = 1  # its job was enqueued
    PAUSED = 2  # skipped: it fell due while the schedule was paused
    HANDLED = 0  # already handled, by this scheduler or another
    NOT_DUE = -1  # not due yet by Redis time


@dataclass(frozen=True, slots=True)
class FireResult:
    """What the cron_fire script did with one slot."""

    slot: int
    job_id: str
    code: SlotOutcome
    detail: str  # 'queued', 'paused', the existing job's status, or ms to wait


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
    paused_at: float | None  # set while paused (cron_pause.lua)
    resumed_at: float | None  # the last resume: no slot due before it fires
    runs_now: int  # jobs enqueued by run-now (cron_run.lua)

    @property
    def paused(self) -> bool:
        """Whether the schedule is paused: due slots are skipped, not enqueued."""
        return self.paused_at is not None

    @classmethod
    def from_hash(cls, key: str, h: dict[str, str]) -> ScheduleState:
        def num(field: str) -> int | None:
            raw = h.get(field)
            return int(raw) if raw else None

        def seconds(field: str) -> float | None:
            ms = num(field)
            return None if ms is None else ms / 1000

        return cls(
            key=key,
            cursor=num("cursor"),
            last_slot=num("last_slot"),
            last_job=h.get("last_job") or None,
            last_fired_at=seconds("last_fired_at"),
            next_slot=num("next_slot"),
            fired=num("fired") or 0,
            skipped=num("skipped") or 0,
            paused_at=seconds("paused"),
            resumed_at=seconds("resumed_at"),
            runs_now=num("runs_now") or 0,
        )


@dataclass(frozen=True, slots=True)
class LastJob:
    """What a schedule's last job's record says of it (None fields: not recorded)."""

    status: str
    reason: str | None  # why it is dead (exception, timeout, ...)
    error: str | None  # its last error's type and message, cut short
    finished_at: float | None  # epoch seconds

    @classmethod
    def from_fields(cls, fields: Sequence[str | None]) -> LastJob | None:
        status, reason, error, finished = fields
        if not status:
            return None
        return cls(status, reason or None, _error_line(error), _ms(finished))


def _ms(raw: str | None) -> float | None:
    try:
        return int(raw or "") / 1000
    except ValueError:
        return None


ERROR_CHARS = 200


def _error_line(raw: str | None) -> str | None:
    """``Type: message`` of a job's recorded error (JSON; the traceback left out)."""
    if not raw:
        return None
    try:
        error = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:ERROR_CHARS]
    if not isinstance(error, dict):
        return str(error)[:ERROR_CHARS]
    line = ": ".join(str(error[k]) for k in ("type", "message") if error.get(k))
    return line[:ERROR_CHARS] or None


class BoundSchedule(Protocol):
    """What this module needs of a schedule (:class:`jobkit.cron.BoundSchedule`):
    the store layer does not import the job layer above it."""

    @property
    def key(self) -> str: ...

    @property
    def queue(self) -> str: ...

    def job_id(self, slot: int) -> str: ...


class Plan(Protocol):
    """What cron_fire needs of a round's plan (:class:`jobkit.cron.Plan`)."""

    @property
    def next(self) -> int: ...

    @property
    def skip_to(self) -> int: ...

    @property
    def missed(self) -> int: ...

    @property
    def fire(self) -> Sequence[int]: ...


def run_now_id(bound: BoundSchedule) -> str:
    """A fresh id for a run-now job of ``bound``: its slots' form with ``now-<128 random
    bits>`` for the slot, so it never takes a slot's id (all digits) nor another run's."""
    return make_job_id(bound.queue, f"cron:{bound.key}:now-{os.urandom(16).hex()}")


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
        calls: list[ScriptCall] = [
            ("promote", [self.keys.shard(queue).base], PromoteArgs(limit)) for queue in queues
        ]
        if isinstance(self.store.redis, RedisCluster):
            promoted = self.store.run_scripts(calls)
            sec, usec = self.store.redis.time()  # refused in a cluster pipeline: no key
        else:
            pipe = self.store.redis.pipeline(transaction=False)
            for name, keys, args in calls:
                self.store.queue_script(pipe, name, keys, args)
            pipe.time()
            *promoted, (sec, usec) = pipe.execute()
        moved, wait = promoted_in(promoted)
        return moved, wait, sec + usec / 1_000_000

    def _key(self, bound: BoundSchedule) -> str:
        """A schedule's state lives in its job class's queue's shard, with the jobs it
        enqueues: one slot for cron_fire."""
        return self.keys.shard(bound.queue).schedule(bound.key)

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
            head = CronFireArgs(bound.key, plan.next, plan.skip_to, plan.missed, len(plan.fire),
                                cron_job(job))  # fmt: skip
            args = head.argv((slot, bound.job_id(slot)) for slot in plan.fire)
            keys = [self.keys.shard(bound.queue).base, self._key(bound)]
            calls.append(("cron_fire", keys, args))
        out = []
        for (bound, _, plan), raw in zip(items, self.store.run_scripts(calls), strict=True):
            reply = CronFireReply.parse(raw)
            results = [
                FireResult(slot, bound.job_id(slot), SlotOutcome(code), detail)
                for slot, (code, detail) in zip(plan.fire, reply.results, strict=False)
            ]
            out.append((reply.advanced, results))
        return out

    def _call(self, bound: BoundSchedule) -> list[str]:
        """The keys of a script about ``bound``: its queue's shard, then its hash."""
        return [self.keys.shard(bound.queue).base, self._key(bound)]

    def pause(self, bound: BoundSchedule) -> bool:
        """Pause ``bound``: its due slots are skipped (the cursor moves past them) until
        it is resumed; False if it was paused already."""
        return bool(self.store.run_script("cron_pause", self._call(bound), CronPauseArgs("pause")))

    def resume(self, bound: BoundSchedule) -> bool:
        """Resume ``bound``: its next slot fires, none of the pause's; False if it was
        not paused."""
        args = CronPauseArgs("resume")
        return bool(self.store.run_script("cron_pause", self._call(bound), args))

    def run_now(self, bound: BoundSchedule, job: NewJob) -> str:
        """Enqueue ``bound``'s job now, outside its slots, under a fresh id (see
        :func:`run_now_id`), and record it as the schedule's last run; ``job`` carries
        its fields (its own id goes unused). The id of the job created."""
        job_id = run_now_id(bound)
        args = CronRunArgs(bound.key, job_id, cron_job(job)).argv()
        # a reply saying the id exists is this call's own, sent again after a lost reply
        self.store.run_script("cron_run", self._call(bound), args)
        return job_id

    def states(self, schedules: Sequence[BoundSchedule]) -> Found[ScheduleState]:
        """The stored state of each schedule (empty fields for one never run, or whose
        hash is of another type: that key is named in ``problems``)."""
        pipe = self.store.redis.pipeline(transaction=False)
        for bound in schedules:
            pipe.hgetall(self._key(bound))
        replies = pipe.execute(raise_on_error=False) if schedules else []
        failed = [
            Failed(self._key(b), "hash", h)
            for b, h in zip(schedules, replies, strict=True)
            if refused(h)
        ]
        states = [
            ScheduleState.from_hash(b.key, {} if refused(h) else h)
            for b, h in zip(schedules, replies, strict=True)
        ]
        return Found(states, self.store.reads.unreadable(failed))

    def last_jobs(self, ids: Sequence[str | None]) -> list[LastJob | None]:
        """What the record of each job id says (None where there is no id, or its record
        is gone: a finished job's expires after its result_ttl)."""
        known = [i for i in ids if i and queue_of(i) is not None]
        pipe = self.store.redis.pipeline(transaction=False)
        for job_id in known:
            pipe.hmget(self.keys.job(job_id), "status", "reason", "error", "finished_at")
        replies = pipe.execute(raise_on_error=False) if known else []
        found = {
            job_id: LastJob.from_fields(reply) if isinstance(reply, list) else None
            for job_id, reply in zip(known, replies, strict=True)
        }
        return [found.get(i) if i else None for i in ids]
