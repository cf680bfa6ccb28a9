"""A worker child: claims jobs, runs them, tells its supervisor what it holds.

It never renews leases itself: the supervisor does, so a job that hogs this process
(CPU-bound, a C call holding the GIL) cannot make its own lease lapse.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import types
from collections.abc import Sequence

import redis

from jobkit.connection import connect
from jobkit.settings import Settings
from jobkit.store import Claimed, Store
from jobkit.worker import protocol
from jobkit.worker.execute import Executor

log = logging.getLogger("jobkit.worker")

# How long an idle child blocks on Redis before re-checking that its supervisor lives.
IDLE_BLOCK = 2.0


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
        prefetch: int = 1,
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.groups = [list(g) for g in groups]
        self.lanes = [lane for g in self.groups for lane in g]
        self.fd = fd
        self.prefetch = max(1, prefetch)
        self.stopping = False
        self.idle = False
        self.parent = os.getppid()

    def _on_term(self, signum: int, frame: types.FrameType | None) -> None:
        self.stopping = True
        if self.idle:
            raise _Stop

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches us via the supervisor
        store = connect(self.settings)
        executor = Executor(store, self.settings)
        backoff = 0.05
        try:
            while not self.stopping and os.getppid() == self.parent:
                try:
                    self._step(store, executor)
                    backoff = 0.05
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    log.warning("Redis unreachable (%s); retrying in %.2fs", exc, backoff)
                    self._sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        except _Stop:
            pass
        finally:
            executor.close()
        return 0

    def _sleep(self, seconds: float) -> None:
        self.idle = True
        try:
            if self.stopping:
                raise _Stop
            time.sleep(seconds)
        finally:
            self.idle = False

    def _step(self, store: Store, executor: Executor) -> None:
        lease_ms = int(self.settings.lease * 1000)
        jobs = store.claim(self.worker, lease_ms, self.prefetch, self.groups)
        if not jobs:
            self.idle = True
            try:
                if self.stopping:
                    raise _Stop
                store.wait_for_work(self.lanes, IDLE_BLOCK)
            finally:
                self.idle = False
            return
        protocol.send(
            self.fd,
            *(
                protocol.encode(protocol.CLAIMED, j.id, j.token, j.attempts, j.timeout, j.name)
                for j in jobs
            ),
        )
        for index, job in enumerate(jobs):
            if self.stopping:
                self._release(store, jobs[index:])
                return
            protocol.send(self.fd, protocol.encode(protocol.STARTED, job.id))
            outcome = executor.run(job)
            protocol.send(self.fd, protocol.encode(protocol.DONE, job.id, outcome))

    def _release(self, store: Store, jobs: Sequence[Claimed]) -> None:
        for job in jobs:
            store.requeue(job.id, job.token, uncount=True)
            protocol.send(self.fd, protocol.encode(protocol.RELEASED, job.id))


def child_main(
    settings: Settings, worker: str, groups: Sequence[Sequence[str]], fd: int, prefetch: int
) -> int:
    """Entry point in a freshly forked child; returns the exit code."""
    try:
        return Child(settings, worker, groups, fd, prefetch).run()
    except BrokenPipeError:
        return 0  # the supervisor is gone; our leases lapse and get reaped
    except Exception:
        log.exception("worker child crashed")
        return 1
