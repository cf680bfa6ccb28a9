"""One socket to Redis, and the packing of commands for it: redis-py opens the socket
(TLS, AUTH, SELECT), then commands go straight to it, packed by hiredis, whose reader
parses the replies (see wire.py for why, and for the connection each thread keeps).
"""

from __future__ import annotations

import select
import socket
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

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


class Handshake(Protocol):
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


class Link:
    """One socket to Redis: redis-py connects it (TLS, AUTH, SELECT and all), then
    commands go straight to the socket and hiredis parses the replies. A connection
    class without a real socket (fakeredis, say) is driven through redis-py instead."""

    __slots__ = ("_conn", "_got", "_owed", "_reader", "_sent", "_sock", "broken", "client_id")

    def __init__(self, conn: Handshake, decode: bool) -> None:
        self.client_id: int | None = None  # Redis's id for it, once asked
        self.broken = False  # a reply could not be decoded: not to be used again
        # Replies are numbered in the order Redis sends them: `_sent` asked for so far
        # (by the thread that owns the link), `_got` read so far (by one reader at a
        # time), `_owed` the numbers of those nobody reads (see tell), dropped as read.
        self._sent = self._got = 0
        self._owed: deque[int] = deque()
        conn.connect()
        sock = getattr(conn, "_sock", None)
        self._conn = conn
        self._sock = sock if isinstance(sock, socket.socket) else None
        options: dict[str, Any] = {"encoding": "utf-8"} if decode else {}
        self._reader = hiredis.Reader(replyError=_reply_error, **options)

    def send(self, commands: Sequence[Command]) -> None:
        self.send_packed(b"".join(hiredis.pack_command(tuple(c)) for c in commands), len(commands))

    def tell(self, commands: Sequence[Command]) -> None:
        """Send ``commands`` with no reply wanted (one send, no round trip): their replies
        are read with the next exchange's and dropped, in their turn. (CLIENT REPLY SKIP
        would save that read but cost Redis a command each.) What Redis refuses goes
        unknown."""
        self.tell_packed(b"".join(hiredis.pack_command(tuple(c)) for c in commands), len(commands))

    def tell_packed(self, data: bytes, count: int = 1) -> None:
        """``count`` packed commands, as :meth:`tell` sends them."""
        if self._sock is None:  # no socket of ours: redis-py reads what comes back, now
            self.send_packed(data, count)
            for _ in range(count):
                self.read()
            return
        owed = self._owed
        for place in range(self._sent, self._sent + count):
            owed.append(place)
        self.send_packed(data, count)

    def send_packed(self, data: bytes, count: int = 1) -> None:
        """Send ``count`` packed commands, whose replies are read in their turn."""
        self._sent += count
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
        """The next reply (a told command's are skipped); an error reply is returned,
        not raised."""
        if self._sock is None:
            try:
                return self._conn.read_response()
            except redis.ResponseError as exc:
                return exc
        owed, sock = self._owed, self._sock
        while True:
            reply = self._next(sock)
            place = self._got
            self._got = place + 1
            if not owed or owed[0] != place:
                return reply
            owed.popleft()

    def _next(self, sock: socket.socket) -> Any:
        reply = self._gets()
        while reply is False:
            try:
                data = sock.recv(_CHUNK)
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
CLIENT_ID = b"*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n"  # CLIENT ID, packed


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
