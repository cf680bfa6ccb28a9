"""Limits the supervisor enforces on its children: per-job time and per-child memory."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobkit.worker.protocol import Held, Reader, held
from jobkit.worker.slot import Slots


@dataclass(slots=True)
class ChildState:
    """What the supervisor knows of one child process."""

    pid: int
    fd: int
    slots: Slots
    reader: Reader = field(default_factory=Reader)
    held: dict[str, str] = field(default_factory=dict)  # job id -> its claim, unparsed
    marked: set[str] = field(default_factory=set)  # held jobs Redis knows have started
    kill_reason: str | None = None  # why we killed it: "timeout" | "shutdown"
    timed_out: str | None = None  # the job whose timeout made us kill it
    recycling: bool = False  # asked to exit after its current job (memory)

    def job(self, job_id: str) -> Held:
        """What the child told us about a job it holds."""
        return held(self.held[job_id])

    def running(self) -> dict[str, float]:
        """Job id -> monotonic start, for every job the child's threads run now."""
        return {job_id: t for job_id, t in self.slots.read_all() if job_id in self.held}

    def overdue(self, now: float, default_timeout: float) -> str | None:
        """The id of a running job past its timeout, if any."""
        for job_id, started in self.running().items():
            limit = self.job(job_id).timeout or default_timeout
            if limit and now - started > limit:
                return job_id
        return None


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (0 if it is gone)."""
    import psutil  # imported where used: it adds to every process's start-up time

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0
