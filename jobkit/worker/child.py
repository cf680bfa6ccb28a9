"""A worker child: claims jobs in batches, runs them, records results in batches.

It never renews leases itself: the supervisor does, so a job that hogs this process
(CPU-bound, a C call holding the GIL) cannot make its own lease lapse. The child tells
the supervisor which jobs it holds over a pipe (one write per batch) and which ones it
is running in shared-memory :class:`~jobkit.worker.slot.Slots` (no syscall per job).

``threads`` runner threads run jobs. A runner low on unstarted jobs sends the finished
results and the next claim in one request, runs its job, then reads the answer; an idle
runner waits for work with the claim queued behind its BLPOP. Each claimed job still has
its own lease and token. A housekeeping thread (:mod:`~jobkit.worker.keeper`) bounds
how long a result waits for its batch and hands unstarted jobs back when every runner is
stuck in a long job, so prefetch never starves a short job behind a long one.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import types
from collections import deque
from collections.abc import Mapping, Sequence

from jobkit.backend.keys import every_tag_lanes
from jobkit.backend.store import Refill, Store
from jobkit.connection import connect
from jobkit.models import Claimed
from jobkit.settings import Settings
from jobkit.worker.execute import LOST, SUCCEEDED, Executor, Success
from jobkit.worker.handback import IDLE_BLOCK, STOP_POLL, HandBack
from jobkit.worker.keeper import Keeper
from jobkit.worker.lifeline import orphaned
from jobkit.worker.link import Done, Entry, Link
from jobkit.worker.order import QueueOrder
from jobkit.worker.outage import TROUBLE, Guard
from jobkit.worker.protocol import RETIRED
from jobkit.worker.slot import Slots

log = logging.getLogger("jobkit.worker")

LANES_REFRESH = 1.0  # seconds between looks for new tagged lanes (``--tags '*'``)
FAILED = 70  # exit code of a child one of whose threads died: the supervisor replaces it

Sent = tuple[Refill, list[Done]]  # a refill request, and the results it records
CLAIMING = "claiming jobs"


class Child(HandBack):
    """The execution loop of one child process."""

    def __init__(
        self,
        settings: Settings,
        worker: str,
        groups: Sequence[Sequence[str]],
        fd: int,
        slots: Slots,
        prefetch: int = 1,
        log_jobs: bool = True,
        all_tags: bool = False,
        max_jobs: int = 0,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.groups = [list(g) for g in groups]
        self.lanes = [lane for g in self.groups for lane in g]
        self.all_tags = all_tags  # serve every tagged lane of our queues, found in Redis
        self.order = QueueOrder(weights)  # which queue each claim asks first (-q high:5,...)
        self.lanes_checked = 0.0
        self.link = Link(fd)
        self.slots = slots
        self.threads = slots.count
        self.prefetch = max(1, prefetch)
        # with fewer unstarted jobs than this, a runner asks for more before its next job
        # (not with prefetch 1: then a child holds one job at a time)
        self.low_water = prefetch // 2 if prefetch > 1 else 0
        self.log_jobs = log_jobs
        self.lease_ms = int(settings.lease * 1000)
        self.stopping = False  # set by SIGTERM, or when a thread of ours died
        self.failed = False  # a thread died: exit with FAILED
        self.max_jobs, self.ran = max_jobs, 0  # retire after max_jobs jobs (0: never)
        self.parent = os.getppid()
        self.guard = Guard(log)  # Redis trouble: logged once per retry or kind, backed off
        self.cond = threading.Condition()
        # all below guarded by `cond`
        self.batch: deque[Entry] = deque()  # claimed, not started
        self.pending: list[Done] = []  # finished, result not yet recorded
        self.started = [0.0] * self.threads  # monotonic start per runner thread, 0 idle
        self.refilling = False  # one runner is claiming (or waiting for work) for all
        self.sent: Sent | None = None  # a refill whose sender runs a job: anyone may read it
        self.blocking = False  # ... and is blocked waiting for work
        self.drained = False  # a woken runner's claim emptied the queue: no refill yet
        self.block_id = 0  # Redis's id for the connection of the runner waiting for work
        self.closing = False  # no runner takes another job
        self.waiting = 0  # threads in cond.wait(): only then does a change notify
        self.keeper_asleep = False  # the housekeeper waits for `kick`: only then is it set
        self.kick = threading.Event()  # wakes the housekeeper when there is something to watch
        self.store: Store
        self.executor: Executor

    def _on_term(self, signum: int, frame: types.FrameType | None) -> None:
        self.stopping = self.closing = True  # no runner takes another job (see _wind_down)

    def run(self) -> int:
        """Serve until SIGTERM; the exit code (0, or FAILED when a thread of ours died).
        The supervisor forked us with SIGTERM and SIGINT blocked: unblocked here, once
        our handlers are in place."""
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches us via the supervisor
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        self.store = connect(self.settings)
        self.executor = Executor(self.store, self.settings, log_jobs=self.log_jobs)
        # a head start, not a requirement: a script Redis lacks is loaded when refused,
        # and with Redis away the runners wait for it, backing off
        self.guard.call("loading scripts", self.store.load_scripts)
        self.guard.call("reading Redis's argument limit", self.store.learn_argument_limit)
        if self.stopping:  # told to stop while starting: claim nothing
            return 0
        stop_keeper = threading.Event()
        keeper = Keeper(self, stop_keeper)
        threads = [threading.Thread(target=keeper.run, name="keeper", daemon=True)]
        threads += [
            threading.Thread(target=self._runner, args=(i,), daemon=True, name=f"runner-{i}")
            for i in range(self.threads)
        ]
        for thread in threads:
            thread.start()
        try:
            while not self.stopping:
                if os.getppid() != self.parent:  # the lifeline's third net
                    orphaned()
                time.sleep(STOP_POLL)
        finally:
            self._wind_down()
            stop_keeper.set()
        if self.failed:
            return FAILED
        return RETIRED if self.max_jobs and self.ran >= self.max_jobs else 0

    def died(self, what: str) -> None:
        """A thread of ours died: stop, so the supervisor replaces this child (and
        settles the job that thread was running), rather than keep a child that holds a
        job it will never finish."""
        log.exception("%s failed: stopping this child so it is replaced", what)
        self.failed = self.stopping = True

    # -- runner threads -----------------------------------------------------------------

    def _runner(self, index: int) -> None:
        try:
            self._run_jobs(index)
        except BrokenPipeError:
            orphaned()  # the supervisor is gone
        except BaseException:
            self.died(f"runner thread {index}")
        finally:
            with self.cond:
                self.started[index] = 0.0
                self._wake()

    def _trouble(self, what: str, exc: Exception, *, pause: bool) -> None:
        """A Redis call failed: logged (once per retry or kind); with ``pause``, wait."""
        delay = self.guard.failed(what, exc)
        if pause:
            time.sleep(delay)

    def _wake(self, *, watch: bool = False) -> None:
        """With ``cond`` held: the state changed (with ``watch``: in a way the housekeeper
        watches). Runs per job, so only threads that wait are woken."""
        if self.waiting:
            self.cond.notify_all()
        if watch and self.keeper_asleep:
            self.keeper_asleep = False
            self.kick.set()

    def _wait(self, timeout: float) -> None:
        """With ``cond`` held: wait for :meth:`_wake`, at most ``timeout`` seconds."""
        self.waiting += 1
        try:
            self.cond.wait(timeout)
        finally:
            self.waiting -= 1

    def _run_jobs(self, index: int) -> None:
        executor = (
            self.executor
            if index == 0
            else Executor(self.store, self.settings, log_jobs=self.log_jobs)
        )
        while True:
            ahead = False  # this thread asks for the next batch
            takeover: Sent | None = None  # ... or reads one a busy thread asked for
            with self.cond:
                while True:
                    if self.closing:
                        return
                    if self.batch:
                        job: Entry | None = self.batch.popleft()
                        self.started[index] = time.monotonic()
                        # running low: ask for more now, read the answer after this job;
                        # not when a wake-up's claim just found the queue empty
                        if self.drained:
                            self.drained = False
                        elif not self.refilling and len(self.batch) < self.low_water:
                            self.refilling = ahead = True
                        break
                    if not self.refilling:
                        self.refilling, job, ahead = True, None, True
                        break
                    if self.sent is not None:
                        takeover, self.sent, job = self.sent, None, None
                        break
                    self._wait(IDLE_BLOCK)
            if takeover is not None:
                self.finish(takeover, wait=False)
                continue
            sent: Sent | None = None
            if ahead:
                try:
                    sent = self._send_refill()
                except TROUBLE as exc:
                    self._trouble(CLAIMING, exc, pause=job is None)
                    with self.cond:
                        self.refilling = False
                        self._wake()
            if job is None:
                if sent is not None:
                    self.finish(sent, wait=True)
                continue
            if sent is not None:
                with self.cond:  # an idle thread (or the housekeeper) may read it meanwhile
                    self.sent = sent
                    self._wake(watch=True)
            self._run_claimed(index, executor, job)
            if sent is not None:
                with self.cond:
                    mine, self.sent = self.sent, None
                if mine is not None:
                    self.finish(mine, wait=False)

    def finish(self, sent: Sent, *, wait: bool) -> None:
        """Finish a refill (see :meth:`_finish_refill`); Redis trouble is backed off."""
        try:
            self._finish_refill(*sent, wait=wait)
        except TROUBLE as exc:
            self._trouble(CLAIMING, exc, pause=True)
        else:
            self.guard.outage.recovered()
            self.guard.failures.recovered(CLAIMING)
        finally:
            with self.cond:
                self.refilling = self.blocking = False
                self._wake()

    def _run_claimed(self, index: int, executor: Executor, entry: Entry) -> None:
        handle, job = entry
        self.slots.post(index, handle, self.started[index])
        try:
            outcome = executor.run_or_lost(job)
        except TROUBLE as exc:  # Redis refused to record it: its lease will lapse
            self.guard.failed("recording a job's outcome", exc)
            outcome = LOST
        self.slots.clear(index)
        with self.cond:
            self.started[index] = 0.0
            self.ran += 1
            if self.ran == self.max_jobs:  # its last: the others are handed back
                self.stopping = self.closing = True
            if isinstance(outcome, Success):  # recorded later, with its batch
                self.pending.append((handle, outcome))
                self._wake(watch=True)
                return
            self._wake()
        self.link.done([(handle, outcome)])

    def _refresh_lanes(self) -> None:
        """With ``--tags '*'``: pick up lanes of tags first seen since the last look."""
        now = time.monotonic()
        if self.all_tags and now - self.lanes_checked >= LANES_REFRESH:
            self.lanes_checked = now
            queues = [g[0] for g in self.groups]
            self.groups = every_tag_lanes(self.groups, self.store.tagged_lanes(queues))
            self.lanes = [lane for g in self.groups for lane in g]

    def _send_refill(self) -> Sent:
        """Send the pending results and a claim for the next batch in one request."""
        self._refresh_lanes()
        with self.cond:
            done, self.pending = self.pending, []
            want = max(1, self.prefetch - len(self.batch))
        try:
            refill = self.store.send_refill(
                [d.completion() for _, d in done],
                self.worker,
                self.lease_ms,
                want,
                self.order.arrange(self.groups),
            )
        except TROUBLE:
            with self.cond:  # not recorded yet: keep them for the next try
                self.pending[:0] = done
            raise
        return refill, done

    def _finish_refill(self, refill: Refill, done: list[Done], *, wait: bool) -> None:
        """Take in what a refill claimed; with nothing at all to run (``wait``), block
        until new work is announced."""
        try:
            flags, jobs = self.store.finish_refill(refill)
        except TROUBLE:
            with self.cond:  # not known to be recorded: try again (a rerun is fenced)
                self.pending[:0] = done
            raise
        # one write tells the supervisor both what finished and what we now hold
        self.report(done, flags)
        if jobs:
            self._take(jobs)
            return
        with self.cond:
            if self.closing or not wait or self.batch:
                return
            self.blocking = True
        self.block_id = self.store.connection_id()
        jobs = self.store.wait_and_claim(
            self.lanes,
            IDLE_BLOCK,
            self.worker,
            self.lease_ms,
            self.prefetch,
            self.order.arrange(self.groups),
        )
        if jobs:
            self._take(jobs, drained=len(jobs) < self.prefetch)

    def _take(self, jobs: Sequence[Claimed], *, drained: bool = False) -> None:
        """Jobs just leased: the supervisor renews them from now on; runners start them.
        ``drained``: the claim took all there was: start one before asking for more."""
        entries = self.link.claimed(jobs)
        with self.cond:
            self.drained = drained
            self.batch.extend(entries)
            # one job for one runner: it starts now, nothing is left for the housekeeper
            self._wake(watch=self.threads > 1 or len(self.batch) > 1)

    def report(self, done: Sequence[Done], flags: Sequence[bool]) -> None:
        """Log recorded completions and tell the supervisor (a refused one is lost)."""
        if done:
            self.executor.report([d for _, d in done], flags)
            outcomes = zip(done, flags, strict=True)
            self.link.done([(h, SUCCEEDED if ok else LOST) for (h, _), ok in outcomes])
