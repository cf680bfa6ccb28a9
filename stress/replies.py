"""Where replies begin and end in a Redis connection's byte stream, found with
:class:`hiredis.Reader`, and the drops :class:`stress.proxy.FaultProxy` arms with them.

Both directions are parsed: the client's commands are counted, and the one an armed drop
matches is doomed; the server's replies are counted, and where the doomed reply begins
inside a chunk, a fresh reader finds the exact byte (a binary search on how many whole
replies a prefix holds). Connections in pub/sub mode are never doomed: their messages
do not pair with commands.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import hiredis

_PUBSUB = frozenset({b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE"})


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


class Drops:
    """Armed drops, in the order they were asked for; shared by every connection."""

    def __init__(self, on_fired: Callable[[Drop], None]) -> None:
        self._armed: deque[Drop] = deque()
        self._lock = threading.Lock()
        self._on_fired = on_fired

    def arm(self, drop: Drop) -> None:
        with self._lock:
            self._armed.append(drop)

    def cancel(self) -> int:
        with self._lock:
            count = len(self._armed)
            self._armed.clear()
        return count

    def claim(self, args: list[bytes]) -> Drop | None:
        """The first armed drop that ``args`` matches, taken off the queue."""
        with self._lock:
            for drop in self._armed:
                if drop.matches(args):
                    self._armed.remove(drop)
                    drop.command = " ".join(a.decode(errors="replace") for a in args[:2])
                    return drop
        return None

    def rearm(self, drop: Drop) -> None:
        """A doomed command whose connection died before its reply: pick another."""
        with self._lock:
            drop.command = ""
            self._armed.appendleft(drop)

    def fired(self, drop: Drop) -> None:
        drop.fired_at = time.time()
        self._on_fired(drop)
        drop.fired.set()


class ReplyTracker:
    """The command and reply streams of one connection: counts both, picks the command
    whose reply an armed drop swallows, and says what of each chunk to forward."""

    def __init__(self, drops: Drops) -> None:
        self.drops = drops
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
                self.doom = self.drops.claim(args)
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
                self.drops.fired(doom)
        if not self.replies.has_data():  # a boundary: start counting from here
            self.mark = self.answered
            self.since_mark.clear()
        return forward

    def _release_doom(self) -> None:
        doom, self.doom = self.doom, None
        if doom is not None and not doom.fired.is_set():
            self.drops.rearm(doom)

    def closed(self) -> None:
        """The connection ended: a doom that never fired is armed again."""
        self._release_doom()
