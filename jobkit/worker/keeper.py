"""A child's housekeeping thread: bounds how long a finished job's result waits for its
batch (``FLUSH_AFTER``), and hands unstarted jobs back when every runner is stuck in a
long job (``RELEASE_AFTER``), so prefetch never starves a short job behind a long one."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from jobkit.outage import TROUBLE
from jobkit.worker.lifeline import orphaned
from jobkit.worker.link import Done, Entry

if TYPE_CHECKING:
    from jobkit.worker.child import Child
    from jobkit.worker.hold import Sent

FLUSH_AFTER = 0.005  # a finished job's result waits at most this long for its batch
RELEASE_AFTER = 0.1  # a job running this long sends the unstarted prefetch back
IDLE_WAIT = 0.1  # seconds the idle housekeeper sleeps between looks at ``stop``


class Keeper:
    """The housekeeping of one child (see the module docstring). It changes the child's
    :class:`~jobkit.worker.hold.Hold` through the hold's transitions only."""

    def __init__(self, child: Child, stop: threading.Event) -> None:
        self.child = child
        self.stop = stop

    def run(self) -> None:
        """The thread's body. Should it fail, the child stops and is replaced."""
        try:
            self._loop()
        except BrokenPipeError:
            orphaned()
        except BaseException:
            self.child.died("housekeeping thread")

    def _loop(self) -> None:
        child, hold = self.child, self.child.hold
        while not self.stop.is_set():
            if hold.nothing_to_watch():  # sleep until a runner has something for us
                hold.kick.wait(IDLE_WAIT)
                hold.kick.clear()
                continue
            time.sleep(FLUSH_AFTER / 2)
            now = time.monotonic()
            takeover: Sent | None = None
            with hold.cond:  # one look at both (the hold's lock is re-entrant)
                flush = hold.results_due(now, FLUSH_AFTER)
                # every runner is stuck in a long job: let other workers have the prefetch,
                # including what a runner asked for just before its job
                if hold.stuck(now, RELEASE_AFTER):
                    takeover = hold.unpark()
            if takeover is not None:
                child.finish(takeover, wait=False)  # may take a while: look again after
            with hold.cond:
                release = hold.unstarted() if hold.stuck(time.monotonic(), RELEASE_AFTER) else []
            self._hand_over(flush, release)

    def _hand_over(self, flush: list[Done], release: list[Entry]) -> None:
        """Record ``flush`` and give ``release`` back; on Redis trouble what was not sent
        stays with the child (the runners ride it out) and we back off."""
        child = self.child
        try:
            if flush:
                try:
                    flags = child.store.leasing.complete_many([d.completion() for _, d in flush])
                except TROUBLE:
                    child.hold.put_back(flush, release)
                    raise
                child.report(flush, flags)
            if release:
                child.release(release)  # keeps what Redis did not take back
        except TROUBLE as exc:
            self.stop.wait(child.guard.failed("recording results", exc))
