"""What a worker child's threads share, and the transitions that are the only code to
change it.

A child's runner threads, its housekeeper (:mod:`~jobkit.worker.keeper`) and, on the way
out, its main thread (:mod:`~jobkit.worker.handback`) share the jobs it claimed ahead,
the results it has not recorded yet, when each runner started its job, and the one
refill (pending results recorded and more jobs claimed, in one request) in flight.
:class:`Hold` owns all of it under one lock, ``cond``. Its fields are written only by
its methods, each a transition named for what happened; the others read them under
``cond`` (the exceptions are said where they are).

The refill in flight goes through states of its own (:class:`Refilling`)::

    NONE    --take: a runner has no job, or is running low-->        OUT
    OUT     --park: sent; its sender runs a job meanwhile-->         PARKED
    PARKED  --unpark: its sender after the job, an idle runner
              (take), or the keeper when every runner is stuck-->    OUT
    OUT     --block: nothing came and nothing to run-->              WAITING
    OUT, WAITING --refilled: read (or it failed)-->                  NONE

There is one at a time: whoever moves it out of NONE, and whoever unparks it, sends or
reads it for all the runners.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, TypeGuard

from jobkit.backend.store import Refill
from jobkit.worker.execute import Success
from jobkit.worker.link import Done, Entry

if TYPE_CHECKING:
    from jobkit.worker.execute import Executor

Sent = tuple[Refill, list[Done]]  # a refill request, and the results it records

IDLE_BLOCK = 2.0  # seconds an idle child blocks on Redis before checking on its parent
STOP_POLL = 0.1  # seconds between checks for SIGTERM and a vanished supervisor


class Refilling(Enum):
    """Where the child's refill is (see the module docstring)."""

    NONE = "none"  # none out: the next runner without a job, or running low, sends one
    OUT = "out"  # a thread sends it, reads its answer, or backs off its failure
    PARKED = "parked"  # sent; its sender runs a job: anyone may read it (``parked``)
    WAITING = "waiting"  # read, nothing came: its reader blocks in Redis for work


class Step(Enum):
    """What :meth:`Hold.take` tells a runner to do next (see :mod:`.child`)."""

    RUN = "run"  # run the job taken
    RUN_AHEAD = "run ahead"  # send a refill, run the job taken meanwhile, read the refill
    CLAIM = "claim"  # no job, no refill out: send one, read it, wait for work if none came
    TAKE_OVER = "take over"  # no job: read the refill a runner parked before a long job
    EXIT = "exit"  # the child is closing: no runner takes another job


NONE, OUT, PARKED, WAITING = Refilling  # module names: read on every job
RUN, RUN_AHEAD, CLAIM, TAKE_OVER, EXIT = Step


class Runner:
    """One runner thread's own state. Written by that thread alone (:meth:`Hold.take`
    writes it on the thread's behalf, in its call), so it is read without the lock."""

    __slots__ = ("executor", "index", "job", "sent")

    job: Entry  # the job take gave it (RUN, RUN_AHEAD); set before it is read

    def __init__(self, index: int, executor: Executor) -> None:
        self.index = index
        self.executor = executor
        self.sent: Sent | None = None  # the parked refill take gave it (TAKE_OVER)


class Hold:
    """The state a child's threads share (see the module docstring), under ``cond``.

    No code outside this class assigns these fields. Which transitions write each, and
    from which thread (all under ``cond`` unless said):

    ======================  ============================================================
    field                   written by
    ======================  ============================================================
    ``batch``               take (a runner starts a job), took (a refill's reader),
                            unstarted (the keeper; the main thread, winding down),
                            put_back (whoever Redis failed)
    ``pending``             ended (a runner's success), results (a refill's sender; the
                            wind-down), results_due (the keeper), put_back
    ``started[i]``          runner ``i`` alone: take, ended, left
    ``refill``, ``parked``  take, park, unpark, block, refilled: by the thread whose
                            turn the refill is (a state says whose), or any, for the
                            move out of NONE or PARKED, the first under the lock
    ``drained``             took (a woken reader's claim), take (the next job clears it)
    ``block_id``            blocked_on: the one reader in WAITING, without the lock,
                            just after block (the wind-down, reading it in WAITING, may
                            see the last reader's id meanwhile: an unblock ends a wait
                            only as its timeout would)
    ``closing``             close (SIGTERM: a lone store from the signal handler, no
                            lock; the wind-down), ended (the last of ``max_jobs`` jobs)
    ``jobs_run``            ended (runners)
    ``last_ended``          ended (the runner ending the last of ``max_jobs`` jobs; an
                            Event, with a lock of its own)
    ``waiting``             wait (any thread, around its wait)
    ``keeper_asleep``       nothing_to_watch (the keeper), a runner's kick (_wake)
    ``kick``                set by a runner's kick, cleared by the keeper (an Event,
                            with a lock of its own)
    ======================  ============================================================
    """

    def __init__(self, threads: int, prefetch: int, max_jobs: int) -> None:
        self.threads = threads
        # with fewer unstarted jobs than this, a runner asks for more before its next job
        # (not with prefetch 1: then a child holds one job at a time)
        self.low_water = prefetch // 2 if prefetch > 1 else 0
        self.prefetch = prefetch
        self.max_jobs = max_jobs  # the child retires after this many jobs (0: never)
        # set once the last of them ended: the child's main thread, waiting on it, winds
        # down at once (a SIGTERM's close is a lone store, seen at its next look)
        self.last_ended = threading.Event()
        self.cond = threading.Condition()
        self.batch: deque[Entry] = deque()  # claimed, not started
        self.pending: list[Done] = []  # finished, result not yet recorded
        self.started = [0.0] * threads  # monotonic start per runner thread, 0 idle
        self.refill = NONE
        self.parked: Sent | None = None  # the refill sent, while PARKED
        self.drained = False  # a woken reader's claim emptied the queue: no refill yet
        self.block_id = 0  # Redis's id for the connection of the reader in WAITING
        self.closing = False  # no runner takes another job
        self.jobs_run = 0
        self.waiting = 0  # threads in cond.wait(): only then does a change notify
        self.keeper_asleep = False  # the housekeeper waits for `kick`: only then is it set
        self.kick = threading.Event()  # wakes the housekeeper when there is something to watch

    def _wake(self, *, watch: bool = False) -> None:
        """With ``cond`` held: the state changed (with ``watch``: in a way the housekeeper
        watches), so only threads that wait are woken. Inline where it runs per job."""
        if self.waiting:
            self.cond.notify_all()
        if watch and self.keeper_asleep:
            self.keeper_asleep = False
            self.kick.set()

    def wait(self, timeout: float) -> None:
        """With ``cond`` held: wait for a change, at most ``timeout`` seconds."""
        self.waiting += 1
        try:
            self.cond.wait(timeout)
        finally:
            self.waiting -= 1

    # -- a runner's job -----------------------------------------------------------------

    def take(self, me: Runner) -> Step:
        """What runner ``me`` does next; waits while there is nothing for it to do. The
        job to run goes to ``me.job``, a parked refill to read to ``me.sent``."""
        with self.cond:
            while True:
                if self.closing:
                    return EXIT
                if self.batch:
                    me.job = self.batch.popleft()
                    self.started[me.index] = time.monotonic()
                    # running low: ask for more now, read the answer after this job;
                    # not when a wake-up's claim just found the queue empty
                    if self.drained:
                        self.drained = False
                    elif self.refill is NONE and len(self.batch) < self.low_water:
                        self.refill = OUT
                        return RUN_AHEAD
                    return RUN
                if self.refill is NONE:
                    self.refill = OUT
                    return CLAIM
                if self.refill is PARKED:
                    me.sent, self.parked, self.refill = self.parked, None, OUT
                    return TAKE_OVER
                self.wait(IDLE_BLOCK)

    def ended(self, outcome: Success | str, index: int, handle: int) -> TypeGuard[str]:
        """Runner ``index`` ended the job of ``handle``. A success waits here for its
        batch (the next refill, or the keeper's flush): False. Any other outcome (a
        word) is recorded already, and the supervisor is to be told now: True."""
        with self.cond:
            self.started[index] = 0.0
            self.jobs_run += 1
            if self.jobs_run == self.max_jobs:  # its last: the others are handed back
                self.closing = True
                self.last_ended.set()
            if self.waiting:  # _wake, inline: this runs for every job
                self.cond.notify_all()
            if isinstance(outcome, Success):
                self.pending.append((handle, outcome))
                if self.keeper_asleep:
                    self.keeper_asleep = False
                    self.kick.set()
                return False
            return True

    def left(self, index: int) -> None:
        """Runner ``index``'s thread ended (the child closes, or the thread died)."""
        with self.cond:
            self.started[index] = 0.0
            self._wake()

    def close(self) -> None:
        """No runner takes another job (SIGTERM, the wind-down). A lone store, so a
        signal handler may call it; a runner sees it when it next takes a job."""
        self.closing = True

    # -- the refill ---------------------------------------------------------------------

    def wanted(self) -> int:
        """How many jobs a claim asks for: enough to hold ``prefetch`` unstarted, and no
        more than the child has left to run before it retires (``max_jobs``): those it
        would only hand back. At least one. A glance, no lock: a guess anyway."""
        want = self.prefetch - len(self.batch)
        if self.max_jobs:
            running = sum(1 for started in self.started if started)
            want = min(want, self.max_jobs - self.jobs_run - running - len(self.batch))
        return max(1, want)

    def results(self) -> list[Done]:
        """The results waiting for a batch, now the caller's to record (a refill's
        sender, the wind-down)."""
        with self.cond:
            done, self.pending = self.pending, []
        return done

    def park(self, sent: Sent) -> None:
        """OUT -> PARKED: the refill is sent and its sender runs a job; an idle runner
        (or the keeper) may read it meanwhile."""
        with self.cond:
            self.parked, self.refill = sent, PARKED
            if self.waiting:  # _wake, inline: once per refill sent ahead
                self.cond.notify_all()
            if self.keeper_asleep:
                self.keeper_asleep = False
                self.kick.set()

    def unpark(self) -> Sent | None:
        """PARKED -> OUT: the parked refill, now the caller's to read; None when no
        refill is parked (another thread took it)."""
        with self.cond:
            if self.refill is not PARKED:
                return None
            sent, self.parked, self.refill = self.parked, None, OUT
        return sent

    def took(self, entries: list[Entry], *, drained: bool) -> None:
        """Jobs a refill (or a wait for work) claimed, for runners to start. ``drained``:
        the claim took all there was, so a runner starts one before asking for more."""
        with self.cond:
            self.drained = drained
            self.batch.extend(entries)
            # _wake, inline (once per claim, with prefetch 1 once per job); one job for
            # one runner starts now: nothing is left for the housekeeper to watch
            if self.waiting:
                self.cond.notify_all()
            if self.keeper_asleep and (self.threads > 1 or len(self.batch) > 1):
                self.keeper_asleep = False
                self.kick.set()

    def block(self) -> bool:
        """OUT -> WAITING: nothing came, and nothing is left to run, so the reader waits
        in Redis for work. False (and no wait) when jobs came meanwhile, or closing."""
        with self.cond:
            if self.closing or self.batch:
                return False
            self.refill = WAITING
            return True

    def blocked_on(self, connection_id: int) -> None:
        """The reader in WAITING blocks on this connection: the wind-down unblocks it."""
        self.block_id = connection_id

    def refilled(self) -> None:
        """OUT or WAITING -> NONE: the refill was read, or given up on Redis trouble."""
        with self.cond:
            self.refill = NONE
            if self.waiting:  # _wake, inline: once per refill, with prefetch 1 per job
                self.cond.notify_all()

    def put_back(
        self, done: Sequence[Done] | None = None, unstarted: Sequence[Entry] | None = None
    ) -> None:
        """What Redis did not take, on trouble: results to record with a later batch,
        jobs to start after all, in front (they came first)."""
        with self.cond:
            if done:
                self.pending[:0] = done
            if unstarted:
                self.batch.extendleft(reversed(unstarted))

    # -- the housekeeper ----------------------------------------------------------------

    def nothing_to_watch(self) -> bool:
        """Whether there is nothing for the housekeeper to flush, hand back or read; then
        it sleeps until kicked (runners kick it only while it sleeps)."""
        with self.cond:
            idle = not self.pending and not self.batch and self.refill is not PARKED
            self.keeper_asleep = idle
        return idle

    def results_due(self, now: float, after: float) -> list[Done]:
        """The pending results, if the oldest has waited ``after`` seconds for its batch
        (now the caller's to record); else none."""
        with self.cond:
            if self.pending and now - self.pending[0][1].finished >= after:
                done, self.pending = self.pending, []
                return done
        return []

    def stuck(self, now: float, after: float) -> bool:
        """Whether every runner has run its job for over ``after`` seconds."""
        with self.cond:
            busy_since = [t for t in self.started if t]
            return len(busy_since) == self.threads and now - max(busy_since) > after

    def unstarted(self) -> list[Entry]:
        """Every job claimed and not started, now the caller's to give back."""
        with self.cond:
            entries = list(self.batch)
            self.batch.clear()
        return entries
