"""Testing mode: a user's jobs run in their tests without Redis, a worker or a sleep.

::

    from jobkit.testing import JobkitTest

    def test_welcome_mail_is_retried() -> None:
        with JobkitTest() as jt:
            job = send_welcome(42)
            jt.run_until_idle()                  # attempt 1 fails, a retry is due later
            assert job.status is jobkit.Status.RETRYING
            jt.advance(minutes=5)                # the back-off has passed
            jt.run_until_idle()
            assert job.result() == "sent"

or with the pytest fixture ``jobkit_test`` (the plugin comes with jobkit).

What runs is jobkit itself, not an imitation of it: the same Lua scripts, on fakeredis
(through lupa), and the same code a worker child runs a job with (validation, the retry
policy, dead letters, results, events), in this process. The clock is freezegun's,
started at ``start`` and moved only by :meth:`JobkitTest.advance`: delays, retry
back-offs, lease expiry and cron slots come due as it passes them, the scheduler firing
each slot at its own time. Other job queues' test modes run the function at once
("eager" in Celery, "immediate" in Huey, RQ's ``is_async=False``) and skip the queue:
delays, retries and schedules are then not tested at all.

Inside a test that has its own ``freeze_time``, make the JobkitTest inside it: its
clock starts from the frozen time. ``JobHandle.result(timeout)`` waits on the real
clock, so a job not yet run times out instead of hanging the test.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import fakeredis
import orjson
from freezegun import freeze_time

from jobkit import connection, registry
from jobkit.app import Queue
from jobkit.backend.keys import every_tag_lanes
from jobkit.backend.store import Store
from jobkit.cron import bind_schedules
from jobkit.job import BaseJob
from jobkit.models import JobRecord
from jobkit.ops.jobs import list_page
from jobkit.ops.listing import JobQuery
from jobkit.scheduler import Scheduler
from jobkit.settings import load_settings
from jobkit.status import Status
from jobkit.tasks import Task
from jobkit.worker.execute import Executor, Success

__all__ = ["Dispatched", "JobkitTest", "Ran"]

WORKER = "testing"  # the worker name jobs run under
_CLAIM = 100  # jobs leased per claim
_PAGE = 500


class Dispatched(NamedTuple):
    """A job as :meth:`JobkitTest.dispatched` lists it."""

    id: str
    name: str
    params: dict[str, Any]
    status: Status
    record: JobRecord


class Ran(NamedTuple):
    """What :meth:`JobkitTest.run_until_idle` did: attempts by how they ended."""

    succeeded: int = 0
    retrying: int = 0
    dead: int = 0
    lost: int = 0

    @property
    def total(self) -> int:
        return self.succeeded + self.retrying + self.dead + self.lost


class JobkitTest:
    """An in-memory Redis running jobkit's scripts, a test's clock, and an in-process
    worker (see the module doc). ``start``: the clock's first reading (default: now);
    ``queues``: :class:`jobkit.Queue` objects to send here too (the default connection
    always is); ``schedules``: the job classes or tasks whose cron schedules fire (default:
    every one imported, as ``jobkit scheduler`` fires them; ``()``: none); other keywords
    are settings (``max_crashes=...``)."""

    def __init__(
        self,
        *,
        start: datetime | str | None = None,
        queues: Iterable[Queue] = (),
        schedules: Iterable[type[BaseJob[Any]] | Task[Any, Any]] | None = None,
        **settings: Any,
    ) -> None:
        settings.setdefault("redis_url", "redis://jobkit-testing.invalid:6379/0")
        self.settings = load_settings(**settings)
        self.server = fakeredis.FakeServer()
        self.redis = fakeredis.FakeRedis(server=self.server, decode_responses=True)
        self.store = Store(self.redis, self.settings.prefix)
        self.store.settings = self.settings
        self._start = start
        self._queues = list(queues)
        self._schedules = None if schedules is None else [
            s.job if isinstance(s, Task) else s for s in schedules
        ]  # fmt: skip
        self._saved: list[tuple[Queue, Store | None]] = []
        self._default: Any = None
        self._freezer: Any = None
        self.clock: Any = None  # freezegun's FrozenDateTimeFactory, while started
        self.executor = Executor(self.store, self.settings)
        self.scheduler: Scheduler | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> JobkitTest:
        """Freeze the clock and make this the default connection (and the queues')."""
        begin = self._start
        if begin is None:  # now, on a whole millisecond: Redis's clock (TIME) counts in them
            now = datetime.now(timezone.utc)
            begin = now.replace(microsecond=now.microsecond // 1000 * 1000)
        # the handle's waits run on the real clock: a job not run times out, never hangs
        self._freezer = freeze_time(begin, tick=False, ignore=["jobkit.handle"])
        self.clock = self._freezer.start()
        self._default = connection.replace_default(self.store, self.settings)
        for q in self._queues:
            self._saved.append((q, q.use_store(self.store)))
        return self

    def stop(self) -> None:
        """Put the default connection, the queues' and the clock back."""
        for q, store in reversed(self._saved):
            q.use_store(store)
        self._saved.clear()
        if self._default is not None:
            connection.replace_default(*self._default)
            self._default = None
        if self._freezer is not None:
            self._freezer.stop()
            self._freezer = self.clock = None
        self.executor.close()

    def __enter__(self) -> JobkitTest:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:  # fmt: skip
        self.stop()

    # -- time ------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The test's clock (UTC)."""
        return datetime.now(timezone.utc)

    def advance(self, delta: timedelta | float | None = None, **units: float) -> None:
        """Move the clock by ``delta`` (seconds or a timedelta) or by ``timedelta``'s
        keywords (``minutes=5``). The scheduler acts at each due time on the way:
        delayed jobs and retries are queued, every cron slot passed is enqueued at its
        own time. Jobs are not run: :meth:`run_until_idle` runs them."""
        if self.clock is None:
            raise RuntimeError("JobkitTest is not started: use it as a context manager")
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta or 0)
        target = self.now() + step + timedelta(**units)
        sched = self._scheduler()
        while True:
            sched.step()
            due = [at for at in (*sched.next_at.values(), sched.next_scheduled) if at]
            upcoming = min(due, default=None)
            if upcoming is None or upcoming > target.timestamp():
                break
            self.clock.move_to(datetime.fromtimestamp(upcoming, timezone.utc))
        self.clock.move_to(target)
        sched.step()

    def _scheduler(self) -> Scheduler:
        if self.scheduler is None:
            classes = self._schedules
            if classes is None:
                classes = list(registry.registered().values())
            schedules = [b for cls in classes for b in bind_schedules(cls)]
            self.scheduler = Scheduler(self.store, schedules)
        self.scheduler.forget_queues()  # a queue first dispatched to since the last step
        return self.scheduler

    # -- running ---------------------------------------------------------------------------

    def run_until_idle(self, *, limit: int = 10_000) -> Ran:
        """Run every job that is due, as a worker would, until none is (jobs the runs
        dispatch included; retries and delayed jobs only once :meth:`advance` brings
        them due). ``limit``: attempts at most (a job that dispatches itself forever
        stops there). Returns the attempts by outcome."""
        counts = dict.fromkeys(Ran._fields, 0)
        while sum(counts.values()) < limit:
            self._scheduler().step()
            queues = self.store.reads.queues()
            self.store.leasing.reap(self.settings.max_crashes, queues)
            self.store.flows.deliver(queues, WORKER)  # to jobs waiting in other queues
            groups = every_tag_lanes([[q] for q in queues], self.store.reads.tagged_lanes(queues))
            want = min(_CLAIM, limit - sum(counts.values()))
            jobs = self.store.leasing.claim(WORKER, int(self.settings.lease * 1000), want, groups)
            if not jobs:
                break
            for job in jobs:
                outcome = self.executor.run(job)
                if isinstance(outcome, Success):
                    (ok,) = self.store.leasing.complete_many([outcome.completion()])
                    self.executor.report([outcome], [ok])
                    outcome = "succeeded" if ok else "lost"
                counts[outcome] = counts.get(outcome, 0) + 1
        return Ran(**counts)

    # -- looking -------------------------------------------------------------------------

    def dispatched(
        self, job: type[BaseJob[Any]] | Task[Any, Any] | str | None = None
    ) -> list[Dispatched]:
        """Every job stored so far (of ``job``: a class, a task or a name), oldest first,
        with its params as a dict and its status now."""
        name = job if isinstance(job, str) or job is None else job.name
        found: list[Dispatched] = []
        cursor: str | None = None
        while True:
            query = JobQuery(name=name, limit=_PAGE, cursor=cursor)
            page = list_page(query, self.store)
            for listed in page.jobs:
                r = listed.record
                found.append(Dispatched(r.id, r.name, orjson.loads(r.params_json), r.status, r))
            cursor = page.next_cursor
            if cursor is None:
                return found[::-1]

    def jobs(self, status: Status) -> list[Dispatched]:
        """The jobs in ``status`` now (``Status.DEAD``: the dead letters), oldest first."""
        return [d for d in self.dispatched() if d.status is status]
