"""Limits the supervisor enforces on its children: per-job time and per-child memory."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil


@dataclass(slots=True)
class Held:
    """A job a child holds a lease on."""

    token: str
    attempt: int
    timeout: float
    name: str
    started: float | None = None  # monotonic; None while prefetched, not yet started


@dataclass(slots=True)
class ChildState:
    """What the supervisor knows of one child process."""

    pid: int
    fd: int
    held: dict[str, Held] = field(default_factory=dict)
    current: str | None = None
    kill_reason: str | None = None  # why we killed it: "timeout" | "memory" | "shutdown"
    recycling: bool = False  # asked to exit after its current job (memory)

    def overdue(self, now: float, default_timeout: float) -> str | None:
        """The id of the running job past its timeout, if any."""
        if self.current is None:
            return None
        held = self.held.get(self.current)
        if held is None or held.started is None:
            return None
        limit = held.timeout or default_timeout
        if limit and now - held.started > limit:
            return self.current
        return None


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (0 if it is gone)."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def monotonic() -> float:
    return time.monotonic()
