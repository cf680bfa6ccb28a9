"""Workers as an operator sees them (``jobkit workers``, ``GET /workers``): the live
registry, each supervisor with its children and what they run now, and what a worker
has done, read from the event streams, also after it stopped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobkit.backend.events import Event, Events
from jobkit.backend.problems import Found
from jobkit.backend.worker_registry import ChildInfo, CurrentJob, WorkerInfo, WorkerRegistry

if TYPE_CHECKING:
    from jobkit.backend.store import Store

__all__ = [
    "ChildInfo",
    "CurrentJob",
    "Found",
    "WorkerInfo",
    "live_workers",
    "prune_workers",
    "read_workers",
    "recent_workers",
    "worker_jobs",
    "worker_view",
]


def read_workers(store: Store) -> Found[WorkerInfo]:
    """Every live worker with its children, most recently seen first; a job a beat names
    is shown running only while its record says so, and the done / failed counts move
    as jobs end (see :mod:`jobkit.backend.worker_registry`). A registry key or a
    worker's hash of another type is skipped and named in ``problems``."""
    return WorkerRegistry(store).live()


def live_workers(store: Store) -> list[WorkerInfo]:
    """:func:`read_workers` without the keys it skipped (for views that show them
    elsewhere: the dashboard, ``jobkit top``)."""
    return read_workers(store).items


def prune_workers(store: Store, default_heartbeat: float) -> list[str]:
    """Drop every worker that missed two beats now; the names dropped."""
    return WorkerRegistry(store).prune(default_heartbeat)


def worker_jobs(store: Store, name: str, limit: int = 20) -> list[Event]:
    """The last ``limit`` attempts worker ``name`` ended, newest first, as far as the
    events go (also after it stopped)."""
    return Events(store).of_worker(name, limit)


def worker_view(store: Store, name: str, limit: int = 20) -> dict[str, Any] | None:
    """One worker: ``{"name", "live", "jobs"}``, ``live`` its registry entry (None once it
    stopped) and ``jobs`` its last attempts; None when neither the registry nor the
    events know the name."""
    live = next((w for w in live_workers(store) if w.name == name), None)
    jobs = worker_jobs(store, name, limit)
    if live is None and not jobs:
        return None
    return {
        "name": name,
        "live": None if live is None else live.as_dict(),
        "jobs": [e.as_dict() for e in jobs],
    }


def recent_workers(store: Store, events: int = 5000) -> list[tuple[str, float]]:
    """Workers the newest ``events`` events name, with when each last ended an attempt
    (epoch s), newest first: also those that stopped since (the registry forgets them)."""
    seen: dict[str, float] = {}
    for event in Events(store).recent(events):
        if event.ended_attempt and event.worker and event.worker not in seen:
            seen[event.worker] = event.at_ms / 1000
    return sorted(seen.items(), key=lambda item: item[1], reverse=True)
