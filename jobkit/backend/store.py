"""Redis access for one prefix: the Lua transitions of :mod:`jobkit.backend.scripts` on
the key schema of :mod:`jobkit.backend.keys`, over the transport of the deployment (see
:mod:`jobkit.backend.transport`). The worker's side is ``store.leasing`` (:mod:`.leasing`),
plain reads ``store.reads`` (:mod:`.reads`); each holds this store and runs its calls
through the public methods here. This module runs scripts, dispatches and handles dead
letters."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from jobkit.backend import scripts
from jobkit.backend.batch import CANCEL_CODES
from jobkit.backend.calls import (
    CancelArgs,
    Completion,
    EnqueueArgs,
    EnqueueReply,
    ReviveArgs,
)
from jobkit.backend.flows import Flows
from jobkit.backend.keys import Keys, fenced, queue_of, split_lane
from jobkit.backend.leasing import Lease, Leasing, Refill, by_shard
from jobkit.backend.reads import Reads
from jobkit.backend.socket_link import Head, raise_errors
from jobkit.backend.transport import Transport, transport_for
from jobkit.backend.upkeep_calls import RegisterReply
from jobkit.errors import ConfigurationError, InvalidTransition, JobNotFound, NotDurable
from jobkit.models import CancelOutcome, JobSpec, NewJob
from jobkit.settings import Settings

__all__ = ["Completion", "Lease", "Refill", "ScriptCall", "Store", "Transport"]

# How many jobs one enqueue script call carries in dispatch_many: big enough to amortise
# the call, small enough that Redis runs one while the client packs the next, and never
# blocks other clients for long.
ENQUEUE_CHUNK = 200
DEFAULT_ARGUMENT_LIMIT = 512 * 2**20  # Redis's proto-max-bulk-len unless configured

ScriptCall = tuple[str, Sequence[str], Sequence[Any]]  # script name, keys, args


class Store:
    """Redis access for one prefix. Thread-safe as redis-py's client is (a pool inside).

    ``durable_replicas`` > 0: every dispatch waits (``WAIT``, at most ``durable_timeout``
    ms) until that many replicas hold its jobs, and raises :class:`NotDurable` if fewer
    do (one node or Sentinel only; see :meth:`_durably`)."""

    def __init__(
        self,
        client: Any,
        prefix: str = "jobkit",
        *,
        durable_replicas: int = 0,
        durable_timeout: int = 1000,
        events_maxlen: int = scripts.EVENTS_MAXLEN,
    ) -> None:
        self.redis = client  # redis.Redis, or redis.cluster.RedisCluster
        # the settings it was made from (connect() sets them): a dispatch through it
        # takes its limits from them; None: the process's
        self.settings: Settings | None = None
        self.keys = Keys(prefix)
        self._wire = transport_for(client)
        if durable_replicas and not self._wire.packs:
            raise ConfigurationError("JOBKIT_DURABLE_REPLICAS is not supported on Redis Cluster")
        self._wait = ("WAIT", durable_replicas, durable_timeout) if durable_replicas else None
        # dispatch's hot path: one job, packed ahead, its reply read alone (see enqueue)
        self._packs_enqueue = self._wire.packs and self._wait is None
        self._heads: dict[tuple[tuple[Any, ...], int], Head] = {}
        self._scripts: dict[str, Script] = {
            name: client.register_script(scripts.source(name, events_maxlen))
            for name in scripts.NAMES
        }
        self._argument_limit: int | None = None  # see argument_limit
        self._registered: set[str] = set()  # queues this process put in the registry
        # claim request ids: unique per process (a forked child starts a new prefix)
        self._requests: tuple[int, str, Iterator[int]] = (0, "", iter(()))
        # the worker's side and the read side, each holding this store
        self.leasing = Leasing(self)
        self.reads = Reads(self)
        self.flows = Flows(self)

    @property
    def wire(self) -> Transport:
        """The transport every call goes over (one node, Sentinel or a cluster)."""
        return self._wire

    # -- running scripts ----------------------------------------------------------------

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any], client: Any = None) -> Any:
        """Run script ``name``; on this thread's connection unless ``client`` (a
        pipeline). Only scripts in :data:`scripts.REPEATABLE` are sent again after a lost
        reply."""
        script = self._scripts[name]
        keys = fenced(keys)
        if client is not None:
            return script(keys=keys, args=args, client=client)
        repeatable = name in scripts.REPEATABLE
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return self._wire.execute(*command, repeatable=repeatable)
        except NoScriptError:  # refused, so it did not run: load it and run it once
            self.load_scripts()
            return self._wire.execute(*command, repeatable=repeatable)

    def queue_script(self, pipe: Any, name: str, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Queue script ``name`` on a redis-py pipeline (for the store layer's other modules)."""
        self._run(name, keys, args, client=pipe)

    def run_script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run script ``name`` (for the store layer's other modules: workers, schedules)."""
        return self._run(name, keys, args)

    def run_scripts(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Several script calls in one round trip (one per node on a cluster).

        Each call is a transition of its own, so when Redis lost its script cache (a
        restart, SCRIPT FLUSH) only the calls it refused are sent again: the others ran,
        and running them twice would, say, lease a second batch and strand the first.
        """
        if not calls:
            return []
        return self.checked(
            calls, self._wire.pipeline(self.commands(calls), repeatable=_again(calls))
        )

    def checked(self, calls: Sequence[ScriptCall], results: list[Any]) -> list[Any]:
        """``results`` of ``calls``, with the calls Redis refused for want of the script
        loaded and run again; any other error reply is raised."""
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            self.load_scripts()
            retried = [calls[i] for i in missing]
            again = self._wire.pipeline(self.commands(retried), repeatable=_again(retried))
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return raise_errors(results)

    def commands(self, calls: Sequence[ScriptCall]) -> list[tuple[Any, ...]]:
        """``calls`` as the commands a transport sends (EVALSHA, fenced keys)."""
        return [
            ("EVALSHA", self._scripts[name].sha, len(keys) + 1, *fenced(keys), *args)
            for name, keys, args in calls
        ]

    def load_scripts(self) -> None:
        """Load into Redis now every script it lacks (a worker does at start, and after a
        restart; on a cluster, every script into every master)."""
        self._wire.load_scripts({s.sha: str(s.script) for s in self._scripts.values()})

    def request_id(self) -> str:
        """A fresh id for one claim request, so the same request sent again (after a lost
        reply) is answered with what it leased the first time (see claim.lua)."""
        pid, prefix, counter = self._requests
        if pid != os.getpid():
            prefix, counter = os.urandom(6).hex(), itertools.count()
            self._requests = (os.getpid(), prefix, counter)
        return f"{prefix}.{next(counter)}"

    def argument_limit(self) -> int:
        """The largest single argument Redis accepts, as :meth:`learn_argument_limit`
        found it (Redis's default, 512 MiB, until then): a result larger than that would
        be refused, with the connection, at every try. Never a round trip: it is read
        on the job path."""
        return self._argument_limit or DEFAULT_ARGUMENT_LIMIT

    def adopt_argument_limit(self, limit: int) -> None:
        """Take ``limit`` as Redis's, learned by another store (a worker child's parent)."""
        self._argument_limit = limit

    def learn_argument_limit(self) -> None:
        """Ask Redis for ``proto-max-bulk-len`` (a worker child does, at start); CONFIG
        refused leaves Redis's default. An outage raises: ask again later."""
        try:
            reply = self.redis.config_get("proto-max-bulk-len")
            if isinstance(reply, dict) and reply and isinstance(next(iter(reply.values())), dict):
                reply = next(iter(reply.values()))  # a cluster answers per node
            limit = int(reply.get("proto-max-bulk-len") or DEFAULT_ARGUMENT_LIMIT)
        except redis.ResponseError:
            limit = DEFAULT_ARGUMENT_LIMIT
        self._argument_limit = limit

    # -- the queue registry -------------------------------------------------------------

    def register_queues(self, queues: Iterable[str]) -> None:
        """Add ``queues`` to the registry the views fan out over (a global key: no job
        depends on it; a worker adds its queues at start, a process the queues it
        dispatches to, once)."""
        new = [q for q in queues if q not in self._registered]
        if new:
            try:
                self._wire.execute("SADD", self.keys.queues, *new)
            except redis.ResponseError as exc:
                if not str(exc).startswith("WRONGTYPE"):
                    raise
                self.register(new)
            self._registered.update(new)

    def register(self, queues: Sequence[str]) -> RegisterReply:
        """Add ``queues`` to the registry through register.lua, which first sets a
        registry of another type aside (garbage under its name): what it kept, how many
        were new."""
        raw = self._run("register", [self.keys.base, self.keys.queues], list(queues))
        return RegisterReply.parse(raw)

    def _register_first(self, lane: str) -> list[tuple[Any, ...]]:
        """The registry write to send before a first dispatch to ``lane``'s queue (in the
        same round trip), or nothing; see :meth:`_registered_by` for its reply."""
        queue = split_lane(lane)[0]
        if queue in self._registered:
            return []
        self._registered.add(queue)
        return [("SADD", self.keys.queues, queue)]

    def _registered_by(self, first: Sequence[tuple[Any, ...]], replies: Sequence[Any]) -> None:
        """After a first dispatch: a registry write Redis refused because the registry
        held another type is made again by :meth:`register`, which sets it aside, so
        the views find the queue (a round trip only then)."""
        reply = replies[0] if first else None
        if isinstance(reply, redis.ResponseError) and str(reply).startswith("WRONGTYPE"):
            self.register([first[0][2]])

    # -- dispatch -----------------------------------------------------------------------

    def enqueue_fresh(
        self, spec: JobSpec, ids: Sequence[str], params_json: Iterable[str | bytes]
    ) -> list[str]:
        """Create jobs that share ``spec`` under fresh random ids; their statuses. One
        script call per chunk, each sent as soon as it is built, all replies read at the
        end: one round trip, with Redis and the caller at work at once."""
        calls: list[ScriptCall] = []
        payloads = iter(params_json)
        base = self.keys.lane(spec.lane).base
        first = self._register_first(spec.lane)

        def produce() -> Iterator[tuple[Any, ...]]:
            yield from first
            for start in range(0, len(ids), ENQUEUE_CHUNK):
                chunk = ids[start : start + ENQUEUE_CHUNK]
                args = EnqueueArgs(len(chunk), spec, 0).argv(
                    (job_id, next(payloads)) for job_id in chunk
                )
                calls.append(("enqueue", [base], args))
                yield self.commands(calls[-1:])[0]

        if self._wait is not None:
            list(produce())  # builds calls
            results = self._durably(first, calls, list(ids))
        else:
            replies = self._wire.stream(produce())
            self._registered_by(first, replies)
            results = self.checked(calls, replies[len(first) :])
        statuses: list[str] = []
        for raw, (_, _, args) in zip(results, calls, strict=True):
            statuses += [str(raw)] * args[0]  # a chunk's jobs share the status it returns
        return statuses

    def enqueue(self, job: NewJob, *, check: bool = True) -> tuple[bool, str]:
        """Create one job: (created, status). ``check=False`` when the id is fresh and
        random: Redis then skips looking it up (an existing id is only possible when the
        caller chose it). All but the id and params is packed once per class and options."""
        flag = 1 if check else 0
        spec = job.spec
        first = self._register_first(job.lane)
        # the registry first, in the same round trip; a traced job's spec is its own
        # (its trace context): packing a head for it would only churn the cache
        if first or not self._packs_enqueue or spec.trace:
            raw = self._enqueue_one(job, flag, first)
        else:
            key = (spec, flag)
            head = self._heads.get(key)
            if head is None:
                if len(self._heads) >= 256:  # delays and queues chosen per call: bounded
                    self._heads.clear()
                sha = self._scripts["enqueue"].sha
                base = self.keys.lane(job.lane).base
                fixed = EnqueueArgs(1, spec, flag).argv(())  # then the job's id and params
                head = self._heads[key] = Head(("EVALSHA", sha, 2, *fenced([base]), *fixed), 2)
            command = head.command(job.id, job.params_json)
            try:
                raw = self._wire.execute_packed(command)
            except NoScriptError:  # refused, so it did not run: load it and run it once
                self.load_scripts()
                raw = self._wire.execute_packed(command)
        if not check:  # a fresh id: created, and the reply is its status
            return True, str(raw)
        reply = EnqueueReply.parse(raw, job.id)
        return reply.created, reply.status

    def enqueue_unique(self, job: NewJob) -> tuple[bool, str, str]:
        """Create one job of a ``unique`` class unless an equal one is active: (created,
        status, id of the job holding the params' lock: this one or the equal one)."""
        raw = self._enqueue_one(job, 1, self._register_first(job.lane))
        reply = EnqueueReply.parse(raw, job.id)
        return reply.created, reply.status, reply.holder

    def _enqueue_one(self, job: NewJob, flag: int, first: list[tuple[Any, ...]]) -> Any:
        """enqueue.lua for ``job`` alone, ``first`` (the registry's write) in the same
        round trip, unpacked; durably (WAIT) when asked."""
        shard = self.keys.lane(job.lane)
        args = EnqueueArgs(1, job.spec, flag).argv([(job.id, job.params_json)])
        calls: list[ScriptCall] = [("enqueue", [shard.base], args)]
        if self._wait is None:
            replies = self._wire.pipeline([*first, *self.commands(calls)])
            self._registered_by(first, replies)
            return self.checked(calls, replies[len(first) :])[0]
        # a job that exists was written by another connection (the id looked up, or the
        # unique lock's holder), which this one's WAIT does not cover; a write that
        # changes nothing (INCRBY 0) makes it cover every write the primary made before it
        after = [("INCRBY", shard.seq, 0)] if flag else []
        return self._durably(first, calls, [job.id], after)[0]

    def _durably(
        self,
        first: Sequence[tuple[Any, ...]],
        calls: Sequence[ScriptCall],
        ids: list[str],
        after: Sequence[tuple[Any, ...]] = (),
    ) -> list[Any]:
        """The results of enqueue ``calls`` (``first`` and ``after`` around them), sent
        with WAIT behind them in the same round trip; :class:`NotDurable` (naming ``ids``)
        if fewer replicas than asked acknowledged them in time.

        Sent once, never again on a fresh connection after a lost reply (which raises
        ``ReplyLost``): WAIT counts the replicas holding this connection's own writes, so
        on a new connection it would acknowledge jobs no replica may hold."""
        assert self._wait is not None
        replies = self._wire.pipeline(
            [*first, *self.commands(calls), *after, self._wait], repeatable=False
        )
        self._registered_by(first, replies)
        results = replies[len(first) : len(first) + len(calls)]
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:  # refused, so they did not run: load the script, send them with a WAIT
            self.load_scripts()
            again = self.commands([calls[i] for i in missing])
            more = self._wire.pipeline([*again, *after, self._wait], repeatable=False)
            for i, result in zip(missing, more[: len(missing)], strict=True):
                results[i] = result
            replies[len(first) + len(calls) :] = more[len(missing) :]
        raise_errors(results)
        _, required, timeout_ms = self._wait
        acknowledged = raise_errors(replies[len(first) + len(calls) :])[-1]
        if acknowledged < required:
            raise NotDurable(ids, acknowledged, required, timeout_ms)
        return results

    # -- one job by id ------------------------------------------------------------------

    def job_keys(self, job_id: str) -> list[str]:
        """KEYS of a script on one job: its shard's base and its hash. An id that names
        no queue raises :class:`JobNotFound`: no such job can exist."""
        try:
            shard = self.keys.of_job(job_id)
        except ValueError as exc:
            raise JobNotFound(str(exc)) from None
        return [shard.base, shard.job(job_id)]

    def revive(self, job_id: str) -> bool:
        """Send a dead job back to its queue with a fresh attempt budget, or a retrying one
        back now; False if it is neither. Raises :class:`InvalidTransition` when its
        record has no valid lane or priority."""
        raw = self._run("revive", self.job_keys(job_id), ReviveArgs(job_id))
        if isinstance(raw, list):
            raise InvalidTransition(f"job {job_id} cannot be requeued: {raw[1]}")
        return bool(raw)

    def cancel(self, job_id: str, ttl: int) -> CancelOutcome:
        """Withdraw a job that has not started, or ask the worker running it to stop it
        (see cancel.lua); a refusal says why."""
        try:
            keys = self.job_keys(job_id)
        except JobNotFound:
            return CancelOutcome.UNKNOWN
        return CANCEL_CODES[int(self._run("cancel", keys, CancelArgs(job_id, ttl)))]

    def purge(self, ids: Sequence[str] = ()) -> int:
        """Delete dead jobs for good: ``ids``, or every dead job of every queue."""
        if ids:
            ids = [i for i in ids if queue_of(i) is not None]  # others cannot exist
            groups = by_shard(self.keys, ids, lambda i: i)
            calls: list[ScriptCall] = [
                ("purge", [base], [ids[i] for i in places]) for base, places in groups.items()
            ]
        else:
            calls = [("purge", [self.keys.shard(q).base], []) for q in self.reads.queues()]
        return sum(int(n) for n in self.run_scripts(calls))


def _again(calls: Sequence[ScriptCall]) -> bool:
    """Whether ``calls`` may be sent again after a lost reply: only if every one may."""
    return all(name in scripts.REPEATABLE for name, _, _ in calls)
