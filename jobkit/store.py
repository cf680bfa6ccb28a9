"""The only module that speaks Redis: key layout from :mod:`jobkit.keys`, Lua transitions
from :mod:`jobkit.scripts`, plus the few plain reads the CLI and handles need."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, cast

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from jobkit import scripts
from jobkit.keys import Keys
from jobkit.models import Claimed, JobRecord, NewJob
from jobkit.wire import Head, Inflight, Wire

# How many jobs one enqueue script call carries in dispatch_many: big enough to amortise
# the call, small enough that Redis runs one while the client packs the next, and never
# blocks other clients for long.
ENQUEUE_CHUNK = 200

ScriptCall = tuple[str, Sequence[str], Sequence[Any]]  # script name, keys, args


class Refill(NamedTuple):
    """A complete-and-claim request sent, its outcome not read yet."""

    calls: list[ScriptCall]
    inflight: Inflight


class Store:
    """Redis access for one prefix. Thread-safe as redis-py's client is (a pool inside)."""

    def __init__(self, client: redis.Redis, prefix: str = "jobkit") -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self._wire = Wire(client)
        self._heads: dict[tuple[tuple[Any, ...], int], Head] = {}
        self._scripts: dict[str, Script] = {
            name: client.register_script(scripts.source(name)) for name in scripts.NAMES
        }

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any], client: Any = None) -> Any:
        """Run script ``name``; on the direct connection unless ``client`` (a pipeline)."""
        script = self._scripts[name]
        if client is not None:
            return script(keys=keys, args=args, client=client)
        try:
            return self._execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:  # refused, so it did not run: load it and run it once
            self._execute("SCRIPT", "LOAD", script.script)
            return self._execute("EVALSHA", script.sha, len(keys), *keys, *args)

    def _execute(self, *command: Any) -> Any:
        return self._wire.execute(*command)

    def _pipeline_plain(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Plain commands in one round trip on the direct connection; errors raised."""
        return _raise_errors(self._wire.pipeline(commands))

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
        return _raise_errors(results)

    def _commands(self, calls: Sequence[ScriptCall]) -> list[tuple[Any, ...]]:
        return [
            ("EVALSHA", self._scripts[name].sha, len(keys), *keys, *args)
            for name, keys, args in calls
        ]

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
        args = self._claim_args(worker, lease_ms, want, groups)
        return self._parse_claimed(self._run("claim", [self.keys.base], args))

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
        calls.append(("claim", [self.keys.base], self._claim_args(worker, lease_ms, want, groups)))
        return Refill(calls, self._wire.send(self._commands(calls)))

    def finish_refill(self, refill: Refill) -> tuple[list[bool], list[Claimed]]:
        """(one recorded/refused flag per completion, the jobs leased) of a sent refill."""
        replies = self._checked(refill.calls, self._wire.collect(refill.inflight))
        flags = [bool(x) for x in replies[0]] if len(replies) == 2 else []
        return flags, self._parse_claimed(replies[-1])

    @staticmethod
    def _claim_args(
        worker: str, lease_ms: int, want: int, groups: Sequence[Sequence[str]]
    ) -> list[Any]:
        args: list[Any] = [worker, lease_ms, want, len(groups)]
        for lanes in groups:
            args.append(len(lanes))
            args.extend(lanes)
        return args

    @staticmethod
    def _parse_claimed(raw: list[Any]) -> list[Claimed]:
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
        calls: list[ScriptCall] = [
            ("claim", [self.keys.base], self._claim_args(worker, lease_ms, want, groups))
        ]
        blpop = ("BLPOP", *(self.keys.wake(lane) for lane in lanes), timeout)
        replies = self._wire.pipeline([blpop, *self._commands(calls)])
        _raise_errors(replies[:1])
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

    def heartbeat(self, lease_ms: int, held: Sequence[tuple[str, str]]) -> list[bool]:
        """Extend leases of ``held`` (id, token) pairs; False where the lease is lost."""
        if not held:
            return []
        args: list[Any] = [lease_ms]
        for job_id, token in held:
            args.extend((job_id, token))
        return [bool(x) for x in self._run("heartbeat", [self.keys.base], args)]

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
        return bool(self._run("revive", [self.keys.base, self.keys.job(job_id)], (job_id,)))

    def cancel(self, job_id: str, ttl: int) -> bool:
        """Withdraw a job that has not started; False if it runs or has finished."""
        return bool(self._run("cancel", [self.keys.base, self.keys.job(job_id)], (job_id, ttl)))

    def purge(self, ids: Sequence[str] = ()) -> int:
        return int(self._run("purge", [self.keys.base], tuple(ids)))

    def dead_ids(self, limit: int = 100, offset: int = 0) -> list[str]:
        """Newest dead jobs first."""
        return cast(list[str], self.redis.zrevrange(self.keys.dead, offset, offset + limit - 1))

    # -- reads ----------------------------------------------------------------------------

    def get(self, job_id: str, *, wait_ms: int = 0) -> JobRecord | None:
        """The job; with ``wait_ms``, first register as waiting for its outcome that
        long, so its completion pushes the token :meth:`wait_done` blocks on."""
        read = ("HGETALL", self.keys.job(job_id))
        if wait_ms:
            register = ("SET", self.keys.waiter(job_id), 1, "PX", wait_ms)
            reply = self._pipeline_plain([register, read])[1]
        else:
            reply = self._execute(*read)
        if not isinstance(reply, dict):  # RESP2: field, value, field, value ...
            pairs = iter(reply)
            reply = dict(zip(pairs, pairs, strict=True))
        return JobRecord.from_hash(job_id, reply) if reply else None

    def get_many(self, ids: Sequence[str]) -> list[JobRecord | None]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self.keys.job(job_id))
        return [
            JobRecord.from_hash(i, h) if h else None
            for i, h in zip(ids, pipe.execute(), strict=True)
        ]

    def wait_done(self, job_id: str, timeout: float) -> bool:
        """Block until the job's completion token exists (left in place for other waiters)."""
        key = self.keys.done(job_id)
        return self._execute("BLMOVE", key, key, "RIGHT", "LEFT", timeout) is not None

    def counts(self) -> dict[str, int]:
        """Sizes of the shared sets plus lifetime totals."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(k.running)
        pipe.zcard(k.scheduled)
        pipe.zcard(k.dead)
        pipe.hgetall(k.stats)
        running, scheduled, dead, stats = pipe.execute()
        out = {"running": running, "scheduled": scheduled, "dead": dead}
        out.update({name: int(v) for name, v in stats.items()})
        return out

    def queue_sizes(self, lanes: Iterable[str]) -> dict[str, int]:
        lanes = list(lanes)
        pipe = self.redis.pipeline(transaction=False)
        for lane in lanes:
            pipe.zcard(self.keys.queue(lane))
        return dict(zip(lanes, pipe.execute(), strict=True))

    def tagged_lanes(self) -> set[str]:
        """Every lane a tagged job was ever sent to."""
        return cast(set[str], self.redis.smembers(self.keys.lanes))

    def known_lanes(self) -> list[str]:
        """Every lane with jobs waiting, found by SCAN (for `info` and `--tags '*'`)."""
        prefix = self.keys.queue("")
        found = {
            key.removeprefix(prefix)
            for key in self.redis.scan_iter(match=self.keys.queue("*"), count=500)
        }
        found.update(cast(set[str], self.redis.smembers(self.keys.lanes)))
        return sorted(found)


def _raise_errors(replies: list[Any]) -> list[Any]:
    """``replies``, unless one is an error reply: then that is raised."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


class WorkerRegistry:
    """Workers' heartbeats in Redis: who runs, where, doing what."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def beat(self, name: str, ttl: int, fields: dict[str, Any]) -> None:
        flat: list[Any] = []
        for key, value in fields.items():
            flat.extend((key, value))
        self.store._run("worker", [self.store.keys.base], (name, "beat", ttl, *flat))

    def gone(self, name: str) -> None:
        self.store._run("worker", [self.store.keys.base], (name, "gone", 0))

    def all(self) -> list[dict[str, str]]:
        """Every live worker's hash, most recently seen first."""
        names = cast(list[str], self.store.redis.zrevrange(self.store.keys.workers, 0, -1))
        pipe = self.store.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.store.keys.worker(name))
        return [dict(h, name=n) for n, h in zip(names, pipe.execute(), strict=True) if h]
