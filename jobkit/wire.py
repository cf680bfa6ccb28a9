"""Direct connections for the hot path: one per thread (and process), no client layer.

redis-py's client layer (pool checkout, retries, instrumentation) costs more CPU per
command than the round trip itself, so dispatch, claim and complete talk to a connection
of their own, made from the client's pool settings. hiredis packs the commands.

A request can also be sent now and its replies read later (:meth:`Wire.send`): a worker
asks for its next batch while it still runs the last jobs of the current one. Any other
command on the same thread reads those replies first, so replies never get mixed up, and
another thread may read them (:meth:`Wire.collect`) while the sender is busy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import hiredis
import redis

Command = Sequence[Any]


class _Conn(Protocol):
    """The part of a redis-py connection used here (redis-py leaves it untyped)."""

    def send_packed_command(self, command: Any) -> None: ...
    def read_response(self) -> Any: ...
    def disconnect(self) -> None: ...


class Inflight:
    """Replies of commands sent by :meth:`Wire.send` and not read yet."""

    __slots__ = ("conn", "count", "error", "lock", "replies")

    def __init__(self, conn: _Conn, count: int) -> None:
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
                self.conn.disconnect()
                self.error = exc


def _pack(commands: Sequence[Command]) -> list[bytes]:
    return [b"".join(hiredis.pack_command(tuple(c)) for c in commands)]


def _read(conn: _Conn, count: int) -> list[Any]:
    """``count`` replies; an error reply is returned in its place, not raised."""
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(conn.read_response())
        except redis.ResponseError as exc:
            replies.append(exc)
    return replies


class Wire:
    """This thread's direct connection to the Redis that ``client`` points at."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._local = threading.local()

    def _connection(self) -> _Conn:
        local = self._local
        conn: _Conn | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            conn = cast(_Conn, self._client.connection_pool.make_connection())
            local.conn, local.pid, local.inflight = conn, os.getpid(), None
        return conn

    def execute(self, *command: Any) -> Any:
        """One command; an error reply is raised."""

        def exchange(conn: _Conn) -> Any:
            conn.send_packed_command(_pack([command]))
            return conn.read_response()

        return self._on_connection(exchange)

    def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Several commands in one round trip; error replies are returned in place."""

        def exchange(conn: _Conn) -> list[Any]:
            conn.send_packed_command(_pack(commands))
            return _read(conn, len(commands))

        return cast(list[Any], self._on_connection(exchange))

    def send(self, commands: Sequence[Command]) -> Inflight:
        """Send ``commands`` now; :meth:`collect` reads their replies."""

        def exchange(conn: _Conn) -> Inflight:
            conn.send_packed_command(_pack(commands))
            inflight = Inflight(conn, len(commands))
            self._local.inflight = inflight
            return inflight

        return cast(Inflight, self._on_connection(exchange))

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

    def _on_connection(self, exchange: Callable[[_Conn], Any]) -> Any:
        """Run ``exchange`` on this thread's connection, once more on a fresh one if the
        old one turns out dead (Redis restarted, idle timeout): the server closed it
        before our command, so nothing ran. Had it died mid-reply instead, a rerun
        transition is refused by its fencing, or leaves a lease the reaper collects."""
        for attempt in (1, 2):
            conn = self._connection()
            self._drain()
            try:
                return exchange(conn)
            except (redis.ConnectionError, redis.TimeoutError):
                conn.disconnect()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
