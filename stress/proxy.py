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

Reply boundaries come from :class:`hiredis.Reader` (see :mod:`stress.replies`).

The proxy runs an asyncio loop in a daemon thread; every public method is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from types import TracebackType

from stress.replies import Drop, Drops, ReplyTracker

__all__ = ["Drop", "FaultProxy", "ProxyCounters"]

CHUNK = 1 << 16
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST


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


class _Conn:
    """One client connection, its upstream twin, and what flows between them."""

    def __init__(self, drops: Drops, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tracker = ReplyTracker(drops)

    def writers(self) -> Iterator[asyncio.StreamWriter]:
        yield self.client
        if self.upstream is not None:
            yield self.upstream


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
        self._drops = Drops(self._count_drop)
        self._lock = threading.Lock()  # guards _counters across threads
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
        self._drops.arm(drop)
        return drop

    def cancel_drops(self) -> int:
        """Disarm every drop that has not picked its command yet; how many."""
        return self._drops.cancel()

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

    def _count_drop(self, drop: Drop) -> None:
        with self._lock:
            self._counters.replies_dropped += 1
            self._counters.dropped.append(drop.command)

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
            task.cancel()  # _serve swallows it: see there
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
        conn = _Conn(self._drops, writer)
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
                self._pump(reader, up_writer, conn.tracker.on_request, "bytes_up"),
                self._pump(up_reader, writer, conn.tracker.on_reply, "bytes_down"),
            )
        except asyncio.CancelledError:
            # stop() cancels what is left; ending quietly spares asyncio's stream
            # callback (3.11) from logging the cancellation as an error
            pass
        finally:
            conn.tracker.closed()
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
