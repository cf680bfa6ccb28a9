"""The supervisor's periodic Redis work: promote due jobs, reap lapsed leases, renew its
children's leases, beat into the worker registry, check memory, and notice when Redis
lost its data.

Each chore fails alone. Redis out of reach pauses them all (one log line per retry, with
exponential back-off); any other error (a script refusing a key of the wrong type, a bug)
is logged once per kind and that chore backs off, while the others, and the supervisor's
children, go on. Nothing here ever stops the worker.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import orjson

from jobkit import registry
from jobkit.backend import asides
from jobkit.backend.batch import trim_finished
from jobkit.backend.events import Events
from jobkit.backend.store import Lease
from jobkit.backend.transport import RedisError, ResponseError
from jobkit.backend.worker_registry import FAILED_OUTCOMES
from jobkit.worker.child_limits import ChildState, rss_bytes
from jobkit.worker.protocol import Held

if TYPE_CHECKING:
    from jobkit.worker.supervisor import Supervisor

log = logging.getLogger("jobkit.worker")

TICK = 0.05  # seconds between checks of timeouts, children's messages and due jobs
CHECK_EVERY = 1.0  # seconds between looks for cancelled jobs, and at memory and age
TRIM_EVERY = 60.0  # seconds between trims of the event streams by age
# A job's end shows in `jobkit workers` at once (its record is checked), so its counts
# must follow within a second rather than at the next heartbeat: the registry is beaten
# again this soon after the counts moved. Coalesced, so a worker ending thousands of
# jobs a second still beats at most 1 / EARLY_BEAT times a second, and nothing is added
# to a job's own path.
EARLY_BEAT = 0.25
# How often the notices of jobs that ended are delivered to jobs of other queues waiting
# for them: a chain across queues takes up to this long a step. One XREADGROUP per queue.
NOTICES_EVERY = 0.25

LeaseKey = tuple[int, str]  # (child pid, handle): one lease of one child


class Chores:
    """Runs each chore when it is due (see the module docstring)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor
        settings = supervisor.settings
        self.lease_ms = int(settings.lease * 1000)
        # (what, chore, every how many seconds, whether it talks to Redis)
        self.every: list[tuple[str, Callable[[], object], float, bool]] = [
            ("promoting due jobs", self._promote, TICK, True),
            # what ended here, told to jobs of other queues waiting for it (see flows)
            ("delivering dependency notices", self._deliver, NOTICES_EVERY, True),
            ("reaping lapsed leases", self._reap, min(1.0, settings.lease / 4), True),
            ("checking Redis kept its data", self._check_data, settings.heartbeat, True),
            # the renewal's reply names the jobs cancelled meanwhile: stopped within a second
            ("renewing leases", self._renew, min(settings.heartbeat, CHECK_EVERY), True),
            ("worker heartbeat", self._beat, settings.heartbeat, True),
            # what the children it starts take, read fresh for them (see Child.run)
            ("reading Redis's argument limit", self._learn_limit, settings.heartbeat, True),
            # an early beat once jobs ended (see EARLY_BEAT); most rounds it sends nothing,
            # so its success says nothing about Redis: not a Redis chore for the guard
            ("worker heartbeat after jobs ended", self._beat_if_counted, EARLY_BEAT, False),
            ("checking children's limits", self._check_limits, CHECK_EVERY, False),
            ("trimming old events", self._trim_events, TRIM_EVERY, True),
            ("trimming the finished jobs' index", self._trim_finished, TRIM_EVERY, True),
            ("looking for keys set aside", self._note_asides, CHECK_EVERY, True),
        ]
        self.due = [0.0] * len(self.every)
        self.contact = False  # the first round trip, which checks Redis's config, done
        self.marker: str | None = None  # the marker Redis held when we last looked
        self.run_id = ""  # Redis's run_id at first contact ('' if INFO is refused)
        self.lost: set[LeaseKey] = set()  # leases known lost: reported once, not renewed
        self.beaten = -1  # the jobs counted when the last beat went out (-1: none yet)
        self.asides: set[str] = set()  # keys set aside that this worker has logged

    def run(self, now: float) -> None:
        """Run every chore that is due; an outage ends the round."""
        guard = self.sup.guard
        if not self.connect(now):
            return
        for i, (what, chore, every, redis_chore) in enumerate(self.every):
            if now < self.due[i]:
                continue
            backoff = guard.call(what, chore, redis=redis_chore)
            self.due[i] = now + (every if backoff is None else max(every, backoff))
            if guard.outage.down:
                return

    def connect(self, now: float) -> bool:
        """Make first contact with Redis unless made (Redis's config checked, scripts
        loaded, the data marker read); False while Redis is out of reach."""
        guard = self.sup.guard
        if not guard.outage.ready(now):
            return False
        if not self.contact:
            # only an outage postpones the rest: a step Redis refuses (CONFIG or INFO
            # disabled, say) is logged and skipped
            guard.call("first contact with Redis", self._first_contact)
            if guard.outage.down:
                return False
            self.contact = True
        return True

    # -- at first contact -------------------------------------------------------------

    def _first_contact(self) -> None:
        store = self.sup.store
        if self.marker is None:  # first: all else may fail without a false alarm later
            self.marker = self._mark()
        try:
            self.run_id = str(store.redis.info("server").get("run_id", ""))
        except ResponseError:
            self.run_id = ""  # INFO may be refused (ACL): the marker still tells
        self._warn_about_redis()
        store.learn_argument_limit()
        store.load_scripts()
        store.register_queues(self.sup.options.queues)

    def _warn_about_redis(self) -> None:
        client = self.sup.store.redis
        try:
            config = client.config_get("maxmemory-policy")
            config.update(client.config_get("appendonly"))
            config.update(client.config_get("save"))
        except ResponseError:
            return  # CONFIG is often disabled on managed Redis: nothing to check
        if config.get("maxmemory-policy", "noeviction") != "noeviction":
            log.warning(
                "Redis maxmemory-policy is %s: Redis may evict jobs; use noeviction",
                config["maxmemory-policy"],
            )
        if config.get("appendonly") != "yes" and not config.get("save"):
            log.warning("Redis has no persistence (no AOF, no RDB): a restart loses jobs")

    def _mark(self) -> str | None:
        """Write the marker unless there is one; the marker Redis holds now."""
        client, key = self.sup.store.redis, self.sup.store.keys.marker
        client.set(key, f"{self.sup.name} {int(time.time())} {os.urandom(6).hex()}", nx=True)
        return cast(str | None, client.get(key))

    # -- the chores -------------------------------------------------------------------

    def _learn_limit(self) -> None:
        self.sup.store.learn_argument_limit()

    def _promote(self) -> None:
        self.sup.store.leasing.promote(self.sup.options.queues)

    def _deliver(self) -> None:
        self.sup.store.flows.deliver(self.sup.options.queues, self.sup.name)

    def _trim_events(self) -> None:
        """Drop events older than JOBKIT_EVENTS_MAX_AGE from this worker's queues' streams
        (their length is capped as they are written)."""
        store = self.sup.store
        Events(store).trim(
            self.sup.options.queues, self.sup.settings.events_max_age, store.reads.now_ms()
        )

    def _trim_finished(self) -> None:
        """Drop entries of the `finished` index (jobkit jobs) older than the longest
        result_ttl of this worker's job classes: their records have expired. Entries of a
        job with a shorter one are passed over by the listing until then."""
        ttls = [cls.result_ttl or 0 for cls in registry.registered().values()]
        longest = max([self.sup.settings.result_ttl, *ttls])
        store = self.sup.store
        trim_finished(store, self.sup.options.queues, longest, store.reads.now_ms())

    def _reap(self) -> None:
        for job_id, outcome in self.sup.store.leasing.reap(
            self.sup.settings.max_crashes, self.sup.options.queues
        ):
            if outcome == "returned":
                log.info("job %s: its lease lapsed before it started; back in its queue", job_id)
            elif outcome == "invalid":
                log.error("job %s: its record is invalid; dead-lettered (invalid_record)", job_id)
            else:
                log.warning("job %s: lease expired (worker lost); %s", job_id, outcome)

    def _note_asides(self) -> None:
        """Log once, as an ERROR, each shared key of this worker's queues that a script
        found holding the wrong type and set aside (see set_aside in _lib.lua)."""
        store, queues = self.sup.store, self.sup.options.queues
        pipe = store.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.hgetall(store.keys.shard(queue).asides)
        for queue, fields in zip(queues, pipe.execute(raise_on_error=False), strict=True):
            if not isinstance(fields, dict):  # the record itself is garbage: doctor says
                continue
            for found in asides.parse_hash(queue, fields):
                if found.kept not in self.asides:
                    self.asides.add(found.kept)
                    log.error("%s held a %s, not a %s: set aside as %s, and queue %s goes "
                              "on (%s; jobkit doctor lists it)", found.key, found.found,
                              found.want, found.kept, queue, found.note)  # fmt: skip

    def _held(self) -> list[tuple[LeaseKey, Held]]:
        """Every lease the children hold, but those known lost."""
        found = [
            ((state.pid, handle), job)
            for state in self.sup.children.values()
            for handle, job in state.jobs()
        ]
        self.lost.intersection_update(key for key, _ in found)  # forget what left
        return [(key, job) for key, job in found if key not in self.lost]

    def _check_data(self) -> None:
        """The marker seen at first contact is gone, or is another one (a worker that
        noticed first wrote it again): Redis lost its data (restarted without
        persistence, flushed, or the keys deleted). Say so loudly, once per loss and
        worker, with what it cost this worker."""
        store = self.sup.store
        seen = cast(str | None, store.redis.get(store.keys.marker))
        if seen is not None and seen == self.marker:
            return
        if seen is None:
            seen = self._mark()
        known, self.marker = self.marker, seen
        if known is None:  # no marker known yet: nothing to compare with
            return
        held = self._held()
        pipe = store.redis.pipeline(transaction=False)
        for _, job in held:
            pipe.exists(store.keys.job(job.id))
        gone = [key for (key, _), exists in zip(held, pipe.execute(), strict=True) if not exists]
        self.lost.update(gone)
        log.error(
            "Redis lost its data (%s): every job, queue and result it held is gone, "
            "%d job(s) this worker holds among them (their results will be dropped)",
            self._cause(),
            len(gone),
        )

    def _cause(self) -> str:
        try:
            run_id = str(self.sup.store.redis.info("server").get("run_id", ""))
        except RedisError:
            run_id = ""
        if self.run_id and run_id and run_id != self.run_id:
            self.run_id = run_id
            return "restarted without persistence"
        if self.run_id and run_id:
            return "flushed, or its keys deleted, while it ran"
        return "restarted without persistence, or flushed"

    def _renew(self) -> None:
        held = self._held()
        pairs = [(job.id, job.token) for _, job in held]
        flags = self.sup.store.leasing.heartbeat(self.lease_ms, pairs)
        # a flag is false only when another attempt holds the lease now, or the job is
        # gone: an attempt that just ended (its message not read yet) is not a loss
        for (key, job), lease in zip(held, flags, strict=True):
            if lease is Lease.LOST:
                self.lost.add(key)
                log.warning("job %s %s: lease lost (expired or taken over)", job.name, job.id)
            elif lease is Lease.CANCEL and (state := self.sup.children.get(key[0])):
                self.sup.settler.cancel(state, key[1], job)

    def _check_limits(self) -> None:
        self.sup.settler.check_limits(time.monotonic())

    def _counted(self) -> int:
        """Every outcome counted so far: it only grows, so a change since the last beat
        means some job ended (each child's counts move with the worker's)."""
        return sum(self.sup.counts.values())

    def _beat_if_counted(self) -> None:
        if self._counted() != self.beaten:
            self._beat()

    def _beat(self) -> None:
        sup = self.sup
        counted = self._counted()
        # `jobkit workers` checks each job against its record: one that ended since this
        # beat is not shown running
        children = [_child_entry(state) for state in sup.children.values()]
        jobs = [job for child in children for job in child["jobs"]]
        rss = sum(rss_bytes(pid) for pid in sup.children) + rss_bytes(os.getpid())
        ttl = max(10, int(sup.settings.heartbeat * 3))
        sup.workers.beat(
            sup.name,
            ttl,
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "queues": ",".join(sup.options.queues),
                "tags": ",".join(sup.options.tags),
                "concurrency": sup.options.concurrency,
                "started_at": int(sup.started_at),
                "state": "stopping" if sup.stopping else "running",
                "jobs": orjson.dumps(jobs).decode(),
                "children": orjson.dumps(children).decode(),
                "heartbeat": sup.settings.heartbeat,
                "rss_mb": round(rss / 2**20, 1),
                **sup.counts,
            },
        )
        self.beaten = counted  # only once it went out: a failed beat is tried again


def _child_entry(state: ChildState) -> dict[str, Any]:
    """One child as the worker registry shows it: pid, start, RSS and the jobs it runs."""
    return {
        "pid": state.pid,
        "started_at": round(time.time() - (time.monotonic() - state.born), 3),
        "rss_mb": round(rss_bytes(state.pid) / 2**20, 1),
        "done": state.counts.get("succeeded", 0),
        "failed": sum(state.counts.get(k, 0) for k in FAILED_OUTCOMES),
        "jobs": [
            {"id": job.id, "name": job.name}
            for handle in state.running()
            if (job := state.job(handle)) is not None
        ],
    }
