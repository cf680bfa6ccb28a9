"""A worker child: claims jobs in batches, runs them, records results in batches.

It never renews leases itself: the supervisor does, so a job that hogs this process
(CPU-bound, a C call holding the GIL) cannot make its own lease lapse. The child tells
the supervisor which jobs it holds over a pipe (one write per batch) and which one it
is running in a shared-memory :class:`~jobkit.worker.slot.Slot` (no syscall per job).

Batching keeps every guarantee: each claimed job has its own lease and token, results
are recorded by the same fenced script, and a housekeeping thread bounds how long a
result waits for its batch (``FLUSH_AFTER``) and hands unstarted jobs back to the queue
when the job in front of them runs long (``RELEASE_AFTER``), so prefetch never starves
a short job behind a long one.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import types
from collections import deque
from collections.abc import Sequence

import redis
from tenacity import wait_exponential

from jobkit.connection import connect
from jobkit.keys import split_lane
from jobkit.retry import backoff
from jobkit.settings import Settings
from jobkit.store import Claimed, Store
from jobkit.worker import protocol
from jobkit.worker.execute import Executor, Success, persistently
from jobkit.worker.slot import Slot

log = logging.getLogger("jobkit.worker")

IDLE_BLOCK = 2.0  # seconds an idle child blocks on Redis before checking on its parent
FLUSH_AFTER = 0.005  # a finished job's result waits at most this long for its batch
RELEASE_AFTER = 0.1  # a job running this long sends the unstarted prefetch back
LANES_REFRESH = 1.0  # seconds between looks for new tagged lanes (``--tags '*'``)
_backoff = wait_exponential(multiplier=0.05, max=5.0)


class _Stop(Exception):
    """Raised by the SIGTERM handler to leave an idle blocking wait at once."""


class Child:
    """The execution loop of one child process."""

    def __init__(
        self,
        settings: Settings,
        worker: str,
        groups: Sequence[Sequence[str]],
        fd: int,
        slot: Slot,
        prefetch: int = 1,
        log_jobs: bool = True,
        all_tags: bool = False,
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.groups = [list(g) for g in groups]
        self.lanes = [lane for g in self.groups for lane in g]
        self.all_tags = all_tags  # serve every tagged lane of our queues, found in Redis
        self.lanes_checked = 0.0
        self.fd = fd
        self.slot = slot
        self.prefetch = max(1, prefetch)
        self.log_jobs = log_jobs
        self.lease_ms = int(settings.lease * 1000)
        self.stopping = False
        self.idle = False
        self.parent = os.getppid()
        self.lock = threading.Lock()
        self.batch: deque[Claimed] = deque()  # claimed, not started
        self.pending: list[Success] = []  # finished, result not yet recorded
        self.current_started = 0.0  # monotonic start of the running job, 0 when none
        self.store: Store
        self.executor: Executor

    def _on_term(self, signum: int, frame: types.FrameType | None) -> None:
        self.stopping = True
        if self.idle:
            raise _Stop

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches us via the supervisor
        self.store = connect(self.settings)
        self.executor = Executor(self.store, self.settings, log_jobs=self.log_jobs)
        done = threading.Event()
        keeper = threading.Thread(target=self._housekeep, args=(done,), daemon=True)
        keeper.start()
        failures = 0
        try:
            while not self.stopping and os.getppid() == self.parent:
                try:
                    self._step()
                    failures = 0
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    failures += 1
                    delay = backoff(_backoff, failures)
                    log.warning("Redis unreachable (%s); retrying in %.2fs", exc, delay)
                    self._sleep(delay)
        except _Stop:
            pass
        finally:
            done.set()
            keeper.join()
            self._wind_down()
            self.executor.close()
        return 0

    def _sleep(self, seconds: float) -> None:
        self.idle = True
        try:
            if self.stopping:
                raise _Stop
            time.sleep(seconds)
        finally:
            self.idle = False

    # -- the loop -----------------------------------------------------------------------

    def _step(self) -> None:
        with self.lock:
            job = self.batch.popleft() if self.batch else None
            if job is not None:
                self.current_started = time.monotonic()
        if job is None:
            self._refill()
            return
        self.slot.post(job.id, self.current_started)
        outcome = self.executor.run(job)
        self.slot.post("", 0.0)
        with self.lock:
            self.current_started = 0.0
            if isinstance(outcome, Success):
                self.pending.append(outcome)
                return
        protocol.send(self.fd, protocol.encode(protocol.DONE, job.id, outcome))

    def _refresh_lanes(self) -> None:
        """With ``--tags '*'``: pick up lanes of tags first seen since the last look."""
        now = time.monotonic()
        if not self.all_tags or now - self.lanes_checked < LANES_REFRESH:
            return
        self.lanes_checked = now
        tagged = self.store.tagged_lanes()
        self.groups = [
            [g[0], *sorted(lane for lane in tagged if split_lane(lane)[0] == g[0])]
            for g in self.groups
        ]
        self.lanes = [lane for g in self.groups for lane in g]

    def _refill(self) -> None:
        """Record pending results and claim the next batch in one round trip."""
        self._refresh_lanes()
        with self.lock:
            done, self.pending = self.pending, []
        flags, jobs = self.store.complete_and_claim(
            [d.completion() for d in done],
            self.worker,
            self.lease_ms,
            self.prefetch,
            self.groups,
        )
        # one write tells the supervisor both what finished and what we now hold
        self._report(
            done,
            flags,
            [
                protocol.encode(protocol.CLAIMED, j.id, j.token, j.attempts, j.timeout, j.name)
                for j in jobs
            ],
        )
        if jobs:
            with self.lock:
                self.batch.extend(jobs)
            return
        self.idle = True
        try:
            if self.stopping:
                raise _Stop
            self.store.wait_for_work(self.lanes, IDLE_BLOCK)
        finally:
            self.idle = False

    def _report(
        self, done: Sequence[Success], flags: Sequence[bool], more: Sequence[bytes] = ()
    ) -> None:
        if done:
            self.executor.report(done, flags)
        messages = [
            protocol.encode(protocol.DONE, d.job.id, "succeeded" if ok else "lost")
            for d, ok in zip(done, flags, strict=True)
        ]
        if messages or more:
            protocol.send(self.fd, *messages, *more)

    # -- housekeeping (a thread) ------------------------------------------------------------

    def _housekeep(self, done: threading.Event) -> None:
        while not done.wait(FLUSH_AFTER / 2):
            now = time.monotonic()
            flush: list[Success] = []
            release: list[Claimed] = []
            with self.lock:
                if self.pending and now - self.pending[0].finished >= FLUSH_AFTER:
                    flush, self.pending = self.pending, []
                running_long = self.current_started and now - self.current_started > RELEASE_AFTER
                if running_long and self.batch:
                    release = list(self.batch)
                    self.batch.clear()
            try:
                if flush:
                    self._report(flush, self.store.complete_many([d.completion() for d in flush]))
                if release:
                    self._release(release)
            except (redis.ConnectionError, redis.TimeoutError):
                with self.lock:  # keep them for the main loop, which rides out the outage
                    self.pending[:0] = flush
                    self.batch.extendleft(reversed(release))

    def _release(self, jobs: Sequence[Claimed]) -> None:
        for job in jobs:
            self.store.requeue(job.id, job.token, uncount=True)
        protocol.send(self.fd, *(protocol.encode(protocol.RELEASED, j.id) for j in jobs))

    def _wind_down(self) -> None:
        """On the way out: record finished results, hand back what never started."""
        with self.lock:
            done, self.pending = self.pending, []
            unstarted, self.batch = list(self.batch), deque()
        try:
            if done:
                flags = persistently(
                    lambda: self.store.complete_many([d.completion() for d in done]),
                    self.settings.lease,
                )
                self._report(done, flags)
            if unstarted:
                self._release(unstarted)
        except (redis.ConnectionError, redis.TimeoutError, BrokenPipeError):
            log.warning(
                "could not hand back %d job(s); their leases will lapse and be reaped",
                len(done) + len(unstarted),
            )


def child_main(
    settings: Settings,
    worker: str,
    groups: Sequence[Sequence[str]],
    fd: int,
    slot: Slot,
    prefetch: int,
    log_jobs: bool,
    all_tags: bool,
) -> int:
    """Entry point in a freshly forked child; returns the exit code."""
    try:
        return Child(settings, worker, groups, fd, slot, prefetch, log_jobs, all_tags).run()
    except BrokenPipeError:
        return 0  # the supervisor is gone; our leases lapse and get reaped
    except Exception:
        log.exception("worker child crashed")
        return 1
