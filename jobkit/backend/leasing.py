"""The worker's side of Redis (``store.leasing``, which holds its
:class:`~jobkit.backend.store.Store`): claiming jobs, recording their outcomes, renewing
and reaping leases, promoting due jobs.

Every call goes to one queue's shard (see :mod:`jobkit.backend.keys`). A worker serving
several queues claims from their shards one after another, in the order it was given
them, until it has what it asked for; a batch of outcomes or renewals is split by shard
and sent in one round trip (one script call per shard).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import redis

from jobkit.backend.calls import (
    CancelledArgs,
    ClaimArgs,
    ClaimReply,
    Completion,
    FailArgs,
    HeartbeatArgs,
    MarkArgs,
    ProgressArgs,
    PromoteArgs,
    PromoteReply,
    ReapArgs,
    RequeueArgs,
    pairs,
)
from jobkit.backend.keys import Keys
from jobkit.backend.socket_link import Head, UndecodableReply, raise_errors
from jobkit.backend.wire import Inflight
from jobkit.models import Claimed

EVENT_MESSAGE = 300  # characters of a failed attempt's message its event keeps

if TYPE_CHECKING:
    from jobkit.backend.store import ScriptCall, Store, Transport

log = logging.getLogger("jobkit.backend.store")

T = TypeVar("T")


class Lease(IntEnum):
    """What a heartbeat did with one lease (heartbeat.lua's codes)."""

    LOST = 0  # another holder has the job, or it is gone
    KEPT = 1  # extended
    ENDED = 2  # this holder's attempt already ended: its outcome was recorded
    CANCEL = 3  # extended, and a cancel was requested: the supervisor stops the attempt


class Refill(NamedTuple):
    """A complete-and-claim request sent, its outcome not read yet: the calls, what they
    claim for (worker, lease, want, lane groups), and their replies in flight."""

    calls: list[ScriptCall]
    done: int  # how many completions it carries
    order: list[int]  # the completions' places in the caller's list, in the calls' order
    claim: tuple[ClaimArgs, tuple[tuple[str, ...], ...]]  # the first queue's, every queue's
    inflight: Inflight


def promoted(replies: Iterable[Sequence[Any]]) -> tuple[int, int]:
    """promote.lua's replies of several queues as one: (moved, ms until the next due job
    of any of them, or -1)."""
    moved, wait = 0, -1
    for raw in replies:
        reply = PromoteReply.parse(raw)
        moved += reply.promoted
        if reply.wait_ms >= 0:
            wait = reply.wait_ms if wait < 0 else min(wait, reply.wait_ms)
    return moved, wait


def by_shard(keys: Keys, items: Sequence[T], job_id: Callable[[T], str]) -> dict[str, list[int]]:
    """The places of ``items`` grouped by the shard base of each one's job id, in order."""
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(keys.of_job(job_id(item)).base, []).append(i)
    return groups


class Leasing:
    """Claims, outcomes and leases (``store.leasing``), run through the public calls of
    the :class:`~jobkit.backend.store.Store` it holds."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys: Keys = store.keys
        self.redis: Any = store.redis
        self._wire: Transport = store.wire
        # When a job held back by its class's rate limit may be claimed (monotonic; 0:
        # none known), as the last claims said: an idle wait ends then rather than after
        # its full timeout. Shared by a child's threads; one refills at a time.
        self._rate_due = 0.0
        self._marks: dict[str, Head] = {}  # per shard: HSET of its `started` hash

    # -- claiming -----------------------------------------------------------------------

    def claim(
        self, worker: str, lease_ms: int, want: int, groups: Sequence[Sequence[str]]
    ) -> list[Claimed]:
        """Lease up to ``want`` ready jobs from ``groups`` of lanes (one queue each),
        checked in order: a later queue is asked only for what the earlier left wanting."""
        got: list[Claimed] = []
        for lanes in groups:
            if len(got) >= want:
                break
            got += self._claim_group(worker, lease_ms, want - len(got), lanes)
        return got

    def _claim_group(
        self, worker: str, lease_ms: int, want: int, lanes: Sequence[str]
    ) -> list[Claimed]:
        base = self.keys.lane(lanes[0]).base
        return self._claimed(
            self._lease(base, ClaimArgs.of(worker, lease_ms, want, self.store.request_id(), lanes))
        )

    def _claimed(self, raw: list[Any]) -> list[Claimed]:
        """The jobs of a claim's reply; notes when a job it held back by a rate may run."""
        reply = ClaimReply.parse(raw)
        jobs, rate_wait_ms = reply.jobs, reply.rate_wait_ms
        if rate_wait_ms > 0:
            now = time.monotonic()
            due = now + rate_wait_ms / 1000
            if not now < self._rate_due < due:  # the soonest still to come
                self._rate_due = due
        return jobs

    def _idle_timeout(self, timeout: float) -> float:
        """How long an idle wait may block: ``timeout``, or less when a job held back by
        a rate may be claimed sooner (never 0, which BLPOP takes as for ever)."""
        due, self._rate_due = self._rate_due, 0.0
        if not due:
            return timeout
        return max(0.005, min(timeout, due - time.monotonic()))

    def _lease(self, base: str, args: ClaimArgs) -> Any:
        """Run a claim; if its reply is lost (a timeout: Redis may have run it), send the
        same request once more: its id makes Redis answer with the jobs it leased the
        first time instead of stranding them until their leases lapse."""
        try:
            reply = self.store.run_script("claim", [base], args.argv())
        except UndecodableReply as exc:
            reply = exc
        except (redis.ConnectionError, redis.TimeoutError):
            reply = self.store.run_script("claim", [base], args.argv())
        return self._decodable(reply, base, args)

    def _decodable(self, reply: Any, base: str, args: ClaimArgs) -> Any:
        """``reply`` of the claim sent with ``args``, unless it could not be decoded (a
        job whose id, name or params are not UTF-8: garbage some other client wrote).
        Then the same request goes again in strict mode: Redis dead-letters such jobs
        (invalid_record) and answers with the others, which it leased the first time."""
        if not isinstance(reply, UndecodableReply):
            return reply
        return self.store.run_script("claim", [base], args.strictly().argv())

    def send_refill(
        self,
        done: Sequence[Completion],
        worker: str,
        lease_ms: int,
        want: int,
        groups: Sequence[Sequence[str]],
    ) -> Refill:
        """Send, in one request, the completions ``done`` and a claim of up to ``want``
        jobs from the first queue; :meth:`finish_refill` reads the outcome (and asks the
        other queues, if the first had too few), so the caller runs a job meanwhile."""
        calls, order = self._completions(done)
        lanes = groups[0]
        args = ClaimArgs.of(worker, lease_ms, want, self.store.request_id(), lanes)
        calls.append(("claim", [self.keys.lane(lanes[0]).base], args.argv()))
        claim = (args, tuple(tuple(g) for g in groups))
        return Refill(calls, len(done), order, claim, self._wire.send(self.store.commands(calls)))

    def finish_refill(self, refill: Refill) -> tuple[list[bool], list[Claimed]]:
        """(one recorded/refused flag per completion, the jobs leased) of a sent refill.

        If the replies are lost, the same calls go again on a fresh connection: all are
        repeatable (a completion recognises its own token, the claim its request id), so
        nothing is recorded twice and no lease is stranded by the lost reply."""
        try:
            raw = self._wire.collect(refill.inflight)
        except (redis.ConnectionError, redis.TimeoutError):
            raw = self._wire.pipeline(self.store.commands(refill.calls))
        _, (base,), _ = refill.calls[-1]
        args, groups = refill.claim
        raw[-1] = self._decodable(raw[-1], base, args)
        replies = self.store.checked(refill.calls, raw)
        flags = _flags_in_order(replies[:-1], refill.order, refill.done)
        jobs = self._claimed(replies[-1])
        worker, lease_ms, want = args.worker, args.lease_ms, args.want
        if len(jobs) < want and len(groups) > 1:  # the first queue had too few
            jobs += self.claim(worker, lease_ms, want - len(jobs), groups[1:])
        return flags, jobs

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
        then claim. The first queue's claim is queued behind the wait (Redis runs it as
        soon as the wait returns); the others are asked after, if it had too few."""
        first = groups[0]
        base = self.keys.lane(first[0]).base
        args = ClaimArgs.of(worker, lease_ms, want, self.store.request_id(), first)
        calls: list[ScriptCall] = [("claim", [base], args.argv())]
        timeout = self._idle_timeout(timeout)
        try:
            replies = self._wire.wait_then(
                [self.keys.wake(lane) for lane in lanes], timeout, self.store.commands(calls)
            )
        except (redis.ConnectionError, redis.TimeoutError):
            jobs = self._claimed(self._lease(base, args))  # the claim may have run: ask again
        else:
            raise_errors(replies[:1])
            replies[1] = self._decodable(replies[1], base, args)
            jobs = self._claimed(self.store.checked(calls, replies[1:])[0])
        if len(jobs) < want and len(groups) > 1:
            jobs += self.claim(worker, lease_ms, want - len(jobs), groups[1:])
        return jobs

    def connection_id(self) -> int:
        """Redis's id for this thread's connection (see :meth:`unblock`; 0 where the
        transport has none to name: a wait there ends by its timeout)."""
        return self._wire.client_id()

    def unblock(self, connection_id: int) -> None:
        """End another thread's :meth:`wait_and_claim` wait now (as if it timed out)."""
        if connection_id:
            self.redis.client_unblock(connection_id)

    # -- outcomes and leases ------------------------------------------------------------

    def complete(self, job_id: str, token: str, result_json: str | bytes, ttl: int) -> bool:
        """Record success; False if the lease was lost (the result is discarded)."""
        return self.complete_many([(job_id, token, result_json, ttl)])[0]

    def complete_many(self, done: Sequence[Completion]) -> list[bool]:
        """Record several successes, one script call per shard in one round trip; one
        flag per job."""
        calls, order = self._completions(done)
        return _flags_in_order(self.store.run_scripts(calls), order, len(done))

    def _completions(self, done: Sequence[Completion]) -> tuple[list[ScriptCall], list[int]]:
        calls: list[ScriptCall] = []
        order: list[int] = []
        for base, places in by_shard(self.keys, done, lambda d: d[0]).items():
            calls.append(("complete", [base], [x for i in places for x in done[i]]))
            order += places
        return calls, order

    def progress(self, job_id: str, token: str, fraction: float, message: str) -> bool:
        """Record how far the attempt holding lease ``token`` has got (progress.lua);
        False, writing nothing, for an attempt that no longer holds it."""
        base = self.keys.of_job(job_id).base
        args = ProgressArgs(job_id, token, repr(fraction), message)
        return bool(self.store.run_script("progress", [base], args))

    # -- one attempt's end ----------------------------------------------------------------

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
        error_type: str = "",
        error_message: str = "",
    ) -> bool:
        """End an attempt: retry after ``delay_ms`` or dead-letter it. The error's type and
        message (its first :data:`EVENT_MESSAGE` characters) go into the attempt's event
        too, so each attempt's error outlives the next attempt's."""
        action = "dead" if dead else "retry"
        args = FailArgs(job_id, token, action, delay_ms, reason, error_json, ttl,
                        error_type[:200], error_message[:EVENT_MESSAGE])  # fmt: skip
        return bool(self.store.run_script("fail", self.store.job_keys(job_id), args))

    def requeue(self, job_id: str, token: str, *, uncount: bool) -> bool:
        """Put a claimed job back in its queue, keeping its place."""
        args = RequeueArgs(job_id, token, int(uncount))
        return bool(self.store.run_script("requeue", self.store.job_keys(job_id), args))

    def end_cancelled(self, job_id: str, token: str, ttl: int) -> bool:
        """End the attempt under ``token`` of a job whose cancel was requested, after its
        child was killed; False if that attempt no longer holds the job."""
        args = CancelledArgs(job_id, token, ttl)
        return bool(self.store.run_script("cancelled", self.store.job_keys(job_id), args))

    def heartbeat(self, lease_ms: int, held: Sequence[tuple[str, str]]) -> list[Lease]:
        """Extend leases of ``held`` (id, token) pairs; what became of each."""
        calls: list[ScriptCall] = []
        order: list[int] = []
        for base, places in by_shard(self.keys, held, lambda h: h[0]).items():
            args = HeartbeatArgs(lease_ms).argv(held[i] for i in places)
            calls.append(("heartbeat", [base], args))
            order += places
        codes = _flags_in_order(self.store.run_scripts(calls), order, len(held), cast=int)
        return [Lease(c) for c in codes]

    def mark_started(self, held: Sequence[tuple[str, str]]) -> None:
        """Record that these (id, token) attempts began: only such an attempt counts as a
        crash if its lease lapses (see mark.lua and reap.lua)."""
        self._mark("started", held)

    def tell_started(self, job_id: str, token: str) -> None:
        """Record that this attempt begins, before it does, with no round trip: its mark
        ("<token>:<id>", see start_mark in _lib.lua) goes in its queue's ``started``
        hash, sent with no reply wanted. One plain HSET, not a script: a mark needs no
        check, since only a mark under the token the job is held under counts (reap.lua),
        and the scripts that end the attempt drop it (trim.lua, any they missed). One
        Redis refuses goes unknown: that attempt counts as never begun if its whole
        worker dies."""
        shard = self.keys.of_job(job_id)
        mark = token + ":" + job_id
        if not self._wire.packs:
            self._wire.tell([("HSET", shard.started, mark, "1")])
            return
        head = self._marks.get(shard.base)
        if head is None:  # packed once per shard: a job costs its mark alone
            head = self._marks[shard.base] = Head(("HSET", shard.started), 2)
        self._wire.tell_packed(head.command(mark, "1"))

    def mark_crashed(self, held: Sequence[tuple[str, str]]) -> None:
        """These (id, token) attempts crashed their process: count it at the next reap."""
        self._mark("crashed", held)

    def _mark(self, what: str, held: Sequence[tuple[str, str]]) -> None:
        calls: list[ScriptCall] = [
            ("mark", [base], MarkArgs(what).argv(held[i] for i in places))
            for base, places in by_shard(self.keys, held, lambda h: h[0]).items()
        ]
        if calls:
            self.store.run_scripts(calls)

    def reap(
        self, max_crashes: int, queues: Iterable[str], limit: int = 100
    ) -> list[tuple[str, str]]:
        """Settle expired leases in ``queues``; (id, outcome) pairs (see reap.lua)."""
        calls: list[ScriptCall] = [
            ("reap", [self.keys.shard(q).base], ReapArgs(max_crashes, limit)) for q in queues
        ]
        return [pair for raw in self.store.run_scripts(calls) for pair in pairs(raw)]

    def promote(self, queues: Iterable[str], limit: int = 500) -> tuple[int, int]:
        """Queue due scheduled jobs of ``queues``; (moved, ms until the next due one of
        any of them, or -1)."""
        calls: list[ScriptCall] = [
            ("promote", [self.keys.shard(q).base], PromoteArgs(limit)) for q in queues
        ]
        return promoted(self.store.run_scripts(calls))


def _flags_in_order(
    replies: Sequence[Sequence[Any]],
    order: Sequence[int],
    count: int,
    cast: Callable[[Any], Any] = bool,
) -> list[Any]:
    """Per-shard replies (one flag per item, in ``order``) back in the items' order."""
    flat = [cast(x) for reply in replies for x in reply]
    out: list[Any] = [None] * count
    for place, flag in zip(order, flat, strict=True):
        out[place] = flag
    return out
