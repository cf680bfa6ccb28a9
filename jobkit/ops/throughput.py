"""Attempts that ended, per queue and minute, over the last hour, kept up to date from the
event streams by reading only what is new (the dashboard's overview chart and rates).

One :class:`Throughput` lives in a server: its first refresh reads each queue's last hour
of events, newest first, up to :data:`FIRST_READ` entries (an hour of a busy queue can be
more than the stream keeps, or than is worth reading at once: the minutes before what it
read are then marked unknown, not zero); every later refresh reads only the entries after
the last one it saw. So keeping the chart live costs Redis what the fleet appends, once
per refresh, however many pages show it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobkit.backend.events import Event, Events, failed

if TYPE_CHECKING:
    from jobkit.backend.store import Store

MINUTES = 60  # the window kept
FIRST_READ = 20_000  # events per queue the first refresh reads at most
REFRESH_READ = 50_000  # events per queue one later refresh reads at most


@dataclass
class _Queue:
    last_id: str | None = None  # the newest entry counted
    known_from: int = 0  # the first minute (epoch minute) whose counts are whole
    done: dict[int, int] = field(default_factory=dict)  # epoch minute -> attempts
    failed: dict[int, int] = field(default_factory=dict)


class Throughput:
    """Per queue, attempts that succeeded and that failed in each of the last
    :data:`MINUTES` minutes (see the module doc). Thread-safe."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queues: dict[str, _Queue] = {}
        self._lock = threading.Lock()
        self.now_minute = 0

    def refresh(self, queues: list[str] | None = None) -> None:
        """Count the events appended since the last refresh (the last hour, first)."""
        names = self.store.reads.queues() if queues is None else queues
        now_ms = self.store.reads.now_ms()
        with self._lock:
            self.now_minute = now_ms // 60_000
            oldest = self.now_minute - MINUTES + 1
            for name in names:
                state = self._queues.setdefault(name, _Queue())
                if state.last_id is None:
                    self._first(name, state, oldest)
                else:
                    self._more(name, state)
                for counts in (state.done, state.failed):
                    for minute in [m for m in counts if m < oldest]:
                        del counts[minute]

    def _first(self, name: str, state: _Queue, oldest: int) -> None:
        events = Events(self.store).between(name, str(oldest * 60_000), newest_first=True)
        state.known_from = oldest
        for read, event in enumerate(events, 1):
            if state.last_id is None:
                state.last_id = event.seq
            if read > FIRST_READ:
                state.known_from = event.at_ms // 60_000 + 1
                break
            _count(state, event)
        if state.last_id is None:
            state.last_id = f"{self.now_minute * 60_000}-0"  # nothing yet: from now on

    def _more(self, name: str, state: _Queue) -> None:
        events = Events(self.store).between(name, "(" + str(state.last_id))
        for read, event in enumerate(events, 1):
            state.last_id = event.seq
            _count(state, event)
            if read >= REFRESH_READ:
                break  # the rest at the next refresh

    def series(self) -> dict[str, Any]:
        """``{"minutes": [epoch seconds of each minute], "queues": {queue: {"done": [...],
        "failed": [...]}}}``, oldest minute first; None for a minute before what was read."""
        with self._lock:
            minutes = list(range(self.now_minute - MINUTES + 1, self.now_minute + 1))
            out: dict[str, Any] = {"minutes": [m * 60 for m in minutes], "queues": {}}
            for name, state in sorted(self._queues.items()):
                out["queues"][name] = {
                    kind: [None if m < state.known_from else counts.get(m, 0) for m in minutes]
                    for kind, counts in (("done", state.done), ("failed", state.failed))
                }
            return out

    def per_minute(self, queue: str) -> dict[str, dict[str, float]]:
        """``{"done": {"1m", "5m", "15m"}, "failed": {...}}``: per minute, as ``jobkit info``
        says it (the current minute counts as a whole one: a rate that rises as it goes)."""
        with self._lock:
            state = self._queues.get(queue, _Queue())
            out: dict[str, dict[str, float]] = {}
            for kind, counts in (("done", state.done), ("failed", state.failed)):
                out[kind] = {}
                for window in (1, 5, 15):
                    first = self.now_minute - window + 1
                    total = sum(n for m, n in counts.items() if m >= first)
                    out[kind][f"{window}m"] = round(total / window, 2)
            return out


def _count(state: _Queue, event: Event) -> None:
    """An attempt that ended, counted as ``jobkit info``'s rates count it
    (:class:`jobkit.backend.events.Rates`): a cancel or a hand-back is neither."""
    if not event.ended_attempt:
        return
    minute = event.at_ms // 60_000
    if event.to_status == "succeeded":
        state.done[minute] = state.done.get(minute, 0) + 1
    elif failed(event):
        state.failed[minute] = state.failed.get(minute, 0) + 1
