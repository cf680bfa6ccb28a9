"""A job that notes, as perform() begins, that it began (tests/…/test_start_marks.py)."""

from __future__ import annotations

import os
import time

from pydantic import BaseModel

from jobkit import BaseJob, Retry


class NotesStart(BaseJob):
    """Appends its id to the file ``log`` as perform() begins (one write: what a SIGKILL
    a moment later cannot undo), then sleeps ``seconds``."""

    retry = Retry(max_attempts=3, base=0.05, jitter=False)

    class Params(BaseModel):
        log: str
        seconds: float = 0.3

    def perform(self) -> int:
        fd = os.open(self.params.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{self.job_id}\n".encode())
        finally:
            os.close(fd)
        time.sleep(self.params.seconds)
        return self.attempt
