"""Shared-memory slots where a child posts the job each of its threads runs right now.

The supervisor reads them every tick to enforce timeouts and to know which jobs a dead
child was running, without one pipe message (and one wake-up) per job. Each slot has a
single writer (one thread), so a sequence counter is enough to read it consistently.
"""

from __future__ import annotations

import mmap
import struct

_HEADER = struct.Struct("<QdH")  # sequence (odd while writing), started (monotonic), id len
_MAX_ID = 256
SIZE = _HEADER.size + _MAX_ID


class Slots:
    """``count`` slots, created before fork so parent and child share the mapping."""

    def __init__(self, count: int = 1) -> None:
        self.count = count
        self._mem = mmap.mmap(-1, SIZE * count)
        self._seq = [0] * count

    def post(self, index: int, job_id: str, started: float) -> None:
        """Child side: thread ``index`` runs ``job_id`` since ``started``."""
        self._write(index, job_id.encode()[:_MAX_ID], started)

    def clear(self, index: int) -> None:
        """Child side: thread ``index`` is idle."""
        self._write(index, b"", 0.0)

    def _write(self, index: int, raw: bytes, started: float) -> None:
        base = index * SIZE
        seq = self._seq[index] + 2
        self._seq[index] = seq
        _HEADER.pack_into(self._mem, base, seq - 1, 0.0, 0)  # odd: being written
        if raw:
            self._mem[base + _HEADER.size : base + _HEADER.size + len(raw)] = raw
        _HEADER.pack_into(self._mem, base, seq, started, len(raw))

    def read(self, index: int) -> tuple[str, float] | None:
        """Supervisor side: (job id, started) of slot ``index``; None when idle."""
        base = index * SIZE
        for _ in range(3):
            seq, started, length = _HEADER.unpack_from(self._mem, base)
            if seq % 2:
                continue
            raw = self._mem[base + _HEADER.size : base + _HEADER.size + length]
            if _HEADER.unpack_from(self._mem, base)[0] == seq:
                return (raw.decode(), started) if length else None
        return None

    def read_all(self) -> list[tuple[str, float]]:
        """Every busy slot's (job id, started)."""
        return [r for r in (self.read(i) for i in range(self.count)) if r is not None]

    def close(self) -> None:
        self._mem.close()
