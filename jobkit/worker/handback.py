"""How a worker child gives jobs back: unstarted jobs returned to their queue (when every
runner is stuck in a long job, and on the way out), and the wind-down that lets running
jobs finish and records the results still pending. Mixed into :class:`~.child.Child`."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

import redis

from jobkit.backend.store import Store
from jobkit.settings import Settings
from jobkit.worker.execute import persistently
from jobkit.worker.link import Done, Entry, Link
from jobkit.worker.outage import TROUBLE

log = logging.getLogger("jobkit.worker")

IDLE_BLOCK = 2.0  # seconds an idle child blocks on Redis before checking on its parent
STOP_POLL = 0.1  # seconds between checks for SIGTERM and a vanished supervisor


class HandBack:
    """Giving jobs back, mixed into the child (its state is the child's)."""

    settings: Settings
    store: Store
    link: Link
    cond: threading.Condition
    batch: deque[Entry]
    pending: list[Done]
    started: list[float]
    closing: bool
    blocking: bool
    refilling: bool
    block_id: int

    def _wait(self, timeout: float) -> None: ...
    def report(self, done: Sequence[Done], flags: Sequence[bool]) -> None: ...

    def release(self, entries: Sequence[Entry]) -> None:
        """Give unstarted jobs back to their queue. Should Redis fail half way, those it
        may have taken back are reported released and the rest stay ours (raised).

        A requeue whose reply is lost (a timeout, a dropped connection) may have run: its
        job may be queued again, and claimed by another worker, so it is never run here.
        Its lease is no longer renewed; if the requeue did not run, the lease lapses and
        the reaper hands it back, no attempt used (it never started)."""
        given: list[Entry] = []
        try:
            for handle, job in entries:
                given.append((handle, job))  # from the moment it is sent
                self.store.requeue(job.id, job.token, uncount=True)
        except TROUBLE:
            with self.cond:
                self.batch.extendleft(reversed(entries[len(given) :]))
            raise
        finally:
            self.link.released([handle for handle, _ in given])

    def _wind_down(self) -> None:
        """On the way out: let running jobs finish, record finished results, hand back
        what never started. A runner blocked waiting for work is woken, as its wait ends
        in a claim; one stuck retrying an unreachable Redis is not waited for long."""
        deadline = time.monotonic() + IDLE_BLOCK + 1.0
        with self.cond:
            self.closing = True
            self.cond.notify_all()
            while any(self.started) or (self.refilling and time.monotonic() < deadline):
                if self.blocking:
                    with contextlib.suppress(redis.RedisError):
                        self.store.unblock(self.block_id)
                self._wait(STOP_POLL)
            done, self.pending = self.pending, []
            unstarted, self.batch = list(self.batch), deque()
        try:
            if done:
                flags = persistently(
                    lambda: self.store.complete_many([d.completion() for _, d in done]),
                    self.settings.lease,
                )
                self.report(done, flags)
            if unstarted:
                self.release(unstarted)
        except TROUBLE as exc:
            log.warning(
                "could not hand back %d job(s) (%s); their leases will lapse and be reaped",
                len(done) + len(unstarted),
                exc,
            )
