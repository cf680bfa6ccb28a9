"""How long the system takes to recover from each fault, timed by one thread.

- A *canary* follows every fault: a job dispatched straight to redis-server on a queue the
  workers check first; the time from the fault until it succeeded is how long until jobs
  flow again (after a Redis restart that includes the restart: a dispatch Redis refuses
  is tried again).
- A kill also times how long until every job its victim held is released (requeued,
  reaped or finished): after a whole supervisor dies that is its lease running out.

One thread and one connection for all of it: a thread per canary would open a
connection each (jobkit's direct connections are per thread).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from jobkit import Status
from jobkit.backend.keys import Keys
from jobkit.backend.store import Store
from stress.jobs import Book, Canary
from stress.shards import connect, shards

if TYPE_CHECKING:
    from stress.faults import FaultEvent

log = logging.getLogger("stress")

PATIENCE = 90.0  # a fault not recovered from within this is reported as not recovered
CANARY_SEQ = 10_000_000  # canaries' seq numbers start here, apart from the plan's
TICK = 0.02


@dataclass
class _Watch:
    event: FaultEvent
    started: float
    held: dict[str, str]  # job id -> lease token, for the jobs a killed process held
    canary: str | None = None
    canary_done: bool = False
    refused: list[str] = field(default_factory=list)


class Recovery:
    """Times canaries and released jobs for every fault it is asked to watch."""

    def __init__(self, url: str, book: Book) -> None:
        self.direct = connect(url, socket_timeout=2, socket_connect_timeout=2)
        self.store = Store(connect(url, socket_timeout=2, socket_connect_timeout=2))
        self.keys = Keys()
        self.book = book
        self.canaries: list[str] = []  # ids jobkit accepted
        self.refusals = 0  # canary dispatches refused (Redis down or loading)
        self._watches: list[_Watch] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="recovery", daemon=True)
        self._thread.start()

    def watch(self, event: FaultEvent, held: dict[str, str]) -> None:
        event.held = len(held)
        with self._lock:
            self._watches.append(_Watch(event, time.monotonic(), dict(held)))

    def finish(self, timeout: float) -> None:
        """Wait for the watches still open (up to ``timeout``), then stop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._watches:
                    break
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(5)

    # -- what a killed process held ----------------------------------------------------------

    def held_by_pid(self, pid: int) -> dict[str, str]:
        """The job a worker child runs now, with its lease token (its bookkeeping names
        it in the job's shard: each shard is asked)."""
        held = {}
        try:
            pipe = self.direct.pipeline(transaction=False)
            for shard in shards(self.direct):
                pipe.get(self.book.pid(pid, shard))
            for job_id in [str(i) for i in pipe.execute() if i]:
                status, lease = self.direct.hmget(self.keys.job(job_id), "status", "lease")
                if status == Status.RUNNING.value:
                    held[job_id] = str(lease or "")
        except redis.RedisError:
            return {}
        return held

    def held_by_worker(self, name: str) -> dict[str, str]:
        """Running jobs a supervisor's children hold, with their lease tokens."""
        try:
            ids = [
                str(i) for s in shards(self.direct) for i in self.direct.zrange(s.running, 0, -1)
            ]
            pipe = self.direct.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(self.keys.job(job_id), "worker", "lease")
            rows = pipe.execute()
        except redis.RedisError:
            return {}
        pairs = zip(ids, rows, strict=True)
        return {job_id: lease or "" for job_id, (worker, lease) in pairs if worker == name}

    # -- the thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                watches = list(self._watches)
            for w in watches:
                with contextlib.suppress(redis.RedisError):  # down: the next tick tries again
                    self._step(w)
                if self._done(w):
                    with self._lock:
                        self._watches.remove(w)
            time.sleep(TICK)

    def _done(self, w: _Watch) -> bool:
        if time.monotonic() - w.started > PATIENCE:
            return True
        return w.canary_done and not w.held

    def _step(self, w: _Watch) -> None:
        now = time.monotonic()
        if w.canary is None:
            self._dispatch(w)
        elif not w.canary_done:
            status = self.direct.hget(self.keys.job(w.canary), "status")
            if status == Status.SUCCEEDED.value:
                w.event.recovery = round(now - w.started, 3)
                w.canary_done = True
            elif status in (Status.DEAD.value, Status.CANCELLED.value):
                w.canary_done = True  # never recovered: left as None
        if w.held:
            pipe = self.direct.pipeline(transaction=False)
            for job_id in w.held:
                pipe.hmget(self.keys.job(job_id), "status", "lease")
            for (job_id, lease), (status, current) in zip(
                list(w.held.items()), pipe.execute(), strict=True
            ):
                if status != Status.RUNNING.value or (current or "") != lease:
                    del w.held[job_id]
            if not w.held:
                w.event.released = round(time.monotonic() - w.started, 3)

    def _dispatch(self, w: _Watch) -> None:
        seq = CANARY_SEQ + len(self.canaries) + self.refusals
        try:
            w.canary = Canary.dispatch(store=self.store, seq=seq).id
        except redis.RedisError as exc:  # not accepted: Redis restarting
            self.refusals += 1
            if self.refusals <= 3:
                log.info("canary dispatch refused (%s: %s); retrying", type(exc).__name__, exc)
            return
        self.canaries.append(w.canary)
