"""The `jobkit scheduler` process: promotes due delayed jobs and enqueues cron slots.

Run as many as you like. They need no leader: every cron slot is enqueued by one Lua
script that also moves the schedule's cursor, so of several schedulers racing for a slot
exactly one wins, and a slot at or below the cursor is never enqueued again. Promotion of
delayed jobs is idempotent. A lease would only save the losers one script call per slot,
and would add its expiry time to every failover, so there is none.

The process sleeps until the earliest due time it knows of (next cron slot, head of the
``scheduled`` set). Dispatching a delayed job due earlier than every other publishes its
due time on ``sched:wake``, which shortens the sleep of every scheduler at once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
import types
from collections.abc import Sequence
from datetime import datetime

from jobkit.backend.cron import FireResult, ScheduleStore, SlotOutcome, WakeListener
from jobkit.backend.store import Store
from jobkit.backend.transport import RedisError
from jobkit.cron import BoundSchedule, Plan, plan
from jobkit.models import NewJob
from jobkit.outage import Guard

log = logging.getLogger("jobkit.scheduler")

# Re-plan at least this often even if nothing woke us: covers wake-ups that cannot arrive
# (retry back-offs are added to `scheduled` by workers without publishing; a pub/sub
# message sent while our connection was down). Not the timing mechanism.
MAX_SLEEP = 5.0
PROMOTE_LIMIT = 500
QUEUES_REFRESH = 5.0  # seconds between looks at the queue registry
SCHEDULING = "promoting and firing schedules"


class _Stop(Exception):
    """Raised by the signal handler to leave an idle wait at once."""


class Scheduler:
    """One `jobkit scheduler` process (also usable in-process: ``step()`` and ``wait()``)."""

    def __init__(self, store: Store, schedules: Sequence[BoundSchedule]) -> None:
        self.store = store
        self.sched = ScheduleStore(store)
        self.schedules = list(schedules)
        # next slot per schedule, epoch seconds by Redis time; 0 = plan at the first step
        self.next_at: dict[str, float] = {b.key: 0.0 for b in self.schedules}
        self.next_scheduled: float | None = None  # head of `scheduled`, Redis time
        self.offset = 0.0  # Redis time minus local time.time()
        self.stopping = False
        self._idle = False
        self._synced: set[str] = set()
        self._wake: WakeListener | None = None
        self._trouble = Guard(log)
        # the queues whose delayed jobs we promote: the registry's, looked up again now
        # and then (a queue first dispatched to later appears), and our schedules'
        self._queues: list[str] = []
        self._queues_read = -QUEUES_REFRESH

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        """Loop until SIGTERM or SIGINT; returns the exit code (0)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for b in self.schedules:
            log.info("schedule %s: %s -> %s", b.key, b.cron.describe(), b.job.name)
        log.info("scheduler started: %d schedule(s), promoting delayed jobs", len(self.schedules))
        try:
            while not self.stopping:
                self._cycle()
        except _Stop:
            pass
        finally:
            self._close_wake()
        log.info("scheduler stopped")
        return 0

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        if not self.stopping:
            log.info("%s received: stopping", signal.Signals(signum).name)
        self.stopping = True
        if self._idle:
            raise _Stop  # in a socket wait: no Redis command is half done

    def _cycle(self) -> None:
        try:
            if self._wake is None:
                self._wake = WakeListener(self.store)  # before planning: no wake-up lost
            delay = self.step()
        except RedisError as exc:  # an outage, or Redis refusing writes (OOM, ...)
            # one line per retry with back-off, no traceback (see jobkit.outage)
            self._close_wake()
            self._sleep(self._trouble.failed(SCHEDULING, exc))
            return
        self._trouble.outage.recovered()
        self._trouble.failures.recovered(SCHEDULING)
        try:
            self.wait(delay)
        except RedisError as exc:  # the wake-up channel broke: plan again at once
            self._close_wake()
            self._trouble.failed(SCHEDULING, exc)

    def _close_wake(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None:
            with contextlib.suppress(RedisError):
                wake.close()

    def _sleep(self, seconds: float) -> None:
        self._idle = True
        try:
            if self.stopping:
                raise _Stop
            time.sleep(seconds)
        finally:
            self._idle = False

    # -- one round ------------------------------------------------------------------------

    def forget_queues(self) -> None:
        """Read the queue registry again at the next step (an in-process scheduler whose
        clock may stand still: the testing mode)."""
        self._queues_read = -QUEUES_REFRESH

    def redis_now(self) -> float:
        """Redis time estimated from the local clock and the last measured offset."""
        return time.time() + self.offset

    def step(self) -> float:
        """Promote due delayed jobs, fire due cron slots; returns seconds until the next."""
        if time.monotonic() - self._queues_read >= QUEUES_REFRESH:
            own = {b.job.queue for b in self.schedules}
            self.store.register_queues(own)
            self._queues = sorted(own | set(self.store.reads.queues()))
            self._queues_read = time.monotonic()
        before = time.time()
        moved, wait_ms, now = self.sched.promote_and_time(self._queues, PROMOTE_LIMIT)
        self.offset = now - (before + time.time()) / 2
        if moved:
            log.debug("promoted %d delayed job(s)", moved)
        self.next_scheduled = None if wait_ms < 0 else now + wait_ms / 1000
        due = [b for b in self.schedules if self.next_at[b.key] <= now]
        if due:
            self._fire(due, now)
        return self._until_next()

    def _until_next(self) -> float:
        targets = list(self.next_at.values())
        if self.next_scheduled is not None:
            targets.append(self.next_scheduled)
        if not targets:
            return MAX_SLEEP
        return max(0.0, min(MAX_SLEEP, min(targets) - self.redis_now()))

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, cut short when a delayed job due earlier is announced."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._wake is None:
                return
            self._idle = True
            try:
                due_ms = self._wake.wait(remaining)
            finally:
                self._idle = False
            new = self._wake.queues.difference(self._queues)
            if new:  # a queue first heard of: promote it from now on
                self._queues = sorted({*self._queues, *new})
            if due_ms is not None:
                due = due_ms / 1000
                if self.next_scheduled is None or due < self.next_scheduled:
                    self.next_scheduled = due
                deadline = min(deadline, time.monotonic() + due - self.redis_now())

    def _fire(self, due: Sequence[BoundSchedule], now: float) -> None:
        cursors = self.sched.cursors(due)
        work: list[tuple[BoundSchedule, NewJob, Plan]] = []
        for b in due:
            p = plan(b.cron, cursors[b.key], now)
            self.next_at[b.key] = p.next
            if not p.fire and not p.skip_to and b.key in self._synced:
                continue  # another scheduler handled the slot; nothing to record
            # the dispatch path builds the job (params validated, lane, ttl), per schedule;
            # its random id goes unused: each slot's job gets its own (BoundSchedule.job_id)
            job = b.job.new_job(dict(b.cron.params))
            work.append((b, job, p))
        if not work:
            return
        # one round trip for all schedules due together (every hourly job fires at :00)
        for (b, _, p), (advanced, results) in zip(work, self.sched.fire_many(work), strict=True):
            self._synced.add(b.key)
            if advanced and p.missed:
                log.warning(
                    "schedule %s: %d slot(s) missed by more than %gs not enqueued (misfire=%s)",
                    b.key, p.missed, b.cron.grace, b.cron.misfire,
                )  # fmt: skip
            for r in results:
                self._report(b, r, now)

    def _report(self, b: BoundSchedule, r: FireResult, now: float) -> None:
        when = datetime.fromtimestamp(r.slot, b.cron.zone).isoformat()
        if r.code is SlotOutcome.FIRED:
            late = now - r.slot
            kind = "catch-up " if late > b.cron.grace else ""
            log.info("schedule %s: fired %sslot %s as %s", b.key, kind, when, r.job_id)
        elif r.code is SlotOutcome.PAUSED:  # only the scheduler that moved the cursor hears this
            log.info("schedule %s: paused, slot %s skipped", b.key, when)
        elif r.code is SlotOutcome.HANDLED:
            log.debug(
                "schedule %s: slot %s already handled (%s)",
                b.key, when, r.detail or "no job: expired, or skipped",
            )  # fmt: skip
        else:  # Redis time is behind ours (failover to a host with another clock): retry
            self.next_at[b.key] = min(self.next_at[b.key], float(r.slot))
            log.warning(
                "schedule %s: slot %s not due yet by Redis time (%s ms)", b.key, when, r.detail
            )
