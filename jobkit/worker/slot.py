"""Shared-memory slots where a child posts the job each of its threads runs right now.

The supervisor reads them every tick to enforce timeouts and to know which jobs a dead
child was running, without one pipe message (and one wake-up) per job. Each slot has a
single writer (one thread), so a sequence counter is enough to read it consistently.

A slot holds the job's *handle* (see :mod:`jobkit.worker.protocol`), a number the child
sent with the claim, never the id itself: an id is whatever a writer put in Redis, and
a fixed-size slot must not depend on how many bytes it takes.
"""

from __future__ import annotations

import mmap
import struct

_SEQ = struct.Struct("<Q")  # sequence: odd while being written
_BODY = struct.Struct("<dQ")  # started (monotonic), handle (0: idle)
SIZE = _SEQ.size + _BODY.size


class Slots:
    """``count`` slots, created before fork so parent and child share the mapping."""

    def __init__(self, count: int = 1) -> None:
        self.count = count
        self._mem = mmap.mmap(-1, SIZE * count)
        self._seq = [0] * count

    def post(self, index: int, handle: int, started: float) -> None:
        """Child side: thread ``index`` runs the job of ``handle`` since ``started``."""
        base = index * SIZE
        seq = self._seq[index] + 2
        self._seq[index] = seq
        # the sequence goes odd before the body changes and even after: a reader that
        # sees the same even number on both sides of its read saw one whole post
        _SEQ.pack_into(self._mem, base, seq - 1)
        _BODY.pack_into(self._mem, base + _SEQ.size, started, handle)
        _SEQ.pack_into(self._mem, base, seq)

    def clear(self, index: int) -> None:
        """Child side: thread ``index`` is idle."""
        self.post(index, 0, 0.0)

    def read(self, index: int) -> tuple[int, float] | None:
        """Supervisor side: (handle, started) of slot ``index``; None when idle."""
        base = index * SIZE
        for _ in range(3):
            (seq,) = _SEQ.unpack_from(self._mem, base)
            if seq % 2:
                continue
            started, handle = _BODY.unpack_from(self._mem, base + _SEQ.size)
            if _SEQ.unpack_from(self._mem, base)[0] == seq:
                return (handle, started) if handle else None
        return None

    def read_all(self) -> list[tuple[int, float]]:
        """Every busy slot's (handle, started)."""
        return [r for r in (self.read(i) for i in range(self.count)) if r is not None]

    def close(self) -> None:
        self._mem.close()
