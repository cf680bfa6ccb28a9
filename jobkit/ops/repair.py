"""``jobkit repair``: rebuild each queue's indexes from its job records.

Every record of the queue is found by SCAN and handed, in batches, to repair.lua, which
reads each one again inside Redis and adds only what its status calls for and its
indexes lack (see its header for which index each status means); then every entry of
every index is checked the same way, and those no record backs are dropped. One script
call per batch on one shard: safe while workers run, and idempotent, so a second repair
finds nothing to do.

- A ``running`` job with no lease is given one of ``lease_ms`` from now (the workers'
  JOBKIT_LEASE): a worker still running it renews it with its next heartbeat, and if
  none is, the reaper settles it when it lapses, under the usual rules (a crash counted,
  its retry policy applied). A lease already lapsed would have the reaper requeue a job
  a live worker is still running, to be run twice.
- ``seq`` is set past every record's sequence number when it is behind or garbage.
- A queued job goes back at the place its record's seq gives it (a retried job keeps
  the seq it was created with, so it may come back ahead of jobs sent after it).
- The ``asides`` hash is left alone: it is the record of what was set aside, not a
  fault. ``jobkit doctor`` lists it as informational; an operator who has read it may
  delete the ``aside:`` keys and the hash.
- The global registry of queues (``queues``) holding another type is set aside by
  register.lua, and every queue found (the registry's, the live workers', and those some
  key of the keyspace belongs to, by SCAN) is put back in it: see
  :func:`jobkit.ops.doctor.global_health`. The other global keys of the wrong type are
  reported, not written: the workers' next beats set ``workers`` and their hashes aside.
- An index key of the wrong type is not written to (its entries are reported
  ``blocked``): the next script that meets it sets it aside, and a repair after that
  rebuilds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobkit.backend.health import BATCH, INDEXES, Fix, Health
from jobkit.backend.store import Store
from jobkit.ops.doctor import GlobalHealth, global_health

REGISTER_BATCH = 1000  # queues one register.lua call adds


@dataclass(slots=True)
class QueueRepair:
    """What a repair did (or, a dry run, would do) to one queue."""

    queue: str
    records: int = 0
    entries: int = 0
    # (index, state) -> how many: states of repair.lua ('added', 'removed', 'missing',
    # 'stray', 'blocked', 'invalid')
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def note(self, fixes: Iterable[Fix]) -> None:
        for fix in fixes:
            key = (fix.where, fix.state)
            self.counts[key] = self.counts.get(key, 0) + 1

    @property
    def changes(self) -> int:
        """Writes made, or to make (a dry run): what is blocked or invalid is not."""
        return sum(n for (_, s), n in self.counts.items() if s not in ("blocked", "invalid"))


@dataclass(slots=True)
class GlobalRepair:
    """What a repair did (a dry run: would do) to the registry: whether it held another
    type (``found``) and was set aside (as ``kept``), the queues it lacked and how many
    were added, the keys the keyspace scan looked at, and the other global keys of the
    wrong type, left as they are (``left``)."""

    found: str = ""
    kept: str = ""
    unregistered: list[str] = field(default_factory=list)
    added: int = 0
    scanned: int = 0
    left: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return int(bool(self.found)) + self.added

    def as_dict(self) -> dict[str, Any]:
        return {"found": self.found or None, "kept": self.kept or None,
                "unregistered": self.unregistered, "added": self.added,
                "scanned": self.scanned, "left": self.left}  # fmt: skip


@dataclass(slots=True)
class RepairReport:
    """What ``jobkit repair`` did, to the registry and per queue, and in how many Redis
    calls."""

    dry_run: bool
    queues: list[QueueRepair]
    calls: int = 0
    global_keys: GlobalRepair = field(default_factory=GlobalRepair)

    @property
    def changes(self) -> int:
        return self.global_keys.changes + sum(q.changes for q in self.queues)

    def as_dict(self) -> dict[str, Any]:
        """The report as ``jobkit repair --json`` prints it (see docs/json.md)."""
        return {
            "dry_run": self.dry_run,
            "changes": self.changes,
            "calls": self.calls,
            "queues": [
                {
                    "queue": q.queue,
                    "records": q.records,
                    "entries": q.entries,
                    "changes": q.changes,
                    "counts": [
                        {"index": i, "state": s, "count": n}
                        for (i, s), n in sorted(q.counts.items())
                    ],
                }
                for q in self.queues
            ],
            "global": self.global_keys.as_dict(),
        }


def repair(
    store: Store, queues: Sequence[str] | None = None, *, lease_ms: int, dry_run: bool = False
) -> RepairReport:
    """Mend the registry, then rebuild the indexes of ``queues`` (None: every queue
    found, see :func:`~jobkit.ops.doctor.global_health`) from their records;
    ``dry_run`` writes nothing and reports what it would do."""
    health = Health(store)
    found = global_health(health, scan=True)
    mended = _registry(health, found, not dry_run)
    names = list(queues) if queues else found.queues
    report = RepairReport(dry_run, [_queue(health, q, lease_ms, not dry_run) for q in names])
    report.global_keys = mended
    report.calls = health.calls
    return report


def _registry(health: Health, found: GlobalHealth, fix: bool) -> GlobalRepair:
    """Set a registry of the wrong type aside and put every queue found back in it."""
    out = GlobalRepair(unregistered=found.unregistered, scanned=found.scanned or 0)
    for wrong in health.global_types() + health.workers()[0]:
        if wrong.key == health.keys.queues:
            out.found = wrong.found
        else:
            out.left.append(wrong.key)
    if not (out.found or out.unregistered):
        return out
    if not fix:
        out.added = len(out.unregistered)
        return out
    queues = found.queues
    for start in range(0, max(1, len(queues)), REGISTER_BATCH):
        reply = health.register(queues[start : start + REGISTER_BATCH])
        out.kept = out.kept or reply.kept
        out.added += reply.added
    if not out.kept:
        out.found = ""  # set aside meanwhile (a worker's start, a dispatch): not by this
    return out


def _queue(health: Health, queue: str, lease_ms: int, fix: bool) -> QueueRepair:
    out = QueueRepair(queue)
    for page in health.records(queue):
        out.records += len(page)
        for start in range(0, len(page), BATCH):
            out.note(health.check(queue, page[start : start + BATCH], fix=fix, lease_ms=lease_ms))
    lanes = health.lanes(queue)
    for index in [*INDEXES, *(f"queue:{lane}" for lane in lanes)]:
        for page in health.entries(queue, index):
            out.entries += len(page)
            for start in range(0, len(page), BATCH):
                batch = page[start : start + BATCH]
                out.note(health.check(queue, batch, fix=fix, lease_ms=lease_ms, index=index))
    return out
