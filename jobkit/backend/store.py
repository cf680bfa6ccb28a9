"""The only module that speaks Redis: key layout from :mod:`jobkit.backend.keys`, Lua transitions
from :mod:`jobkit.backend.scripts`, plus the few plain reads the CLI and handles need."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from enum import IntEnum
from typing import Any, NamedTuple

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from jobkit.backend import scripts
from jobkit.backend.keys import Keys
from jobkit.backend.reads import Reads
from jobkit.backend.wire import Head, Inflight, UndecodableReply, Wire, raise_errors
from jobkit.errors import InvalidTransition
from jobkit.models import Claimed, NewJob

log = logging.getLogger("jobkit.backend.store")

# How many jobs one enqueue script call carries in dispatch_many: big enough to amortise
# the call, small enough that Redis runs one while the client packs the next, and never
# blocks other clients for long.
ENQUEUE_CHUNK = 200

_STRICT = 4  # where claim.lua's strict flag sits in its ARGV
DEFAULT_ARGUMENT_LIMIT = 512 * 2**20  # Redis's proto-max-bulk-len unless configured

ScriptCall = tuple[str, Sequence[str], Sequence[Any]]  # script name, keys, args


class Lease(IntEnum):
    """What a heartbeat did with one lease (heartbeat.lua's codes)."""

    LOST = 0  # another holder has the job, or it is gone
    KEPT = 1  # extended
    ENDED = 2  # this holder's attempt already ended: its outcome was recorded


class Refill(NamedTuple):
    """A complete-and-claim request sent, its outcome not read yet."""

    calls: list[ScriptCall]
    inflight: Inflight


class Store(Reads):
    """Redis access for one prefix. Thread-safe as redis-py's client is (a pool inside)."""

    def __init__(self, client: redis.Redis, prefix: str = "jobkit") -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self._wire = Wire(client)
        self._heads: dict[tuple[tuple[Any, ...], int], Head] = {}
        self._scripts: dict[str, Script] = {
            name: client.register_script(scripts.source(name)) for name in scripts.NAMES
        }
        self._argument_limit: int | None = None  # see argument_limit
        # claim request ids: unique per process (a forked child starts a new prefix)
        self._requests: tuple[int, str, Iterator[int]] = (0, "", iter(()))

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any], client: Any = None) -> Any:
        """Run script ``name``; on the direct connection unless ``client`` (a pipeline).
        Only scripts in :data:`scripts.REPEATABLE` are sent again after a lost reply."""
        script = self._scripts[name]
        if client is not None:
            return script(keys=keys, args=args, client=client)
        repeatable = name in scripts.REPEATABLE
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return self._wire.execute(*command, repeatable=repeatable)
        except NoScriptError:  # refused, so it did not run: load it and run it once
            self._execute("SCRIPT", "LOAD", script.script)
            return self._wire.execute(*command, repeatable=repeatable)

    def run_script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run script ``name`` (for the store layer's other modules: workers, schedules)."""
        return self._run(name, keys, args)

    def _execute(self, *command: Any) -> Any:
        return self._wire.execute(*command)

    def _request_id(self) -> str:
        """A fresh id for one claim request, so the same request sent again (after a lost
        reply) is answered with what it leased the first time (see claim.lua)."""
        pid, prefix, counter = self._requests
        if pid != os.getpid():
            prefix, counter = os.urandom(6).hex(), itertools.count()
            self._requests = (os.getpid(), prefix, counter)
        return f"{prefix}.{next(counter)}"

    # -- dispatch ---------------------------------------------------------------------

    def enqueue_fresh(
        self, spec: tuple[Any, ...], ids: Sequence[str], params_json: Iterable[str | bytes]
    ) -> list[str]:
        """Create jobs that share ``spec`` (see :meth:`NewJob.spec`) under fresh random
        ids; their statuses. One script call per chunk, each sent as soon as it is built,
        all replies read at the end: one round trip, with Redis and the caller at work at
        once."""
        calls: list[ScriptCall] = []
        payloads = iter(params_json)

        def produce() -> Iterator[tuple[Any, ...]]:
            for start in range(0, len(ids), ENQUEUE_CHUNK):
                chunk = ids[start : start + ENQUEUE_CHUNK]
                args: list[Any] = [len(chunk), *spec, 0]
                for job_id in chunk:
                    args += (job_id, next(payloads))
                calls.append(("enqueue", [self.keys.base], args))
                yield self._commands(calls[-1:])[0]

        replies = self._checked(calls, self._wire.stream(produce()))
        statuses: list[str] = []
        for raw, (_, _, args) in zip(replies, calls, strict=True):
            statuses += [str(raw)] * args[0]  # a chunk's jobs share the status it returns
        return statuses

    def enqueue(self, job: NewJob, *, check: bool = True) -> tuple[bool, str]:
        """Create one job: (created, status). ``check=False`` when the id is fresh and
        random: Redis then skips looking it up (an existing id is only possible when the
        caller chose it). All but the id and params is packed once per class and options."""
        flag = 1 if check else 0
        spec = job.spec()
        key = (spec, flag)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= 256:  # delays and queues chosen per call: stay bounded
                self._heads.clear()
            sha = self._scripts["enqueue"].sha
            head = self._heads[key] = Head(("EVALSHA", sha, 1, self.keys.base, 1, *spec, flag), 2)
        command = head.command(job.id, job.params_json)
        try:
            raw = self._wire.execute_packed(command)
        except NoScriptError:  # refused, so it did not run: load it and run it once
            self.load_scripts()
            raw = self._wire.execute_packed(command)
        if not check:  # a fresh id: created, and the reply is its status
            return True, str(raw)
        return bool(raw[0]), str(raw[1])

    def _pipeline(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Several script calls in one round trip, on the direct connection.

        Each call is a transition of its own, so when Redis lost its script cache (a
        restart, SCRIPT FLUSH) only the calls it refused are sent again: the others ran,
        and running them twice would, say, lease a second batch and strand the first.
        """
        return self._checked(calls, self._wire.pipeline(self._commands(calls)))

    def _checked(self, calls: Sequence[ScriptCall], results: list[Any]) -> list[Any]:
        """``results`` of ``calls``, with the calls Redis refused for want of the script
        loaded and run again; any other error reply is raised."""
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            self.load_scripts()
            again = self._wire.pipeline(self._commands([calls[i] for i in missing]))
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return raise_errors(results)

    def _commands(self, calls: Sequence[ScriptCall]) -> list[tuple[Any, ...]]:
        return [
            ("EVALSHA", self._scripts[name].sha, len(keys), *keys, *args)
            for name, keys, args in calls
        ]

    def argument_limit(self) -> int:
        """The largest single argument Redis accepts, as :meth:`learn_argument_limit`
        found it (Redis's default, 512 MiB, until then): a result larger than that would
        be refused, with the connection, at every try. Never a round trip: it is read
        on the job path."""
        return self._argument_limit or DEFAULT_ARGUMENT_LIMIT

    def learn_argument_limit(self) -> None:
        """Ask Redis for ``proto-max-bulk-len`` (a worker child does, at start); CONFIG
        refused leaves Redis's default. An outage raises: ask again later."""
        try:
            reply = self.redis.config_get("proto-max-bulk-len")
            limit = int(reply.get("proto-max-bulk-len") or DEFAULT_ARGUMENT_LIMIT)
        except redis.ResponseError:
            limit = DEFAULT_ARGUMENT_LIMIT
        self._argument_limit = limit

    def load_scripts(self) -> None:
        """Load every script into Redis now (a worker does at start, and after a restart)."""
        pipe = self.redis.pipeline(transaction=False)
        for script in self._scripts.values():
            pipe.script_load(script.script)
        pipe.execute()

    # -- the worker's transitions -----------------------------------------------------

    def claim(
        self, worker: str, lease_ms: int, want: int, groups: Sequence[Sequence[str]]
    ) -> list[Claimed]:
        """Lease up to ``want`` ready jobs from ``groups`` of lanes, checked in order."""
        args = self._claim_args(worker, lease_ms, want, self._request_id(), groups)
        return self._parse_claimed(self._lease(args))

    def _lease(self, args: list[Any]) -> Any:
        """Run a claim; if its reply is lost (a timeout: Redis may have run it), send the
        same request once more: its id makes Redis answer with the jobs it leased the
        first time instead of stranding them until their leases lapse."""
        try:
            reply = self._run("claim", [self.keys.base], args)
        except UndecodableReply as exc:
            reply = exc
        except (redis.ConnectionError, redis.TimeoutError):
            reply = self._run("claim", [self.keys.base], args)
        return self._decodable(reply, args)

    def _decodable(self, reply: Any, args: list[Any]) -> Any:
        """``reply`` of the claim sent with ``args``, unless it could not be decoded (a
        job whose id, name or params are not UTF-8: garbage some other client wrote).
        Then the same request goes again in strict mode: Redis dead-letters such jobs
        (invalid_record) and answers with the others, which it leased the first time."""
        if not isinstance(reply, UndecodableReply):
            return reply
        strict = list(args)
        strict[_STRICT] = 1
        return self._run("claim", [self.keys.base], strict)

    def send_refill(
        self,
        done: Sequence[tuple[str, str, str | bytes, int]],
        worker: str,
        lease_ms: int,
        want: int,
        groups: Sequence[Sequence[str]],
    ) -> Refill:
        """Send, in one request, the completions ``done`` and a claim of up to ``want``
        jobs; :meth:`finish_refill` reads the outcome, so the caller can run a job while
        Redis works."""
        calls: list[ScriptCall] = []
        if done:
            calls.append(("complete", [self.keys.base], [x for item in done for x in item]))
        args = self._claim_args(worker, lease_ms, want, self._request_id(), groups)
        calls.append(("claim", [self.keys.base], args))
        return Refill(calls, self._wire.send(self._commands(calls)))

    def finish_refill(self, refill: Refill) -> tuple[list[bool], list[Claimed]]:
        """(one recorded/refused flag per completion, the jobs leased) of a sent refill.

        If the replies are lost, the same calls go again on a fresh connection: both are
        repeatable (a completion recognises its own token, the claim its request id), so
        nothing is recorded twice and no lease is stranded by the lost reply."""
        try:
            raw = self._wire.collect(refill.inflight)
        except (redis.ConnectionError, redis.TimeoutError):
            raw = self._wire.pipeline(self._commands(refill.calls))
        raw[-1] = self._decodable(raw[-1], list(refill.calls[-1][2]))
        replies = self._checked(refill.calls, raw)
        flags = [bool(x) for x in replies[0]] if len(replies) == 2 else []
        return flags, self._parse_claimed(replies[-1])

    @staticmethod
    def _claim_args(
        worker: str, lease_ms: int, want: int, request: str, groups: Sequence[Sequence[str]]
    ) -> list[Any]:
        args: list[Any] = [worker, lease_ms, want, request, 0, len(groups)]  # see _STRICT
        for lanes in groups:
            args.append(len(lanes))
            args.extend(lanes)
        return args

    @staticmethod
    def _parse_claimed(raw: list[Any]) -> list[Claimed]:
        # claim.lua validated every field it returns (attempts and timeout are numbers)
        if len(raw) % 7:  # a last element: queue keys of another type it skipped
            *raw, skipped = raw
            _warn_skipped(skipped)
        return [
            Claimed(
                raw[i],
                str(raw[i + 1]),
                raw[i + 2],
                raw[i + 3],
                int(raw[i + 4]),
                float(raw[i + 5] or 0),
                raw[i + 6],
            )
            for i in range(0, len(raw), 7)
        ]

    def wait_and_claim(
        self,
        lanes: Iterable[str],
        timeout: float,
        worker: str,
        lease_ms: int,
        want: int,
        groups: Sequence[Sequence[str]],
    ) -> list[Claimed]:
        """Block until a wake token arrives on one of ``lanes`` (or ``timeout`` passes),
        then claim, in one round trip: Redis runs the claim queued behind the BLPOP as
        soon as the BLPOP returns, so a woken worker holds its jobs without asking."""
        args = self._claim_args(worker, lease_ms, want, self._request_id(), groups)
        calls: list[ScriptCall] = [("claim", [self.keys.base], args)]
        blpop = ("BLPOP", *(self.keys.wake(lane) for lane in lanes), timeout)
        try:
            replies = self._wire.pipeline([blpop, *self._commands(calls)])
        except (redis.ConnectionError, redis.TimeoutError):
            return self._parse_claimed(self._lease(args))  # the claim may have run: ask again
        raise_errors(replies[:1])
        replies[1] = self._decodable(replies[1], args)
        return self._parse_claimed(self._checked(calls, replies[1:])[0])

    def connection_id(self) -> int:
        """Redis's id for this thread's direct connection (see :meth:`unblock`)."""
        return self._wire.client_id()

    def unblock(self, connection_id: int) -> None:
        """End another thread's :meth:`wait_and_claim` wait now (as if it timed out)."""
        self.redis.client_unblock(connection_id)

    def complete(self, job_id: str, token: str, result_json: str | bytes, ttl: int) -> bool:
        """Record success; False if the lease was lost (the result is discarded)."""
        return self.complete_many([(job_id, token, result_json, ttl)])[0]

    def complete_many(self, done: Sequence[tuple[str, str, str | bytes, int]]) -> list[bool]:
        """Record several successes in one script call; one flag per job."""
        args = [x for item in done for x in item]
        return [bool(x) for x in self._run("complete", [self.keys.base], args)]

    def fail(
        self,
        job_id: str,
        token: str,
        *,
        dead: bool,
        delay_ms: int,
        reason: str,
        error_json: str | bytes,
        ttl: int,
    ) -> bool:
        """End an attempt: retry after ``delay_ms`` or dead-letter it."""
        keys = [self.keys.base, self.keys.job(job_id)]
        args = (job_id, token, "dead" if dead else "retry", delay_ms, reason, error_json, ttl)
        return bool(self._run("fail", keys, args))

    def heartbeat(self, lease_ms: int, held: Sequence[tuple[str, str]]) -> list[Lease]:
        """Extend leases of ``held`` (id, token) pairs; what became of each."""
        if not held:
            return []
        args: list[Any] = [lease_ms]
        for job_id, token in held:
            args.extend((job_id, token))
        return [Lease(int(x)) for x in self._run("heartbeat", [self.keys.base], args)]

    def mark_started(self, held: Sequence[tuple[str, str]]) -> None:
        """Record that these (id, token) attempts began: only such an attempt counts as a
        crash if its lease lapses (see mark.lua and reap.lua)."""
        self._mark("started", held)

    def mark_crashed(self, held: Sequence[tuple[str, str]]) -> None:
        """These (id, token) attempts crashed their process: count it at the next reap."""
        self._mark("crashed", held)

    def _mark(self, what: str, held: Sequence[tuple[str, str]]) -> None:
        if held:
            args = [what, *(x for pair in held for x in pair)]
            self._run("mark", [self.keys.base], args)

    def requeue(self, job_id: str, token: str, *, uncount: bool) -> bool:
        """Put a claimed job back in its queue, keeping its place."""
        keys = [self.keys.base, self.keys.job(job_id)]
        return bool(self._run("requeue", keys, (job_id, token, int(uncount))))

    def reap(self, max_crashes: int, limit: int = 100) -> list[tuple[str, str]]:
        """Handle expired leases as crashes; returns (id, outcome) pairs."""
        raw = self._run("reap", [self.keys.base], (max_crashes, limit))
        return [(raw[i], raw[i + 1]) for i in range(0, len(raw), 2)]

    def promote(self, limit: int = 500) -> tuple[int, int]:
        """Queue due scheduled jobs; returns (moved, ms until the next one or -1)."""
        moved, wait = self._run("promote", [self.keys.base], (limit,))
        return int(moved), int(wait)

    # -- dead letters -------------------------------------------------------------------

    def revive(self, job_id: str) -> bool:
        """Send a dead job back to its queue; False if it is not dead. Raises
        :class:`InvalidTransition` when its record has no valid lane or priority."""
        raw = self._run("revive", [self.keys.base, self.keys.job(job_id)], (job_id,))
        if isinstance(raw, list):
            raise InvalidTransition(f"job {job_id} cannot be requeued: {raw[1]}")
        return bool(raw)

    def cancel(self, job_id: str, ttl: int) -> bool:
        """Withdraw a job that has not started; False if it runs or has finished."""
        return bool(self._run("cancel", [self.keys.base, self.keys.job(job_id)], (job_id, ttl)))

    def purge(self, ids: Sequence[str] = ()) -> int:
        return int(self._run("purge", [self.keys.base], tuple(ids)))


_SKIP_WARN_EVERY = 60.0  # seconds between warnings about one unusable queue key
_skip_warned: dict[str, float] = {}


def _warn_skipped(keys: Sequence[str]) -> None:
    """Say (once a minute per key) that a queue key holds another type, so its jobs are
    not served: the operator must rename or delete it."""
    now = time.monotonic()
    for key in keys:
        if now - _skip_warned.get(key, -_SKIP_WARN_EVERY) >= _SKIP_WARN_EVERY:
            _skip_warned[key] = now
            log.error("queue key %s holds another type than a sorted set: not served; "
                      "rename or delete it", key)  # fmt: skip
