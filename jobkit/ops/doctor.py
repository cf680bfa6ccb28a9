"""``jobkit doctor``: what is wrong with each queue's keys, found without changing any.

For each queue it reports, in one :class:`Report`:

- shared keys of the wrong type (each one's TYPE against keys.py), and keys the scripts
  set aside (the shard's ``asides``: informational, the record of what happened);
- orphans: records whose status says they belong in an index that does not hold them
  (every record belongs in ``created`` too), and jobs ``running`` with no lease;
- strays: index entries with no record (in ``finished`` and ``created`` these are
  mostly records that expired and that the workers' chores have not trimmed yet: told
  apart, not counted as findings);
- invalid records (no hash, no status, a queued job with no lane) and a ``seq`` counter
  behind the newest job's;
- schedules in Redis whose job class the app does not know (only when the app is given);
- Redis settings that can lose jobs: maxmemory-policy other than noeviction; no
  persistence at all;
- the global slot's keys (:class:`GlobalHealth`): their types (the ``queues`` registry,
  ``workers``, ``marker``, ``audit``, each live worker's hash), what was set aside there,
  and queues with keys or live workers that the registry lacks (unregistered).

The queues checked are the registry's and those found without it: the queues live
workers' hashes name, and, when the registry is unreadable, absent or empty (or with
``full``), every queue some key of the keyspace belongs to, found by SCAN pages (each
master of a cluster), so garbage over the registry hides no queue from the doctor.

The records are read the way repair.lua reads them, by the same script writing nothing
(``fix`` 0), so doctor and repair cannot disagree about where a record belongs. All work
is bounded (see :mod:`jobkit.backend.health`): by default only a sample of each queue's
records and index entries is checked (the first ``sample`` the SCAN finds), all of them
with ``full``; the report says how many were read, in how many calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from jobkit.backend.health import BATCH, INDEXES, Aside, Fix, Health, Setting
from jobkit.backend.store import Store

DEFAULT_SAMPLE = 5000  # records (and entries of each index) a doctor checks per queue


@dataclass(frozen=True, slots=True)
class Finding:
    """Something found in a queue: ``kind`` (see :data:`KINDS`), the index or key it is
    about, how many, and some of the ids or keys (at most :data:`SHOWN`)."""

    kind: str
    where: str
    count: int
    examples: list[str]


# kinds of finding, and what each means (the table's words)
KINDS = {
    "wrong_type": "key of the wrong type",
    "orphan": "records the index lacks",
    "no_lease": "running with no lease",
    "stray": "entries with no record",
    "invalid": "records that say no index",
    "seq": "seq behind the newest job",
    "unknown_class": "schedules of unknown classes",
    "set_aside": "keys set aside (informational)",
    "expired": "entries of expired records (trimmed by the workers)",
    "undeclared": "schedules no longer declared (informational)",
    "unregistered": "queues missing from the registry",
}
INFORMATIONAL = frozenset({"set_aside", "expired", "undeclared"})
SHOWN = 5


@dataclass(slots=True)
class QueueHealth:
    """One queue's findings, and what was read to find them."""

    queue: str
    records: int = 0  # job records checked
    entries: int = 0  # index entries checked
    complete: bool = True  # every record and entry was checked (not a sample)
    findings: list[Finding] = field(default_factory=list)
    asides: list[dict[str, Any]] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(f.kind in INFORMATIONAL for f in self.findings)


@dataclass(slots=True)
class GlobalHealth:
    """The global slot's findings, what was set aside there, the registry's queues (None:
    unreadable), the queues found that it lacks, and the keys a keyspace scan looked at
    (None: no scan was needed)."""

    findings: list[Finding] = field(default_factory=list)
    asides: list[dict[str, Any]] = field(default_factory=list)
    registered: list[str] | None = None
    unregistered: list[str] = field(default_factory=list)
    scanned: int | None = None

    @property
    def healthy(self) -> bool:
        return all(f.kind in INFORMATIONAL for f in self.findings)

    @property
    def queues(self) -> list[str]:
        """Every queue known: the registry's and those found without it."""
        return sorted({*(self.registered or ()), *self.unregistered})

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy, "findings": [asdict(f) for f in self.findings],
            "asides": self.asides, "registered": self.registered,
            "unregistered": self.unregistered, "scanned": self.scanned,
        }  # fmt: skip


def global_health(health: Health, scan: bool = False) -> GlobalHealth:
    """The global keys' types and the queues the registry lacks (see the module doc);
    ``scan``: look through the keyspace even when the registry is a readable set."""
    out = GlobalHealth()
    wrong_workers, served = health.workers()
    for wrong in [*health.global_types(), *wrong_workers]:
        out.findings.append(_one("wrong_type", wrong.key, f"{wrong.found}, not {wrong.want}"))
    asides = health.asides(None)
    out.asides = [a._asdict() for a in asides]
    if asides:
        out.findings.append(_many("set_aside", "asides", [a.kept for a in asides]))
    out.registered = health.registry()
    found = set(served)
    if scan or not out.registered:
        shards, out.scanned = health.shard_queues()
        found |= shards
    out.unregistered = sorted(found - set(out.registered or ()))
    if out.unregistered:
        out.findings.append(_many("unregistered", health.keys.queues, out.unregistered))
    return out


@dataclass(slots=True)
class Report:
    """What ``jobkit doctor`` found: per queue, Redis's settings, and its cost."""

    queues: list[QueueHealth]
    settings: list[Setting]
    schedules_checked: bool  # False: no app given, the schedules' classes unchecked
    calls: int = 0
    global_keys: GlobalHealth = field(default_factory=GlobalHealth)

    @property
    def healthy(self) -> bool:
        """Nothing found that can lose or strand a job."""
        return (
            self.global_keys.healthy
            and all(q.healthy for q in self.queues)
            and not any(s.risk for s in self.settings)
        )

    def as_dict(self) -> dict[str, Any]:
        """The report as ``jobkit doctor --json`` prints it (see docs/json.md)."""
        return {
            "healthy": self.healthy,
            "calls": self.calls,
            "schedules_checked": self.schedules_checked,
            "queues": [
                {
                    "queue": q.queue, "healthy": q.healthy, "records": q.records,
                    "entries": q.entries, "complete": q.complete,
                    "findings": [asdict(f) for f in q.findings], "asides": q.asides,
                }
                for q in self.queues
            ],
            "settings": [s._asdict() for s in self.settings],
            "global": self.global_keys.as_dict(),
        }  # fmt: skip


def diagnose(
    store: Store,
    queues: Sequence[str] | None = None,
    *,
    full: bool = False,
    sample: int = DEFAULT_SAMPLE,
    known_classes: Iterable[str] | None = None,
    declared: Iterable[str] | None = None,
) -> Report:
    """Check the global keys and ``queues`` (None: every queue known, see the module
    doc); ``full`` reads every record and index entry, else the first ``sample`` of
    each. ``known_classes`` (the app's job names) and ``declared`` (its schedule keys):
    None skips the schedules' check."""
    health = Health(store)
    global_keys = global_health(health, scan=full)
    names = list(queues) if queues else global_keys.queues
    limit = None if full else sample
    known = None if known_classes is None else set(known_classes)
    keys = set(declared or ())
    found = [_queue(health, q, limit, known, keys) for q in names]
    report = Report(found, health.settings(), known is not None, global_keys=global_keys)
    report.calls = health.calls
    return report


def _queue(
    health: Health, queue: str, limit: int | None, known: set[str] | None, declared: set[str]
) -> QueueHealth:
    out = QueueHealth(queue)
    lanes = health.lanes(queue)
    for wrong in health.wrong_types(queue, lanes):
        out.findings.append(_one("wrong_type", wrong.key, f"{wrong.found}, not {wrong.want}"))
    asides = health.asides(queue)
    out.asides = [a._asdict() for a in asides]
    if asides:
        out.findings.append(_many("set_aside", "asides", [a.kept for a in asides]))
    fixes: list[Fix] = []
    for page in health.records(queue, limit):
        out.records += len(page)
        for start in range(0, len(page), BATCH):
            fixes += health.check(queue, page[start : start + BATCH], fix=False, lease_ms=0)
    if limit is not None and out.records >= limit:
        out.complete = False
    for index in [*INDEXES, *(f"queue:{lane}" for lane in lanes)]:
        for page in health.entries(queue, index, limit):
            out.entries += len(page)
            for start in range(0, len(page), BATCH):
                batch = page[start : start + BATCH]
                fixes += health.check(queue, batch, fix=False, lease_ms=0, index=index)
            if limit is not None and out.entries >= limit:
                out.complete = False
    out.findings += _grouped(fixes)
    if known is not None:
        out.findings += _schedules(health, queue, known, declared)
    return out


def _grouped(fixes: Iterable[Fix]) -> list[Finding]:
    """repair.lua's triples as findings: one per kind and index."""
    groups: dict[tuple[str, str], list[str]] = {}
    for fix in fixes:
        groups.setdefault((_kind(fix), fix.where), []).append(fix.id)
    return [_many(kind, where, ids) for (kind, where), ids in sorted(groups.items())]


def _kind(fix: Fix) -> str:
    if fix.state == "blocked":
        return "wrong_type"
    if fix.state == "invalid":
        return "invalid"
    if fix.state in ("stray", "removed"):
        return "expired" if fix.where in ("finished", "created") else "stray"
    if fix.where == "seq":
        return "seq"
    return "no_lease" if fix.where == "running" else "orphan"


def _schedules(health: Health, queue: str, known: set[str], declared: set[str]) -> list[Finding]:
    unknown, stale = [], []
    for key in health.schedules(queue):
        if key.split("#", 1)[0] not in known:
            unknown.append(key)
        elif key not in declared:
            stale.append(key)
    out = []
    if unknown:
        out.append(_many("unknown_class", "schedule", unknown))
    if stale:
        out.append(_many("undeclared", "schedule", stale))
    return out


def _one(kind: str, where: str, example: str) -> Finding:
    return Finding(kind, where, 1, [example])


def _many(kind: str, where: str, ids: Sequence[str]) -> Finding:
    unique = sorted(set(ids))
    return Finding(kind, where, len(unique), unique[:SHOWN])


__all__ = [
    "DEFAULT_SAMPLE",
    "KINDS",
    "Aside",
    "Finding",
    "GlobalHealth",
    "QueueHealth",
    "Report",
    "Setting",
    "diagnose",
    "global_health",
]
