"""Direct connections for the hot path: one per thread (and process), no client layer.

redis-py's client layer (pool checkout, retries, instrumentation) costs more CPU per
command than the round trip itself, so dispatch, claim and complete talk to a connection
of their own, made from the client's pool settings: redis-py opens it (TLS, AUTH, SELECT),
then commands go straight to its socket, packed by hiredis, whose reader parses replies.

A request can also be sent now and its replies read later (:meth:`Wire.send`): a worker
asks for its next batch while it still runs the last jobs of the current one. Any other
command on the same thread reads those replies first, so replies never get mixed up, and
another thread may read them (:meth:`Wire.collect`) while the sender is busy.

Sending again. When a connection fails, a command that went out may or may not have run:
its reply, not the command, may be what was lost. Every call therefore says whether it is
*repeatable*, safe to send again on a fresh connection after a lost reply:

- repeatable: plain reads, and the scripts in ``jobkit.backend.scripts.REPEATABLE``, each made
  idempotent in its own header (enqueue creates an id only once, claim answers a request
  sent again with the same jobs, complete/fail/requeue recognise their own token's
  outcome, heartbeat, reap, promote and cron_fire converge);
- not repeatable (``revive``, ``purge``, ``cancel``: run twice, the second reports a
  refusal or a count that hides the first): sent only on a connection just checked to be
  alive, never again once sent; a lost reply raises :class:`ReplyLost`, which says the
  command may have run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import hiredis
import redis

from jobkit.backend.socket_link import (
    CLIENT_ID,
    Command,
    Handshake,
    Link,
    ReplyLost,
    raise_errors,
)


class Inflight:
    """Replies of commands sent by :meth:`Wire.send` and not read yet."""

    __slots__ = ("conn", "count", "error", "lock", "replies")

    def __init__(self, conn: Link, count: int) -> None:
        self.conn = conn
        self.count = count
        self.lock = threading.Lock()  # one reader at a time, and only once
        self.replies: list[Any] | None = None
        self.error: Exception | None = None

    def read(self) -> None:
        with self.lock:
            if self.replies is not None or self.error is not None:
                return
            try:
                self.replies = _read(self.conn, self.count)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.conn.close()
                self.error = exc
            if self.conn.broken:  # see Link._gets; its thread makes a new one
                self.conn.close()


def _read(conn: Link, count: int) -> list[Any]:
    """``count`` replies; an error reply is returned in its place, not raised."""
    return [conn.read() for _ in range(count)]


class Wire:
    """This thread's direct connection to the Redis that ``client`` points at: the
    transport of one node (a plain URL, or the primary a Sentinel names)."""

    packs = True  # takes commands packed ahead (see Head)

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._local = threading.local()

    def _connection(self) -> Link:
        local = self._local
        conn: Link | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid() or conn.broken:
            pool = self._client.connection_pool
            # Not pool.make_connection(): that counts against the pool's max_connections
            # (100 by default in redis-py 8), and this connection never goes back to
            # the pool to be uncounted, so a process that reconnected a hundred times (a
            # failover's worth of retries) would be refused every connection after.
            made = cast(Handshake, pool.connection_class(**pool.connection_kwargs))
            conn = Link(made, bool(pool.connection_kwargs.get("decode_responses")))
            local.conn, local.pid, local.inflight = conn, os.getpid(), None
        return conn

    def execute(self, *command: Any, repeatable: bool = True) -> Any:
        """One command; an error reply is raised. ``repeatable``: see the module doc."""
        return self.execute_packed(hiredis.pack_command(command), repeatable=repeatable)

    def execute_packed(self, data: bytes, *, repeatable: bool = True) -> Any:
        """One command packed already (see :class:`Head`); an error reply is raised."""
        return self._on_connection(lambda conn: conn.ask(data), repeatable)

    def client_id(self) -> int:
        """Redis's id for this thread's connection (``CLIENT ID``, asked once for each
        connection: a blocked runner is woken by it, see ``CLIENT UNBLOCK``)."""

        def exchange(conn: Link) -> int:
            if conn.client_id is None:
                conn.client_id = int(conn.ask(CLIENT_ID))
            return conn.client_id

        return cast(int, self._on_connection(exchange, True))

    def stream(self, commands: Iterable[Command]) -> list[Any]:
        """Send each command (all repeatable) as soon as ``commands`` yields it, then read
        every reply (errors in place): Redis runs the first while the caller builds the
        next. If the connection fails, the commands made so far go again on a fresh one."""
        made: list[Command] = []
        source = iter(commands)

        def exchange(conn: Link) -> list[Any]:
            for command in made:
                conn.send([command])
            for command in source:
                made.append(command)
                conn.send([command])
            return _read(conn, len(made))

        return cast(list[Any], self._on_connection(exchange, True))

    def pipeline(self, commands: Sequence[Command], *, repeatable: bool = True) -> list[Any]:
        """Several commands in one round trip; error replies are returned in place."""

        def exchange(conn: Link) -> list[Any]:
            conn.send(commands)
            return _read(conn, len(commands))

        return cast(list[Any], self._on_connection(exchange, repeatable))

    def wait_then(
        self, keys: Sequence[str], timeout: float, commands: Sequence[Command]
    ) -> list[Any]:
        """BLPOP on ``keys`` (one node takes keys of any slot), with ``commands`` queued
        behind it in the same round trip; replies in place, the BLPOP's first."""
        return self.pipeline([("BLPOP", *keys, timeout), *commands])

    def load_scripts(self, scripts: Mapping[str, str]) -> None:
        """SCRIPT LOAD those of ``scripts`` (SHA1 -> source) that Redis lacks: one round
        trip asks (SCRIPT EXISTS), one loads any missing. Redis that has them all (every
        start of a worker but the first) is not sent their sources again: most of a
        megabyte, which Redis would hash all over again."""
        shas = list(scripts)
        known = self.execute("SCRIPT", "EXISTS", *shas)
        missing = [scripts[sha] for sha, have in zip(shas, known, strict=True) if not have]
        if missing:
            raise_errors(self.pipeline([("SCRIPT", "LOAD", source) for source in missing]))

    def tell(self, commands: Sequence[Command]) -> None:
        """Send ``commands`` on this thread's connection with no reply wanted (see
        Link.tell): what Redis refuses goes unknown."""
        self._on_connection(lambda conn: conn.tell(commands), True)

    def tell_packed(self, data: bytes) -> None:
        """One command packed already (see :class:`Head`), sent as :meth:`tell` sends."""
        self._on_connection(lambda conn: conn.tell_packed(data), True)

    def send(self, commands: Sequence[Command]) -> Inflight:
        """Send ``commands`` (repeatable: the caller may send them again if their replies
        are lost) now; :meth:`collect` reads their replies."""

        def exchange(conn: Link) -> Inflight:
            conn.send(commands)
            inflight = Inflight(conn, len(commands))
            self._local.inflight = inflight
            return inflight

        return cast(Inflight, self._on_connection(exchange, True))

    @staticmethod
    def collect(inflight: Inflight) -> list[Any]:
        """The replies of a :meth:`send`, waiting for them if need be; any thread may
        call this (the sender's thread waits for it before its next command).

        A lost connection raises here; the commands may or may not have run (a claim
        that ran leaves leases the reaper collects, as with any lost reply)."""
        inflight.read()
        if inflight.error is not None:
            raise inflight.error
        return cast(list[Any], inflight.replies)

    def _drain(self) -> None:
        """Read the replies still owed to this thread's last :meth:`send`, if any."""
        inflight: Inflight | None = getattr(self._local, "inflight", None)
        if inflight is not None:
            self._local.inflight = None
            inflight.read()

    def _on_connection(self, exchange: Callable[[Link], Any], repeatable: bool) -> Any:
        """Run ``exchange`` on this thread's connection. If the connection turns out
        closed (Redis restarted, an idle timeout), a ``repeatable`` exchange runs once more
        on a fresh one; any other was sent on a connection checked alive just before, and
        its failure raises :class:`ReplyLost`. A timeout is not tried again here: Redis did
        not close the connection, it is frozen or overloaded (or still running the
        command), and a second try would double the caller's wait; callers that lease
        jobs send their request again themselves (see ``Leasing.claim``)."""
        for attempt in (1, 2):
            conn = self._connection()
            self._drain()
            if not repeatable and not conn.alive():
                self._drop(conn)
                conn = self._connection()
            try:
                result = exchange(conn)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._drop(conn)
                if not repeatable:
                    raise ReplyLost(
                        f"{exc}; the command was sent and may or may not have run"
                    ) from exc
                if attempt == 2 or isinstance(exc, redis.TimeoutError):
                    raise
            else:
                if conn.broken:
                    self._drop(conn)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self, conn: Link) -> None:
        """Close ``conn``: this thread's next exchange opens a new connection."""
        conn.close()
        self._local.conn = None
