"""Limits the supervisor enforces on its children: per-job time and per-child memory."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil

from jobkit.worker.protocol import Reader
from jobkit.worker.slot import Slot


@dataclass(slots=True)
class Held:
    """A job a child holds a lease on."""

    token: str
    attempt: int
    timeout: float
    name: str


@dataclass(slots=True)
class ChildState:
    """What the supervisor knows of one child process."""

    pid: int
    fd: int
    slot: Slot
    reader: Reader = field(default_factory=Reader)
    held: dict[str, Held] = field(default_factory=dict)
    kill_reason: str | None = None  # why we killed it: "timeout" | "memory" | "shutdown"
    recycling: bool = False  # asked to exit after its current job (memory)

    def current(self) -> tuple[str, float] | None:
        """(id, monotonic start) of the job the child runs now, if it holds one."""
        running = self.slot.read()
        return running if running and running[0] in self.held else None

    def overdue(self, now: float, default_timeout: float) -> str | None:
        """The id of the running job past its timeout, if any."""
        running = self.current()
        if running is None:
            return None
        job_id, started = running
        limit = self.held[job_id].timeout or default_timeout
        return job_id if limit and now - started > limit else None


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (0 if it is gone)."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def monotonic() -> float:
    return time.monotonic()
