"""Limits the supervisor enforces on its children: per-job time, per-child memory and
age; and what it knows of each child to enforce them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum

from jobkit.worker.protocol import Held, Reader, held, malformed
from jobkit.worker.slot import Slots


class KillReason(str, Enum):
    """Why the supervisor killed a child."""

    TIMEOUT = "timeout"  # a job overran its time limit
    MEMORY = "memory"  # it grew past --max-memory while running a job
    CANCEL = "cancel"  # a job it ran was cancelled
    SHUTDOWN = "shutdown"  # the grace period of a graceful stop ran out


@dataclass(slots=True)
class ChildState:
    """What the supervisor knows of one child process."""

    pid: int
    fd: int
    slots: Slots
    exit_fd: int | None = None  # readable once the child has exited (a pidfd), if any
    reader: Reader = field(default_factory=Reader)
    held: dict[str, str] = field(default_factory=dict)  # handle (text) -> claim, unparsed
    born: float = field(default_factory=time.monotonic)
    kill_reason: KillReason | None = None  # why we killed it
    blamed: set[str] = field(default_factory=set)  # handles whose timeout or memory did
    cancelled: set[str] = field(default_factory=set)  # handles whose cancel made us kill it
    note: str = ""  # what the kill was about, for the attempt's error (memory)
    recycling: bool = False  # asked to exit after its current job (memory, age)
    counts: dict[str, int] = field(default_factory=dict)  # outcomes of its jobs

    def job(self, handle: str) -> Held | None:
        """What the child told us about a job it holds (None: not held, or unreadable)."""
        fields = self.held.get(handle)
        if fields is None:
            return None
        try:
            return held(fields)
        except ValueError:
            malformed("claim", fields)
            del self.held[handle]  # once: it cannot get better
            return None

    def jobs(self) -> list[tuple[str, Held]]:
        """Every job the child holds, by handle."""
        found = ((handle, self.job(handle)) for handle in list(self.held))
        return [(handle, job) for handle, job in found if job is not None]

    def running(self) -> dict[str, float]:
        """Handle -> monotonic start, for every job the child's threads run now."""
        busy = ((str(handle), t) for handle, t in self.slots.read_all())
        return {handle: t for handle, t in busy if handle in self.held}

    def overdue(self, now: float, default_timeout: float) -> str | None:
        """The handle of a running job past its timeout, if any."""
        for handle, started in self.running().items():
            job = self.job(handle)
            limit = (job.timeout if job else 0) or default_timeout
            if limit and now - started > limit:
                return handle
        return None


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (0 if it is gone)."""
    import psutil  # imported where used: it adds to every process's start-up time

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0
