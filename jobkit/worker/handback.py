"""How a worker child gives jobs back: unstarted jobs returned to their queue (when every
runner is stuck in a long job, and on the way out), and the wind-down that lets running
jobs finish and records the results still pending. Mixed into :class:`~.child.Child`;
what it takes from the child's :class:`~jobkit.worker.hold.Hold`, or puts back, goes
through the hold's transitions."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence

from jobkit.backend.store import Store
from jobkit.outage import TROUBLE
from jobkit.settings import Settings
from jobkit.worker.execute import persistently
from jobkit.worker.hold import IDLE_BLOCK, NONE, STOP_POLL, WAITING, Hold
from jobkit.worker.link import Done, Entry, Link

log = logging.getLogger("jobkit.worker")


class HandBack:
    """Giving jobs back, mixed into the child (its state is the child's)."""

    settings: Settings
    store: Store
    link: Link
    hold: Hold

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
                self.store.leasing.requeue(job.id, job.token, uncount=True)
        except TROUBLE:
            self.hold.put_back(unstarted=entries[len(given) :])
            raise
        finally:
            self.link.released([handle for handle, _ in given])

    def _wind_down(self) -> None:
        """On the way out: let running jobs finish, record finished results, hand back
        what never started. A runner blocked waiting for work is woken, as its wait ends
        in a claim; one stuck retrying an unreachable Redis is not waited for long."""
        hold = self.hold
        deadline = time.monotonic() + IDLE_BLOCK + 1.0
        with hold.cond:  # re-entrant: the transitions below take it again
            hold.close()
            hold.cond.notify_all()
            while any(hold.started) or (hold.refill is not NONE and time.monotonic() < deadline):
                if hold.refill is WAITING:
                    with contextlib.suppress(*TROUBLE):
                        self.store.leasing.unblock(hold.block_id)
                hold.wait(STOP_POLL)
            done = hold.results()
            unstarted = hold.unstarted()
        try:
            if done:
                flags = persistently(
                    lambda: self.store.leasing.complete_many([d.completion() for _, d in done]),
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
