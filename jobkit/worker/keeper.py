"""A child's housekeeping thread: bounds how long a finished job's result waits for its
batch (``FLUSH_AFTER``), and hands unstarted jobs back when every runner is stuck in a
long job (``RELEASE_AFTER``), so prefetch never starves a short job behind a long one."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from jobkit.worker.lifeline import orphaned
from jobkit.worker.link import Done, Entry
from jobkit.worker.outage import TROUBLE

if TYPE_CHECKING:
    from jobkit.worker.child import Child, Sent

FLUSH_AFTER = 0.005  # a finished job's result waits at most this long for its batch
RELEASE_AFTER = 0.1  # a job running this long sends the unstarted prefetch back
IDLE_WAIT = 0.1  # seconds the idle housekeeper sleeps between looks at ``stop``


class Keeper:
    """The housekeeping of one child (see the module docstring)."""

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
        child = self.child
        while not self.stop.is_set():
            with child.cond:
                idle = not child.pending and not child.batch and child.sent is None
                child.keeper_asleep = idle
            if idle:  # nothing to flush or release: sleep until a runner has something
                child.kick.wait(IDLE_WAIT)
                child.kick.clear()
                continue
            time.sleep(FLUSH_AFTER / 2)
            now = time.monotonic()
            flush: list[Done] = []
            release: list[Entry] = []
            takeover: Sent | None = None
            with child.cond:
                if child.pending and now - child.pending[0][1].finished >= FLUSH_AFTER:
                    flush, child.pending = child.pending, []
                # every runner is stuck in a long job: let other workers have the prefetch,
                # including what a runner asked for just before its job
                busy_since = [t for t in child.started if t]
                stuck = len(busy_since) == child.threads and now - max(busy_since) > RELEASE_AFTER
                if stuck and child.sent is not None:
                    takeover, child.sent = child.sent, None
            if takeover is not None:
                child.finish(takeover, wait=False)  # may take a while: look again after
            with child.cond:
                busy_since = [t for t in child.started if t]
                now = time.monotonic()
                stuck = len(busy_since) == child.threads and now - max(busy_since) > RELEASE_AFTER
                if stuck and child.batch:
                    release = list(child.batch)
                    child.batch.clear()
            self._hand_over(flush, release)

    def _hand_over(self, flush: list[Done], release: list[Entry]) -> None:
        """Record ``flush`` and give ``release`` back; on Redis trouble what was not sent
        stays with the child (the runners ride it out) and we back off."""
        child = self.child
        try:
            if flush:
                try:
                    flags = child.store.complete_many([d.completion() for _, d in flush])
                except TROUBLE:
                    with child.cond:
                        child.pending[:0] = flush
                        child.batch.extendleft(reversed(release))
                    raise
                child.report(flush, flags)
            if release:
                child.release(release)  # keeps what Redis did not take back
        except TROUBLE as exc:
            self.stop.wait(child.guard.failed("recording results", exc))
