"""A loopback TCP proxy between Redis clients and redis-server that injects faults.

::

    with FaultProxy(upstream=("127.0.0.1", 6379)) as proxy:
        client = redis.Redis(port=proxy.port, socket_timeout=1)
        drop = proxy.drop_next_reply(b"INCR")   # the server runs it, the client never hears
        proxy.stall(2.0)                         # nothing moves for 2 s, in either direction
        proxy.reset_all()                        # every open connection gets an RST

Faults, and why each is shaped the way it is:

- ``drop_next_reply(match)``: the next command matching ``match`` reaches Redis and runs;
  its reply, and everything after it on that connection, is swallowed. The connection
  stays open and silent, as one whose reply was lost in the network would, so the client
  learns of it only through its socket timeout. That is the case a client must not
  "fix" by sending a non-idempotent command again.
- ``stall(seconds)``: no byte is read from any socket until the stall ends (new
  connections are accepted, but not connected through). Data waits in the kernel, so a
  request a client gave up on still reaches Redis late, as after a network hiccup.
- ``reset_all()``: every open connection is closed with SO_LINGER 0 on both sides, which
  sends an RST: the client sees ECONNRESET, Redis drops the client.

Reply boundaries come from :class:`hiredis.Reader`: the requests a client sends are
parsed to count them and to find the one to doom, and the replies are parsed to count
them; where a reply to drop starts inside a chunk, a fresh reader finds the exact byte
(a binary search on how many whole replies a prefix holds). Connections in pub/sub mode
are never doomed: their messages do not pair with commands.

The proxy runs an asyncio loop in a daemon thread; every public method is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from types import TracebackType

import hiredis

CHUNK = 1 << 16
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST
_PUBSUB = frozenset({b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE"})


@dataclass
class ProxyCounters:
    """What the proxy did so far (a snapshot from :attr:`FaultProxy.counters`)."""

    connections: int = 0  # client connections accepted
    open: int = 0  # connections open now
    upstream_refused: int = 0  # clients turned away because redis-server did not answer
    replies_dropped: int = 0
    dropped: list[str] = field(default_factory=list)  # the command of each dropped reply
    stalls: int = 0
    resets: int = 0  # reset_all() calls
    connections_reset: int = 0
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client


class Drop:
    """One armed :meth:`FaultProxy.drop_next_reply`; ``fired`` is set when a reply was
    swallowed, ``command`` then names it (name and first argument)."""

    def __init__(self, match: bytes | None) -> None:
        self.match = match
        self.fired = threading.Event()
        self.command = ""
        self.fired_at = 0.0  # time.time() when the reply was swallowed

    def matches(self, args: list[bytes]) -> bool:
        """``match`` is a command name (any case) or the start of any argument."""
        if self.match is None:
            return True
        if args[0].upper() == self.match.upper():
            return True
        return any(arg.startswith(self.match) for arg in args[1:])

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the drop fired; False on timeout."""
        return self.fired.wait(timeout)


def complete_replies(data: bytes) -> int:
    """How many whole RESP replies ``data`` (starting at a reply boundary) holds."""
    reader = hiredis.Reader()
    reader.feed(data)
    count = 0
    while reader.gets() is not False:
        count += 1
    return count


def offset_after(data: bytes, replies: int) -> int:
    """The byte offset in ``data`` (starting at a reply boundary) where its first
    ``replies`` whole replies end: the shortest prefix holding that many."""
    low, high = 0, len(data)
    while low < high:
        mid = (low + high) // 2
        if complete_replies(data[:mid]) >= replies:
            high = mid
        else:
            low = mid + 1
    return low


class _Conn:
    """One client connection and its upstream twin."""

    def __init__(self, proxy: FaultProxy, client: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.requests = hiredis.Reader()
        self.replies = hiredis.Reader()
        self.sent = 0  # commands forwarded to Redis
        self.answered = 0  # whole replies received from Redis
        self.mark = 0  # answered when the reply stream last stood at a boundary
        self.since_mark = bytearray()  # reply bytes received since then
        self.doom: Drop | None = None
        self.doomed_at = 0  # 1-based number of the reply to swallow
        self.silent = False  # the doomed reply came: forward nothing more
        self.pubsub = False
        self.unparsed = False  # a stream hiredis could not parse: forward blindly

    def writers(self) -> Iterator[asyncio.StreamWriter]:
        yield self.client
        if self.upstream is not None:
            yield self.upstream

    # -- client -> server ----------------------------------------------------------------

    def on_request(self, data: bytes) -> bytes:
        """Count the commands in ``data``; doom one if a drop is armed. Returns what to
        forward."""
        if self.silent:
            return b""
        if self.unparsed:
            return data
        self.requests.feed(data)
        while True:
            try:
                command = self.requests.gets()
            except hiredis.ProtocolError:
                self.unparsed = True
                break
            if command is False:
                break
            self.sent += 1
            args = [a if isinstance(a, bytes) else str(a).encode() for a in command]
            if args and args[0].upper() in _PUBSUB:
                self.pubsub = True  # replies no longer pair with commands
                self._release_doom()
            if self.doom is None and not self.pubsub and args:
                self.doom = self.proxy.claim_drop(args)
                if self.doom is not None:
                    # nothing of its reply can have come yet: Redis has not seen it
                    self.doomed_at = self.sent
        return data

    # -- server -> client ----------------------------------------------------------------

    def on_reply(self, data: bytes) -> bytes:
        """Count the replies in ``data``; returns what to forward (all of it, or what
        comes before a doomed reply, after which the connection falls silent)."""
        if self.silent:
            return b""
        if self.unparsed:
            return data
        self.replies.feed(data)
        before = len(self.since_mark)
        self.since_mark += data
        try:
            while self.replies.gets() is not False:
                self.answered += 1
        except hiredis.ProtocolError:
            self.unparsed = True
            self._release_doom()
            return data
        forward = data
        doom = self.doom
        if doom is not None and not self.pubsub:
            last_kept = self.doomed_at - 1  # the reply before the doomed one
            if self.answered > last_kept or (
                self.answered == last_kept and self.replies.has_data()
            ):
                cut = offset_after(bytes(self.since_mark), last_kept - self.mark)
                forward = data[: max(0, cut - before)]
                self.silent = True
                self.proxy.fired(doom)
        if not self.replies.has_data():  # a boundary: start counting from here
            self.mark = self.answered
            self.since_mark.clear()
        return forward

    def _release_doom(self) -> None:
        doom, self.doom = self.doom, None
        if doom is not None and not doom.fired.is_set():
            self.proxy.rearm(doom)

    def closed(self) -> None:
        """The connection ended: a doom that never fired goes back to the proxy."""
        self._release_doom()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 to ``upstream`` that can drop, stall and reset."""

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0):
        self.upstream = upstream
        self.host = host
        self._want_port = port
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        self._arms: deque[Drop] = deque()
        self._lock = threading.Lock()  # guards _arms and _counters across threads
        self._counters = ProxyCounters()
        self._flowing: asyncio.Event | None = None
        self._stall_until = 0.0  # loop time

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port clients connect to (known once started)."""
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self._port}/0"

    def start(self) -> FaultProxy:
        """Listen and forward, in a thread of its own; returns self."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), loop).result(10)
        return self

    def stop(self) -> None:
        """Close the listener and every connection; stop the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults --------------------------------------------------------------------------

    def drop_next_reply(self, match: bytes | None = None) -> Drop:
        """Swallow the reply of the next command matching ``match`` (a command name, any
        case, or the start of an argument such as a script's SHA; None: any command),
        then keep that connection silent. Several calls queue up."""
        drop = Drop(match)
        with self._lock:
            self._arms.append(drop)
        return drop

    def cancel_drops(self) -> int:
        """Disarm every drop that has not picked its command yet; how many."""
        with self._lock:
            count = len(self._arms)
            self._arms.clear()
        return count

    def stall(self, seconds: float) -> None:
        """Hold all traffic, both ways and on every connection, for ``seconds``; returns
        once the stall is in force. An overlapping stall extends the current one."""

        async def begin() -> None:
            self._begin_stall(seconds)

        asyncio.run_coroutine_threadsafe(begin(), self._require_loop()).result(10)

    @property
    def stalled(self) -> bool:
        flowing = self._flowing
        return flowing is not None and not flowing.is_set()

    def reset_all(self) -> int:
        """Send an RST on every open connection (both sides); how many were reset."""
        loop = self._require_loop()
        future = asyncio.run_coroutine_threadsafe(self._reset_all(), loop)
        return future.result(10)

    @property
    def counters(self) -> ProxyCounters:
        """A snapshot of what the proxy did."""
        with self._lock:
            return replace(self._counters, dropped=list(self._counters.dropped))

    # -- used by connections (loop thread) -------------------------------------------------

    def claim_drop(self, args: list[bytes]) -> Drop | None:
        with self._lock:
            for drop in self._arms:
                if drop.matches(args):
                    self._arms.remove(drop)
                    drop.command = " ".join(a.decode(errors="replace") for a in args[:2])
                    return drop
        return None

    def rearm(self, drop: Drop) -> None:
        """A doomed command whose connection died before its reply: pick another."""
        with self._lock:
            drop.command = ""
            self._arms.appendleft(drop)

    def fired(self, drop: Drop) -> None:
        drop.fired_at = time.time()
        with self._lock:
            self._counters.replies_dropped += 1
            self._counters.dropped.append(drop.command)
        drop.fired.set()

    # -- the loop ------------------------------------------------------------------------

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("FaultProxy is not started")
        return self._loop

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._serve, self.host, self._want_port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all(count=False)
        if self._flowing is not None:
            self._flowing.set()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _begin_stall(self, seconds: float) -> None:
        loop = self._require_loop()
        flowing = self._flowing
        assert flowing is not None
        with self._lock:
            self._counters.stalls += 1
        end = loop.time() + seconds
        if end <= self._stall_until:
            return
        self._stall_until = end
        flowing.clear()
        loop.call_at(end, self._end_stall)

    def _end_stall(self) -> None:
        loop = self._require_loop()
        if loop.time() >= self._stall_until - 0.001 and self._flowing is not None:
            self._flowing.set()

    async def _reset_all(self, count: bool = True) -> int:
        conns = list(self._conns)
        self._conns.clear()
        for conn in conns:
            for writer in conn.writers():
                sock = writer.get_extra_info("socket")
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
                writer.transport.abort()
        if count:
            with self._lock:
                self._counters.resets += 1
                self._counters.connections_reset += len(conns)
        await asyncio.sleep(0)  # let the aborted pumps see it
        return len(conns)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(self, writer)
        self._conns.add(conn)
        with self._lock:
            self._counters.connections += 1
            self._counters.open += 1
        try:
            await self._wait_flowing()
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                with self._lock:
                    self._counters.upstream_refused += 1
                return
            conn.upstream = up_writer
            # each pump closes its sink when its source ends, which ends its twin
            await asyncio.gather(
                self._pump(reader, up_writer, conn.on_request, "bytes_up"),
                self._pump(up_reader, writer, conn.on_reply, "bytes_down"),
            )
        finally:
            conn.closed()
            self._conns.discard(conn)
            with self._lock:
                self._counters.open -= 1
            for w in conn.writers():
                with contextlib.suppress(OSError, RuntimeError):
                    w.close()

    async def _wait_flowing(self) -> None:
        flowing = self._flowing
        assert flowing is not None
        await flowing.wait()

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        through: Callable[[bytes], bytes],
        counter: str,
    ) -> None:
        """Copy ``source`` to ``sink`` through ``through`` until either side closes or
        fails; then close ``sink``, whose socket's reader is the twin pump's source."""
        try:
            while True:
                await self._wait_flowing()
                data = await source.read(CHUNK)
                if not data:
                    break
                await self._wait_flowing()  # a stall begun while we waited holds this too
                with self._lock:
                    setattr(self._counters, counter, getattr(self._counters, counter) + len(data))
                out = through(data)
                if sink.is_closing():
                    break
                if out:
                    sink.write(out)
                    await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass  # a reset or a closed peer: the connection is over either way
        finally:
            # Half-close is not worth modelling: Redis clients never use it.
            with contextlib.suppress(OSError, RuntimeError):
                sink.close()
