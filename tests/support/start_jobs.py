"""A job that notes, as perform() begins, that it began (tests/…/test_start_marks.py),
and may then take its whole worker down."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from pydantic import BaseModel

from jobkit import BaseJob, Retry


class NotesStart(BaseJob):
    """Appends its id to the file ``log`` as perform() begins (one write: what a SIGKILL
    a moment later cannot undo). If the file ``kill`` holds a number of seconds, it then
    SIGKILLs its whole process group (supervisor and children) that long after it
    began; else it sleeps ``seconds``."""

    retry = Retry(max_attempts=3, base=0.05, jitter=False)

    class Params(BaseModel):
        log: str
        kill: str
        seconds: float = 0.05

    def perform(self) -> int:
        fd = os.open(self.params.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{self.job_id}\n".encode())
        finally:
            os.close(fd)
        try:
            after = float(Path(self.params.kill).read_text())
        except (OSError, ValueError):
            time.sleep(self.params.seconds)
            return self.attempt
        time.sleep(after)
        os.killpg(os.getpgrp(), signal.SIGKILL)
        return self.attempt  # not reached
