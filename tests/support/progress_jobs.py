"""Jobs that report progress, for tests/integration/test_progress.py (a worker imports
this module with ``-A tests.support.progress_jobs``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import jobkit
from jobkit import BaseJob, Retry
from jobkit.progress import RUN

CALLS = 20_000
MARKUP = '<b>resizing</b> & <script>alert("x")</script>'


class Many(BaseJob):
    """Reports progress CALLS times in a tight loop; returns how many writes its
    reporter sent while it ran (the one owed at the end is sent after it returns)."""

    queue = "progress"

    def perform(self) -> int:
        for i in range(1, CALLS + 1):
            self.progress(i / CALLS, f"step {i} of {CALLS}")
        return int(getattr(self, RUN).writes)


class GoParams(BaseModel):
    go: str  # a file: the job goes on once it exists
    message: str = MARKUP


def _wait_for(path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


class Held(BaseJob[GoParams]):
    """Reports 40% with its message, waits for its file, then reports done."""

    queue = "progress"

    def perform(self) -> dict[str, Any]:
        self.progress(0.4, self.params.message)
        _wait_for(self.params.go)
        self.progress(1.0, "done")
        return {"ok": True}


class Again(BaseJob[GoParams]):
    """Attempt 1 reports 70% and fails; attempt 2 waits for its file before it reports
    anything, then reports 20% and a last 90% within the throttle's window, and returns."""

    queue = "progress"
    retry = Retry(max_attempts=2, base=0.0, jitter=False)

    def perform(self) -> None:
        if self.attempt == 1:
            self.progress(0.7, "first attempt")
            raise RuntimeError("first attempt fails")
        _wait_for(self.params.go)
        self.progress(0.2, "second attempt")
        self.progress(0.9, "second attempt, nearly")  # kept: written when perform() ends


@jobkit.task(bind=True, queue="progress")
def halfway(job: BaseJob, n: int) -> int:
    """A function task reports through the job it is bound to."""
    job.progress(0.5, f"half of {n}")
    return n
