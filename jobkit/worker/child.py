"""A worker child: claims jobs in batches, runs them, records results in batches.

It never renews leases itself: the supervisor does, so a job that hogs this process
(CPU-bound, a C call holding the GIL) cannot make its own lease lapse. The child tells
the supervisor which jobs it holds over a pipe (one write per batch) and which ones it
is running in shared-memory :class:`~jobkit.worker.slot.Slots` (no syscall per job).

``threads`` runner threads run jobs; a housekeeping thread (:mod:`~jobkit.worker.keeper`)
bounds how long a result waits for its batch and hands unstarted jobs back when every
runner is stuck in a long job, so prefetch never starves a short job behind a long one.
What they share, the refill in flight included, is a :class:`~jobkit.worker.hold.Hold`:
its transitions are the only code that changes it. Each claimed job has its own lease
and token.

A runner goes round these states (:meth:`Child._run_jobs`, one block each; ``take``
decides, under the lock, and waits while there is nothing to do)::

    take --RUN (a job; enough left)-------------------> run -> report --------> take
         --RUN_AHEAD (a job; running low)--> send -> run -> report -> collect -> take
         --CLAIM (no job, no refill out)--> send -> read (none came: wait) ---> take
         --TAKE_OVER (no job; a refill parked)---------------------> read ----> take
         --EXIT (closing)

* send: the pending results and a claim for more, in one request, not waited for;
  RUN_AHEAD parks it (see :mod:`~jobkit.worker.hold`) before its job, so one round trip
  records the last jobs and claims the next while this one runs;
* run: the job, its failure recorded at once; report: a success waits in the hold for
  the next send (or the keeper's flush), anything else goes to the supervisor now;
* collect: read the parked refill, unless an idle runner or the keeper took it over;
* read: record what the refill's results became and take in the jobs it claimed; after
  a CLAIM that found none, block in Redis (BLPOP) until work is announced, the next
  claim queued behind the wait.

Should a send or a read fail (Redis away, a script refused), the results stay pending,
to go with a later batch; a job taken runs all the same, and a runner without one backs
off (see :mod:`~jobkit.outage`) before it takes again.

The hold closes, and each runner leaves at its next take (EXIT), on SIGTERM (the worker
stops, or the supervisor recycles this child: ``--max-child-age``, ``--max-memory``
between jobs) or after the last of ``--max-jobs-per-child`` jobs. The main thread then
winds down (:mod:`~jobkit.worker.handback`): it lets running jobs finish, wakes a
runner waiting for work, records the pending results and hands the unstarted jobs back,
and the child exits 0, ``RETIRED`` (its jobs all run) or ``FAILED`` (a thread died).
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
from jobkit.outage import TROUBLE, Guard
from jobkit.settings import Settings
from jobkit.worker.execute import LOST, SUCCEEDED, Executor
from jobkit.worker.handback import HandBack
from jobkit.worker.hold import (
    CLAIM,
    EXIT,
    IDLE_BLOCK,
    RUN,
    RUN_AHEAD,
    STOP_POLL,
    Hold,
    Runner,
    Sent,
)
from jobkit.worker.keeper import Keeper
from jobkit.worker.lifeline import orphaned
from jobkit.worker.link import Done, Entry, Link
from jobkit.worker.order import QueueOrder
from jobkit.worker.protocol import RETIRED
from jobkit.worker.slot import Slots

log = logging.getLogger("jobkit.worker")

LANES_REFRESH = 1.0  # seconds between looks for new tagged lanes (``--tags '*'``)
FAILED = 70  # exit code of a child one of whose threads died: the supervisor replaces it

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
        argument_limit: int | None = None,
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
        self.log_jobs = log_jobs
        self.lease_ms = int(settings.lease * 1000)
        # Redis's proto-max-bulk-len as the supervisor last read it (None: ask Redis)
        self.argument_limit = argument_limit
        # written by the SIGTERM handler and by died() (any thread), lone stores, read by
        # the main thread; the runners stop at the hold's `closing`
        self.stopping = False  # SIGTERM, or a thread of ours died
        self.failed = False  # a thread died: exit with FAILED
        self.parent = os.getppid()
        self.guard = Guard(log)  # Redis trouble: logged once per retry or kind, backed off
        self.hold = Hold(self.threads, self.prefetch, max_jobs)
        self.store: Store
        self.executor: Executor

    @property
    def batch(self) -> deque[Entry]:
        """The jobs claimed and not started (the hold's)."""
        return self.hold.batch

    def _on_term(self, signum: int, frame: types.FrameType | None) -> None:
        self.stopping = True
        self.hold.close()  # no runner takes another job (see _wind_down)

    def run(self) -> int:
        """Serve until SIGTERM; the exit code (0, or FAILED when a thread of ours died).
        The supervisor forked us with SIGTERM and SIGINT blocked: unblocked here, once
        our handlers are in place."""
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches us via the supervisor
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        self.store = connect(self.settings)
        self.executor = Executor(self.store, self.settings, log_jobs=self.log_jobs)
        # Nothing asked of Redis before the first claim, each question a connection of
        # the main thread's own: the supervisor loaded the scripts before forking us (one
        # Redis lacks all the same is loaded when refused) and passes its argument limit.
        if self.argument_limit is None:
            self.guard.call("reading Redis's argument limit", self.store.learn_argument_limit)
        else:
            self.store.adopt_argument_limit(self.argument_limit)
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
        hold = self.hold
        try:
            # the hold closes by itself after the last of --max-jobs-per-child jobs
            while not self.stopping and not hold.closing:
                if os.getppid() != self.parent:  # the lifeline's third net
                    orphaned()
                hold.last_ended.wait(STOP_POLL)
        finally:
            self._wind_down()
            stop_keeper.set()
        if self.failed:
            return FAILED
        return RETIRED if hold.max_jobs and hold.jobs_run >= hold.max_jobs else 0

    def died(self, what: str) -> None:
        """A thread of ours died: stop, so the supervisor replaces this child (and
        settles the job that thread was running), rather than keep a child that holds a
        job it will never finish."""
        log.exception("%s failed: stopping this child so it is replaced", what)
        self.failed = self.stopping = True

    # -- runner threads -----------------------------------------------------------------

    def _runner(self, index: int) -> None:
        try:
            executor = (
                self.executor
                if index == 0
                else Executor(self.store, self.settings, log_jobs=self.log_jobs)
            )
            self._run_jobs(Runner(index, executor))
        except BrokenPipeError:
            orphaned()  # the supervisor is gone
        except BaseException:
            self.died(f"runner thread {index}")
        finally:
            self.hold.left(index)

    def _trouble(self, what: str, exc: Exception, *, pause: bool) -> None:
        """A Redis call failed: logged (once per retry or kind); with ``pause``, wait."""
        delay = self.guard.failed(what, exc)
        if pause:
            time.sleep(delay)

    def _run_jobs(self, me: Runner) -> None:
        """A runner thread: the states of the module docstring, until the child closes.
        A state is the local ``step``; nothing is built per job."""
        hold, slots, executor, index = self.hold, self.slots, me.executor, me.index
        sent: Sent | None  # the refill this runner sends or reads
        while True:
            step = hold.take(me)  # take
            if step is RUN or step is RUN_AHEAD:
                self._starting(me.job[1])
            if step is RUN:
                sent = None
            elif step is RUN_AHEAD:  # send
                sent = self._send_refill(idle=False)
                if sent is not None:  # an idle runner (or the keeper) may read it meanwhile
                    hold.park(sent)
            elif step is CLAIM:  # send, read
                sent = self._send_refill(idle=True)
                if sent is not None:
                    self.finish(sent, wait=True)
                continue
            elif step is EXIT:
                return
            else:  # TAKE_OVER, read: a refill whose sender is busy in its job
                sent, me.sent = me.sent, None
                if sent is not None:
                    self.finish(sent, wait=False)
                continue
            # run
            handle, job = me.job
            slots.post(index, handle, hold.started[index])
            try:
                outcome = executor.run_or_lost(job)
            except TROUBLE as exc:  # Redis refused to record it: its lease will lapse
                self.guard.failed("recording a job's outcome", exc)
                outcome = LOST
            slots.clear(index)
            # report: a success is recorded with the next batch, the rest was already
            if hold.ended(outcome, index, handle):
                self.link.done([(handle, outcome)])
            # collect, unless another thread took the parked refill over
            if sent is not None and (sent := hold.unpark()) is not None:
                self.finish(sent, wait=False)

    def _starting(self, job: Claimed) -> None:
        """Tell Redis the attempt begins, before it does (one send, no reply read): if the
        whole worker dies now, the reaper counts the attempt (mark.lua). Sent first, so
        a refill sent ahead of the job waits behind it on this thread's connection."""
        try:
            self.store.leasing.tell_started(job.id, job.token)
        except TROUBLE as exc:  # the claim's connection will say more soon
            self.guard.failed("marking a job started", exc)

    # -- the refill: Redis calls ----------------------------------------------------------

    def _refresh_lanes(self) -> None:
        """With ``--tags '*'``: pick up lanes of tags first seen since the last look."""
        now = time.monotonic()
        if now - self.lanes_checked >= LANES_REFRESH:
            self.lanes_checked = now
            queues = [g[0] for g in self.groups]
            self.groups = every_tag_lanes(self.groups, self.store.reads.tagged_lanes(queues))
            self.lanes = [lane for g in self.groups for lane in g]

    def _send_refill(self, *, idle: bool) -> Sent | None:
        """send: the pending results and a claim for the next batch in one request. On
        Redis trouble None: the refill is given up (after a back-off when ``idle``)."""
        hold = self.hold
        done = None
        try:
            if self.all_tags:
                self._refresh_lanes()
            done = hold.results()
            refill = self.store.leasing.send_refill(
                [d.completion() for _, d in done],
                self.worker,
                self.lease_ms,
                hold.wanted(),
                self.order.arrange(self.groups),
            )
            return refill, done
        except TROUBLE as exc:
            hold.put_back(done)  # not recorded yet: kept for the next try
            self._trouble(CLAIMING, exc, pause=idle)
            hold.refilled()
            return None

    def finish(self, sent: Sent, *, wait: bool) -> None:
        """read: take in a refill's outcome (see :meth:`_finish_refill`), then there is
        none out; Redis trouble is backed off."""
        try:
            self._finish_refill(*sent, wait=wait)
        except TROUBLE as exc:
            self._trouble(CLAIMING, exc, pause=True)
        else:
            self.guard.outage.recovered()
            self.guard.failures.recovered(CLAIMING)
        finally:
            self.hold.refilled()

    def _finish_refill(self, refill: Refill, done: list[Done], *, wait: bool) -> None:
        """Take in what a refill claimed; with nothing at all to run (``wait``), block
        until new work is announced."""
        hold = self.hold
        try:
            flags, jobs = self.store.leasing.finish_refill(refill)
        except TROUBLE:
            hold.put_back(done)  # not known to be recorded: try again (a rerun is fenced)
            raise
        # one write tells the supervisor both what finished and what we now hold
        self.report(done, flags)
        if jobs:  # leased: the supervisor renews them from now on
            hold.took(self.link.claimed(jobs), drained=False)
            return
        if not wait or not hold.block():
            return
        hold.blocked_on(self.store.leasing.connection_id())
        wanted = hold.wanted()
        jobs = self.store.leasing.wait_and_claim(
            self.lanes,
            IDLE_BLOCK,
            self.worker,
            self.lease_ms,
            wanted,
            self.order.arrange(self.groups),
        )
        if jobs:  # the claim took all there was: start one before asking for more
            hold.took(self.link.claimed(jobs), drained=len(jobs) < wanted)

    def report(self, done: Sequence[Done], flags: Sequence[bool]) -> None:
        """Log recorded completions and tell the supervisor (a refused one is lost)."""
        if done:
            self.executor.report([d for _, d in done], flags)
            outcomes = zip(done, flags, strict=True)
            self.link.done([(h, SUCCEEDED if ok else LOST) for (h, _), ok in outcomes])
