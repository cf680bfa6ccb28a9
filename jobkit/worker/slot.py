"""A tiny shared-memory slot where a child posts the job it is running right now.

The supervisor reads it every tick to enforce timeouts and to know which job a dead
child was running, without one pipe message (and one wake-up) per job.
"""

from __future__ import annotations

import mmap
import struct

_HEADER = struct.Struct("<QdH")  # sequence (odd while writing), started (monotonic), id len
_MAX_ID = 256
SIZE = _HEADER.size + _MAX_ID


class Slot:
    """Created before fork, so parent and child share the same anonymous mapping."""

    def __init__(self) -> None:
        self._mem = mmap.mmap(-1, SIZE)
        self._seq = 0

    def post(self, job_id: str, started: float) -> None:
        """Child side: announce ``job_id`` started at ``started`` ('' when idle)."""
        raw = job_id.encode()[:_MAX_ID]
        self._seq += 1
        self._mem[: _HEADER.size] = _HEADER.pack(self._seq, 0.0, 0)  # odd: being written
        self._mem[_HEADER.size : _HEADER.size + len(raw)] = raw
        self._seq += 1
        self._mem[: _HEADER.size] = _HEADER.pack(self._seq, started, len(raw))

    def read(self) -> tuple[str, float] | None:
        """Supervisor side: (job id, started) or None when idle or mid-write."""
        for _ in range(3):
            seq, started, length = _HEADER.unpack_from(self._mem, 0)
            if seq % 2:
                continue
            raw = self._mem[_HEADER.size : _HEADER.size + length]
            if _HEADER.unpack_from(self._mem, 0)[0] == seq:
                return (raw.decode(), started) if length else None
        return None

    def close(self) -> None:
        self._mem.close()
