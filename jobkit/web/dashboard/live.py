"""Live pages at a cost that does not grow with viewers: one reader per server reads the
fleet's state once per interval and pushes it to every open page over server-sent events.

A page opens ``GET <prefix>/live`` (``EventSource``); while at least one is open, the
:class:`Broadcaster` reads one :class:`Snapshot` per interval (the overview, the workers,
the newest jobs, the throughput chart, and the jobs pages are watching), renders each
fragment once per role that is looking (admin pages have buttons, read-only ones not),
and puts the same text on every subscriber's queue. Redis sees one reader whether one
page is open or fifty; with none open, nothing is read. A subscriber that cannot keep up
skips to the newest fragments (its queue holds two ticks), and a page that loses the
stream says so and reconnects (``EventSource`` does; ``dashboard.js`` shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from jobkit.ops import UNAVAILABLE, Store
from jobkit.ops.listing import JobPage, JobQuery, list_jobs
from jobkit.ops.overview import Overview, overview
from jobkit.ops.throughput import Throughput
from jobkit.ops.workers import WorkerInfo, live_workers
from jobkit.web.auth import Role

log = logging.getLogger("jobkit.dashboard")

INTERVAL = 2.0  # seconds between reads while a page is open
RECENT = 20  # newest jobs pushed to the jobs page
MAX_WATCHED = 200  # jobs pages may watch at once (one HMGET each per interval)
KEEPALIVE = 15.0  # seconds between comments on an idle stream (proxies close silent ones)


@dataclass
class Snapshot:
    """The fleet as one read saw it."""

    at: float
    overview: Overview | None
    workers: list[WorkerInfo]
    recent: JobPage | None
    chart: dict[str, Any]
    jobs: dict[str, Any]  # watched job id -> its record (None: gone)
    error: str = ""  # Redis out of reach: what the pages say instead


Fragments = dict[str, str]  # fragment name -> text (HTML, or JSON for the chart)
Render = Callable[[Snapshot, Role, frozenset[str]], Fragments]


@dataclass(eq=False)
class Subscriber:
    role: Role
    jobs: frozenset[str]
    queue: asyncio.Queue[Fragments] = field(default_factory=lambda: asyncio.Queue(maxsize=2))

    def offer(self, fragments: Fragments) -> None:
        if self.queue.full():  # a slow reader skips to the newest
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(fragments)


class Broadcaster:
    """The one reader of a server (see the module doc)."""

    def __init__(self, store_of: Callable[[], Store], render: Render, interval: float = INTERVAL):
        self.store_of = store_of
        self.render = render
        self.interval = interval
        self.subscribers: set[Subscriber] = set()
        self.reads = 0  # snapshots read so far (tests and the benchmark look)
        self.last: Snapshot | None = None
        self._task: asyncio.Task[None] | None = None
        self._throughput: Throughput | None = None
        self._wake = asyncio.Event()

    def throughput(self) -> Throughput:
        if self._throughput is None:
            self._throughput = Throughput(self.store_of())
        return self._throughput

    async def stream(self, role: Role, jobs: frozenset[str]) -> AsyncIterator[str]:
        """The text of one page's event stream, until the page goes."""
        sub = Subscriber(role, frozenset(list(jobs)[:MAX_WATCHED]))
        self.subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        self._wake.set()  # a new page gets fresh fragments now, not an interval later
        try:
            yield "retry: 2000\n\n"  # how soon the browser reconnects after a drop
            while True:
                try:
                    fragments = await asyncio.wait_for(sub.queue.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                for name, text in fragments.items():
                    yield event(name, text)
        finally:
            self.subscribers.discard(sub)

    async def _run(self) -> None:
        """Read and push once per interval while anyone subscribes."""
        while self.subscribers:
            watched = frozenset(j for s in self.subscribers for j in s.jobs)
            started = time.monotonic()
            snapshot = await run_in_threadpool(self.read, watched)
            self.last = snapshot
            rendered: dict[tuple[Role, frozenset[str]], Fragments] = {}
            for sub in list(self.subscribers):
                key = (sub.role, sub.jobs)
                if key not in rendered:
                    rendered[key] = await run_in_threadpool(self.render, snapshot, *key)
                sub.offer(rendered[key])
            self._wake.clear()
            pause = max(0.0, self.interval - (time.monotonic() - started))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    def read(self, watched: frozenset[str] = frozenset()) -> Snapshot:
        """One snapshot of the fleet (in a worker thread: it blocks on Redis)."""
        self.reads += 1
        store = self.store_of()
        try:
            throughput = self.throughput()
            throughput.refresh()
            seen = overview(store, throughput.per_minute)
            workers = live_workers(store)
            recent = list_jobs(store, JobQuery(limit=RECENT))
            ids = sorted(watched)
            records = dict(zip(ids, store.reads.get_many(ids), strict=True))
            return Snapshot(time.time(), seen, workers, recent, throughput.series(), records)
        except UNAVAILABLE as exc:
            log.warning("dashboard: Redis out of reach: %s", exc)
            return Snapshot(time.time(), None, [], None, {}, {}, "Redis is out of reach")


def event(name: str, text: str) -> str:
    """One server-sent event: its name, then its text a ``data:`` line per line."""
    lines = "".join(f"data: {line}\n" for line in text.split("\n"))
    return f"event: {name}\n{lines}\n"
