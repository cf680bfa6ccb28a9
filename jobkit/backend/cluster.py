"""The transport of a Redis Cluster: redis-py's cluster client, which routes each command
to the master of its key's slot, follows MOVED and ASK while slots move, and refreshes
its slot map when a node fails. jobkit's direct socket (:mod:`.wire`) is one node's
only; on a cluster every command goes through redis-py, with the same rule as the wire
for what may be sent again after a lost reply.

An idle worker waits for work on several queues at once. One BLPOP can only wait on
keys of one slot here, so a wait on several queues' wake lists runs one BLPOP per slot
in threads and returns when the first is woken (the others run out their short
timeout); a wait on one queue is a BLPOP with the claim queued behind it, as on one node.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)

from jobkit.backend.socket_link import ReplyLost

# A command that may be sent again is tried this many times, this long apart at first
# (doubling), after a connection failure: long enough for redis-py to learn a new slot map,
# and a replica to be promoted when its master dies with a short cluster-node-timeout; a
# longer outage is the callers' to ride out (workers and schedulers retry in loops).
ATTEMPTS = 4
FIRST_PAUSE = 0.1
# Answers that say Redis did not run the command: its slot is moving (TRYAGAIN, ASK and
# MOVED that redis-py followed until its TTL ran out) or not served (CLUSTERDOWN). Any
# command is sent again after them, repeatable or not, for this long at most.
REFUSED = (ClusterError, TryAgainError, AskError, SlotNotCoveredError)
REFUSED_FOR = 30.0
MAX_PAUSE = 0.5
# redis-py's cluster client raises RedisClusterException, no RedisError, when no node
# answers while it learns the slot map: a connection failure too (raised as one)
CONNECTION = (redis.ConnectionError, redis.TimeoutError, RedisClusterException)


class Patience:
    """How long one call goes on trying: :meth:`pause` sleeps before the next try, or
    raises ``exc`` when tries are used up (see ATTEMPTS and REFUSED_FOR)."""

    def __init__(self) -> None:
        self.failures = 0
        self.deadline = time.monotonic() + REFUSED_FOR
        self.next_pause = FIRST_PAUSE

    def pause(self, exc: Exception, repeatable: bool) -> None:
        if isinstance(exc, REFUSED):
            if time.monotonic() >= self.deadline:
                raise exc
        elif not repeatable:
            raise ReplyLost(f"{exc}; the command may or may not have run") from exc
        else:
            self.failures += 1
            if self.failures >= ATTEMPTS:
                if not isinstance(exc, redis.RedisError):
                    raise redis.ConnectionError(f"no node of the cluster answers: {exc}") from exc
                raise exc
        time.sleep(self.next_pause)
        self.next_pause = min(self.next_pause * 2, MAX_PAUSE)


def _popped(future: Future[Any]) -> Any:
    """What a finished BLPOP popped, ``(key, token)``; None if it timed out or failed."""
    return None if future.exception() is not None else future.result()


class Settled:
    """Replies of commands that a cluster transport ran at once (see ``ClusterWire.send``)."""

    def __init__(self, replies: list[Any] | None, error: Exception | None) -> None:
        self.replies = replies
        self.error = error

    def read(self) -> None:
        """Nothing to read: the replies are here already."""


class ClusterWire:
    """The transport of one :class:`RedisCluster` client (see the module doc)."""

    packs = False  # routing needs the command's keys, not packed bytes

    def __init__(self, client: RedisCluster) -> None:
        self.client = client
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _tries(self, fn: Any, repeatable: bool) -> Any:
        """``fn()``; tried again after an answer that says it did not run (see REFUSED),
        and a repeatable one after a connection failure too (redis-py has refreshed its
        slot map meanwhile); any other connection failure raises :class:`ReplyLost`."""
        patience = Patience()
        while True:
            try:
                return fn()
            except (*CONNECTION, *REFUSED) as exc:
                patience.pause(exc, repeatable)

    def execute(self, *command: Any, repeatable: bool = True) -> Any:
        """One command, routed by its key; an error reply is raised."""
        return self._tries(
            lambda: self.client.execute_command(*command),  # type: ignore[no-untyped-call]
            repeatable,
        )

    def execute_packed(self, data: bytes, *, repeatable: bool = True) -> Any:
        raise NotImplementedError("a cluster routes commands by key: send them unpacked")

    def pipeline(self, commands: Sequence[Any], *, repeatable: bool = True) -> list[Any]:
        """Several commands, one round trip per master; error replies in place.

        redis-py sends a pipeline's commands that failed again one by one, so commands
        that may not be sent twice go one by one here instead. Of the others, those that
        were refused or lost (see :class:`Patience`) are sent again, alone."""
        if not repeatable:
            return [self._one(command) for command in commands]
        replies: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        patience = Patience()
        while todo:
            try:
                got = self._pipe([commands[i] for i in todo])
            except (*CONNECTION, *REFUSED) as exc:
                patience.pause(exc, True)
                continue
            failed: Exception | None = None
            again = []
            for i, reply in zip(todo, got, strict=True):
                replies[i] = reply
                if isinstance(reply, (*CONNECTION, *REFUSED)):
                    again.append(i)
                    failed = reply
            if failed is not None:
                patience.pause(failed, True)
            todo = again
        return replies

    def _pipe(self, commands: Sequence[Any]) -> list[Any]:
        if len(commands) == 1:  # redis-py's cluster pipeline costs several commands' CPU
            try:
                return [self.client.execute_command(*commands[0])]  # type: ignore[no-untyped-call]
            except (*CONNECTION, *REFUSED):
                raise
            except redis.ResponseError as exc:
                return [exc]
        pipe = self.client.pipeline()  # type: ignore[no-untyped-call]
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute(raise_on_error=False))

    def _one(self, command: Sequence[Any]) -> Any:
        """A command that may not be sent twice, its error reply returned in place."""
        try:
            return self.execute(*command, repeatable=False)
        except redis.ResponseError as exc:
            return exc

    def stream(self, commands: Iterable[Any]) -> list[Any]:
        return self.pipeline(list(commands))

    def tell(self, commands: Sequence[Any]) -> None:
        """Run ``commands``, their replies unread (a node's pipeline: no skipping here)."""
        self.pipeline(commands)

    def tell_packed(self, data: bytes) -> None:
        raise NotImplementedError("a cluster routes commands by key: send them unpacked")

    def send(self, commands: Sequence[Any]) -> Settled:
        """Run ``commands`` now (there is no reading later here); :meth:`collect` gives
        their replies, or raises what failed them."""
        try:
            return Settled(self.pipeline(commands), None)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            return Settled(None, exc)

    @staticmethod
    def collect(inflight: Any) -> list[Any]:
        if inflight.error is not None:
            raise inflight.error
        return list(inflight.replies)

    def wait_then(self, keys: Sequence[str], timeout: float, commands: Sequence[Any]) -> list[Any]:
        """BLPOP on ``keys``, then ``commands``; replies in place, the BLPOP's first."""
        slots: dict[int, list[str]] = {}
        for key in keys:
            slots.setdefault(key_slot(key.encode()), []).append(key)
        if len(slots) == 1:  # one queue: one node, the claim queued behind the wait
            return self.pipeline([("BLPOP", *keys, timeout), *commands])
        woken = self._first_woken(list(slots.values()), timeout)
        return [woken, *self.pipeline(commands)]

    def _first_woken(self, groups: list[list[str]], timeout: float) -> Any:
        """BLPOP each group (one slot each) at once; the first token, or None when all
        timed out. A token any other of these BLPOPs pops, now or after this returns
        (they run out their timeout), is pushed back: dropped, it would leave a job
        unannounced, and the next idle wait blocked until its timeout."""
        with self._lock:
            if self._pool is None:
                # waits left blocked by earlier calls hold threads for up to their timeout
                workers = max(8, 4 * len(groups))
                self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wake")
            pool = self._pool
        pending: set[Future[Any]] = {
            pool.submit(self.client.execute_command, "BLPOP", *group, timeout) for group in groups
        }
        woken = None
        try:
            while pending and woken is None:
                done, pending = wait(pending, timeout=timeout + 1.0, return_when=FIRST_COMPLETED)
                if not done:
                    break
                for future in done:
                    if woken is None:
                        woken = _popped(future)
                    else:
                        self._give_back(future)
        finally:
            for future in pending:
                future.add_done_callback(self._give_back)
        return woken

    def _give_back(self, future: Future[Any]) -> None:
        """Push the wake token ``future``'s BLPOP popped, if any, back onto its list."""
        popped = _popped(future)
        if popped is not None:
            key, token = popped
            with contextlib.suppress(redis.RedisError, redis.RedisClusterException):
                self.client.execute_command("LPUSH", key, token)  # type: ignore[no-untyped-call]

    def client_id(self) -> int:
        """No connection of its own to name here: a wait is ended by its timeout."""
        return 0

    def load_scripts(self, scripts: Mapping[str, str]) -> None:
        """SCRIPT LOAD each of ``scripts`` (SHA1 -> source) into every master."""
        for source in scripts.values():
            self._tries(lambda s=source: self.client.script_load(s), True)
