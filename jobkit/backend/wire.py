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
import select
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, cast

import hiredis
import redis
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
)

from jobkit import errors

Command = Sequence[Any]


class _Handshake(Protocol):
    """The part of a redis-py connection used here (redis-py leaves it untyped)."""

    _sock: socket.socket | None

    def connect(self) -> None: ...
    def disconnect(self) -> None: ...
    def send_packed_command(self, command: list[bytes]) -> None: ...
    def read_response(self) -> Any: ...


class UndecodableReply(redis.ResponseError):
    """A reply holding bytes that are not UTF-8 (data some other client wrote): returned
    in its place like an error reply, so the replies after it stay in step."""


class ReplyLost(redis.ConnectionError, errors.ReplyLost):
    """The connection failed after a command that may not be sent twice went out: it may
    or may not have run. A redis ConnectionError, so outage handling applies as usual, and
    the public :class:`jobkit.ReplyLost` of the one exception tree."""


def _reply_error(message: str) -> redis.RedisError:
    """The redis-py exception for an error reply, as redis-py's own parser picks it: a
    NOSCRIPT must stay recognisable, and LOADING (a restarted Redis) is a ConnectionError."""
    code = message.split(" ", 1)[0]
    kind = _ERRORS.get(code, redis.ResponseError)
    return kind(message[len(code) + 1 :] if code in _ERRORS else message)


_ERRORS: dict[str, type[redis.RedisError]] = {
    "NOSCRIPT": NoScriptError,
    "READONLY": ReadOnlyError,
    "LOADING": BusyLoadingError,
    "OOM": OutOfMemoryError,
    "NOAUTH": AuthenticationError,
    "WRONGPASS": AuthenticationError,
}


_SKIP_COMMAND: Command = ("CLIENT", "REPLY", "SKIP")
_SKIP = hiredis.pack_command(tuple(_SKIP_COMMAND))  # Redis answers the next command not


class _Link:
    """One socket to Redis: redis-py connects it (TLS, AUTH, SELECT and all), then
    commands go straight to the socket and hiredis parses the replies. A connection
    class without a real socket (fakeredis, say) is driven through redis-py instead."""

    __slots__ = ("_conn", "_reader", "_sock", "broken", "client_id")

    def __init__(self, conn: _Handshake, decode: bool) -> None:
        self.client_id: int | None = None  # Redis's id for it, once asked
        self.broken = False  # a reply could not be decoded: not to be used again
        conn.connect()
        sock = getattr(conn, "_sock", None)
        self._conn = conn
        self._sock = sock if isinstance(sock, socket.socket) else None
        options: dict[str, Any] = {"encoding": "utf-8"} if decode else {}
        self._reader = hiredis.Reader(replyError=_reply_error, **options)

    def send(self, commands: Sequence[Command]) -> None:
        self.send_packed(b"".join(hiredis.pack_command(tuple(c)) for c in commands))

    def tell(self, commands: Sequence[Command]) -> None:
        """Send ``commands`` with no reply wanted: each after CLIENT REPLY SKIP, so Redis
        sends none and nothing is read (one send, no round trip)."""
        if self._sock is None:  # no socket of ours: redis-py reads what comes back
            for command in commands:
                self._conn.send_packed_command([hiredis.pack_command(tuple(command))])
                self.read()
            return
        self.send_packed(b"".join(_SKIP + hiredis.pack_command(tuple(c)) for c in commands))

    def tell_packed(self, data: bytes) -> None:
        """One packed command, as :meth:`tell` sends it (a socket of ours only)."""
        self.send_packed(_SKIP + data)

    def send_packed(self, data: bytes) -> None:
        if self._sock is None:
            self._conn.send_packed_command([data])
            return
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise _lost(exc) from exc

    def ask(self, data: bytes) -> Any:
        """Send one packed command and read its reply; an error reply is raised."""
        self.send_packed(data)
        reply = self.read()
        if isinstance(reply, redis.RedisError):
            raise reply
        return reply

    def read(self) -> Any:
        """The next reply; an error reply is returned, not raised."""
        if self._sock is None:
            try:
                return self._conn.read_response()
            except redis.ResponseError as exc:
                return exc
        reply = self._gets()
        while reply is False:
            try:
                data = self._sock.recv(_CHUNK)
            except OSError as exc:
                raise _lost(exc) from exc
            if not data:
                raise redis.ConnectionError("Redis closed the connection")
            self._reader.feed(data)
            reply = self._gets()
        return reply

    def _gets(self) -> Any:
        """The next whole reply from the reader, False if it has none yet. A reply that is
        not UTF-8 text comes back as an :class:`UndecodableReply` in its place (hiredis
        has consumed it: the replies after it stay in step); the connection is dropped
        after this exchange all the same, as the reader's state is not to be trusted."""
        try:
            return self._reader.gets()
        except UnicodeDecodeError as exc:
            self.broken = True
            return UndecodableReply(f"a reply is not UTF-8 text ({exc.reason})")

    def alive(self) -> bool:
        """False when the server closed this idle connection (or it has bytes nobody
        asked for): checked without blocking, before a command that must not be sent
        twice, so that one is never lost to a connection that was dead already."""
        if self._sock is None:
            return True
        try:
            ready, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not ready

    def close(self) -> None:
        self._conn.disconnect()


_CHUNK = 1 << 16
_CLIENT_ID = b"*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n"  # CLIENT ID, packed


def _lost(exc: OSError) -> redis.RedisError:
    if isinstance(exc, TimeoutError):
        return redis.TimeoutError(f"Redis did not answer in time: {exc}")
    return redis.ConnectionError(f"Redis connection lost: {exc}")


def raise_errors(replies: list[Any]) -> list[Any]:
    """``replies``, unless one is an error reply: then that is raised."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


class Head:
    """A command's leading arguments packed once, for a command sent again and again
    with only its last ``tail`` arguments changing (dispatch: a job's id and params)."""

    __slots__ = ("_packed",)

    def __init__(self, head: Command, tail: int) -> None:
        packed = hiredis.pack_command(tuple(head))
        self._packed = b"*%d\r\n" % (len(head) + tail) + packed[packed.index(b"\r\n") + 2 :]

    def command(self, *tail: str | bytes) -> bytes:
        out = [self._packed]
        for arg in tail:
            raw = arg if isinstance(arg, bytes) else arg.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
        return b"".join(out)


class Inflight:
    """Replies of commands sent by :meth:`Wire.send` and not read yet."""

    __slots__ = ("conn", "count", "error", "lock", "replies")

    def __init__(self, conn: _Link, count: int) -> None:
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
            if self.conn.broken:  # see _Link._gets; its thread makes a new one
                self.conn.close()


def _read(conn: _Link, count: int) -> list[Any]:
    """``count`` replies; an error reply is returned in its place, not raised."""
    return [conn.read() for _ in range(count)]


class Wire:
    """This thread's direct connection to the Redis that ``client`` points at: the
    transport of one node (a plain URL, or the primary a Sentinel names)."""

    packs = True  # takes commands packed ahead (see Head)

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._local = threading.local()

    def _connection(self) -> _Link:
        local = self._local
        conn: _Link | None = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid() or conn.broken:
            pool = self._client.connection_pool
            # Not pool.make_connection(): that counts against the pool's max_connections
            # (100 by default in redis-py 8), and this connection never goes back to
            # the pool to be uncounted, so a process that reconnected a hundred times (a
            # failover's worth of retries) would be refused every connection after.
            made = cast(_Handshake, pool.connection_class(**pool.connection_kwargs))
            conn = _Link(made, bool(pool.connection_kwargs.get("decode_responses")))
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

        def exchange(conn: _Link) -> int:
            if conn.client_id is None:
                conn.client_id = int(conn.ask(_CLIENT_ID))
            return conn.client_id

        return cast(int, self._on_connection(exchange, True))

    def stream(self, commands: Iterable[Command]) -> list[Any]:
        """Send each command (all repeatable) as soon as ``commands`` yields it, then read
        every reply (errors in place): Redis runs the first while the caller builds the
        next. If the connection fails, the commands made so far go again on a fresh one."""
        made: list[Command] = []
        source = iter(commands)

        def exchange(conn: _Link) -> list[Any]:
            for command in made:
                conn.send([command])
            for command in source:
                made.append(command)
                conn.send([command])
            return _read(conn, len(made))

        return cast(list[Any], self._on_connection(exchange, True))

    def pipeline(self, commands: Sequence[Command], *, repeatable: bool = True) -> list[Any]:
        """Several commands in one round trip; error replies are returned in place."""

        def exchange(conn: _Link) -> list[Any]:
            conn.send(commands)
            return _read(conn, len(commands))

        return cast(list[Any], self._on_connection(exchange, repeatable))

    def wait_then(
        self, keys: Sequence[str], timeout: float, commands: Sequence[Command]
    ) -> list[Any]:
        """BLPOP on ``keys`` (one node takes keys of any slot), with ``commands`` queued
        behind it in the same round trip; replies in place, the BLPOP's first."""
        return self.pipeline([("BLPOP", *keys, timeout), *commands])

    def load_scripts(self, sources: Sequence[str]) -> None:
        """SCRIPT LOAD each of ``sources``, in one round trip."""
        raise_errors(self.pipeline([("SCRIPT", "LOAD", source) for source in sources]))

    def tell(self, commands: Sequence[Command]) -> None:
        """Send ``commands`` on this thread's connection with no reply wanted (see
        _Link.tell): what Redis refuses goes unknown."""
        self._on_connection(lambda conn: conn.tell(commands), True)

    def tell_packed(self, data: bytes) -> None:
        """One command packed already (see :class:`Head`), sent as :meth:`tell` sends."""
        self._on_connection(lambda conn: conn.tell_packed(data), True)

    def send(self, commands: Sequence[Command]) -> Inflight:
        """Send ``commands`` (repeatable: the caller may send them again if their replies
        are lost) now; :meth:`collect` reads their replies."""

        def exchange(conn: _Link) -> Inflight:
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

    def _on_connection(self, exchange: Callable[[_Link], Any], repeatable: bool) -> Any:
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

    def _drop(self, conn: _Link) -> None:
        """Close ``conn``: this thread's next exchange opens a new connection."""
        conn.close()
        self._local.conn = None
