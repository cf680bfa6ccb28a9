"""The child's end of its pipe to the supervisor (messages in :mod:`.protocol`)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence

from jobkit.models import Claimed
from jobkit.worker import protocol
from jobkit.worker.execute import Success

Entry = tuple[int, Claimed]  # a claimed job and the handle the supervisor knows it by
Done = tuple[int, Success]  # a finished job, its result not yet recorded, and its handle


class Link:
    """Tells the supervisor what this child holds. Used by every thread of the child."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._handles = itertools.count(1)  # next() is atomic: no lock to number jobs
        # one write at a time: a write over PIPE_BUF may be split, and another thread's
        # lines must not land inside it
        self._lock = threading.Lock()

    def _send(self, messages: list[str]) -> None:
        with self._lock:
            protocol.send(self.fd, messages)

    def claimed(self, jobs: Sequence[Claimed]) -> list[Entry]:
        """Number jobs just leased and tell the supervisor, which renews them from now."""
        entries = [(next(self._handles), job) for job in jobs]
        self._send(
            [protocol.claimed(h, j.id, j.token, j.attempts, j.timeout, j.name) for h, j in entries]
        )
        return entries

    def done(self, outcomes: Sequence[tuple[int, str]]) -> None:
        """Jobs finished, each with its outcome (succeeded, retrying, dead, lost)."""
        if outcomes:
            self._send([protocol.done(handle, outcome) for handle, outcome in outcomes])

    def released(self, handles: Sequence[int]) -> None:
        """Jobs handed back to their queue unstarted."""
        if handles:
            self._send([protocol.released(handle) for handle in handles])
