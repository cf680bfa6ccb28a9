"""The fleet over hours and days, from the history archive (the dashboard's charts):
per time bucket, each queue's jobs created, finished and failed, how many waited and
how long, and each job class's run times and failures.

Read without Redis, by two aggregate queries (:mod:`jobkit.archive.history`); Python
only folds their groups into series. Buckets are aligned to the epoch (UTC): hourly
buckets start on the hour, daily ones at midnight UTC; the first holds the time
``hours`` ago, the last holds now (it is still filling).

What each series counts, per bucket:

- ``created``: jobs created in it (the jobs table's ``created_at``);
- ``finished``: attempts that ended the job in it (outcome succeeded, dead or
  cancelled), so about the jobs done; a job cancelled before it ran has no attempt and
  is not counted;
- ``failed``: attempts that ended in it other than in success (retrying, dead,
  cancelled), the way ``failures`` counts them for a class;
- ``depth``: jobs waiting at the bucket's end, approximately: created before the end
  and not yet left the queue by it, leaving meaning the job's ``started_at``, else its
  ``finished_at``. The archive keeps a job's last attempt only, so a job that was
  retried counts as waiting from its creation to its last attempt's start (backing off
  included); a delayed job counts from its dispatch; and only jobs created in the window
  or the :data:`LOOKBACK` before it are counted (a job older than that, still waiting,
  is not);
- ``wait_p50_s`` / ``wait_p99_s``: of the jobs that started in the bucket, the time from
  creation to that start (for a retried job, to its last attempt's start);
- for a class, ``runs`` and ``failures``: attempts that ended in the window, and those
  that did not succeed; ``run_p50_ms`` / ``run_p99_ms``: their ``duration_ms``.

Percentiles come from power-of-two bins counted in SQL, interpolated linearly within
the bin: a figure is within its bin (a factor of two) of the exact one. A series holds
None where a bucket has nothing to measure (no job started, no attempt of the class).

**What it costs**: three aggregate queries (:mod:`jobkit.archive.history`): the jobs
created in the window and the attempts that ended in it, each read through its time
index and grouped in the database, and the few jobs of the lookback still waiting at
its start. The time grows with the rows in the window, not with the archive: about a
microsecond a row on PostgreSQL, two on SQLite (``benchmarks/search_history.py``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from jobkit.archive.history import Window, read_flows
from jobkit.errors import InvalidQuery
from jobkit.models import TERMINAL_STATUSES, Status

MAX_HOURS = 24 * 31
BUCKET_MINUTES = (5, 24 * 60)  # the shortest and the longest bucket
MAX_BUCKETS = 750
LOOKBACK = 24 * 3600  # seconds before the window whose jobs still count toward its depth
_FINAL = frozenset(s.value for s in TERMINAL_STATUSES)


@dataclass
class _Queue:
    n: int
    waiting: int = 0  # jobs waiting as the window starts
    created: list[int] = field(init=False)
    finished: list[int] = field(init=False)
    failed: list[int] = field(init=False)
    delta: list[int] = field(init=False)  # jobs in minus jobs out, per bucket
    waits: list[dict[int, int]] = field(init=False)  # per bucket: wait bin -> jobs

    def __post_init__(self) -> None:
        self.created, self.finished, self.failed = [0] * self.n, [0] * self.n, [0] * self.n
        self.delta = [0] * self.n
        self.waits = [{} for _ in range(self.n)]

    def left(self, bucket: int | None, wait_bin: int | None, count: int) -> None:
        """``count`` jobs left the queue in ``bucket`` (None: not yet), after a wait in
        ``wait_bin`` (None: they never started)."""
        if bucket is None or bucket >= self.n:
            return
        self.delta[bucket] -= count
        if wait_bin is not None:
            self.waits[bucket][wait_bin] = self.waits[bucket].get(wait_bin, 0) + count


@dataclass
class _Class:
    n: int
    runs: list[int] = field(init=False)
    failures: list[int] = field(init=False)
    bins: list[dict[int, int]] = field(init=False)  # per bucket: run bin -> attempts

    def __post_init__(self) -> None:
        self.runs, self.failures = [0] * self.n, [0] * self.n
        self.bins = [{} for _ in range(self.n)]


def history(
    hours: int = 24,
    bucket_minutes: int = 60,
    queue: str | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """The archive's last ``hours`` (1 to 744) in buckets of ``bucket_minutes`` (5 to
    1440; at most 750 buckets), of ``queue`` alone if given, up to ``now`` (this host's
    clock unless given); see the module doc. None when no archive is configured.
    Raises :class:`InvalidQuery` for a range out of bounds and
    :class:`~jobkit.errors.HistoryUnavailable` when the archive cannot be read."""
    if not 1 <= hours <= MAX_HOURS:
        raise InvalidQuery(f"hours must be from 1 to {MAX_HOURS}, not {hours}")
    shortest, longest = BUCKET_MINUTES
    if not shortest <= bucket_minutes <= longest:
        raise InvalidQuery(
            f"bucket_minutes must be from {shortest} to {longest}, not {bucket_minutes}"
        )
    size = bucket_minutes * 60
    now_s = int(now.timestamp() if now is not None else time.time())
    first, last = (now_s - hours * 3600) // size, now_s // size
    n = last - first + 1
    if n > MAX_BUCKETS:
        raise InvalidQuery(f"{hours} hours in {bucket_minutes}-minute buckets is {n} buckets, "
                           f"over {MAX_BUCKETS}: use longer buckets")  # fmt: skip
    window = Window(first * size - LOOKBACK, first * size, (last + 1) * size, size)
    flows = read_flows(window, queue)
    if flows is None:
        return None
    queues: dict[str, _Queue] = {}
    classes: dict[str, _Class] = {}
    for q, left, wait_bin, count in flows.waiting:
        row = queues.get(q) or queues.setdefault(q, _Queue(n))
        row.waiting += count
        row.left(max(left, 0) if left is not None else None, wait_bin, count)
    for q, created, left, wait_bin, count in flows.jobs:
        row = queues.get(q) or queues.setdefault(q, _Queue(n))
        if not 0 <= created < n:
            continue
        row.created[created] += count
        row.delta[created] += count
        # started before it was created: the clocks were apart
        row.left(None if left is None else max(left, created), wait_bin, count)
    for q, job_class, i, run_bin, outcome, count in flows.attempts:
        if not 0 <= i < n:
            continue
        row = queues.get(q) or queues.setdefault(q, _Queue(n))
        cls = classes.get(job_class) or classes.setdefault(job_class, _Class(n))
        failed = outcome != Status.SUCCEEDED.value
        row.finished[i] += count if outcome in _FINAL else 0
        row.failed[i] += count if failed else 0
        cls.runs[i] += count
        cls.failures[i] += count if failed else 0
        if run_bin is not None:
            cls.bins[i][run_bin] = cls.bins[i].get(run_bin, 0) + count
    starts = [datetime.fromtimestamp((first + i) * size, timezone.utc) for i in range(n)]
    return {
        "buckets": [at.isoformat() for at in starts],
        "queues": {name: _queue_view(queues[name]) for name in sorted(queues)},
        "classes": {name: _class_view(classes[name]) for name in sorted(classes)},
    }


def _queue_view(row: _Queue) -> dict[str, Any]:
    depth, running = [], row.waiting
    for change in row.delta:
        running += change
        depth.append(max(running, 0))
    return {
        "created": row.created,
        "finished": row.finished,
        "failed": row.failed,
        "depth": depth,
        "wait_p50_s": [_seconds(percentile(bins, 0.50)) for bins in row.waits],
        "wait_p99_s": [_seconds(percentile(bins, 0.99)) for bins in row.waits],
    }


def _class_view(cls: _Class) -> dict[str, Any]:
    whole: dict[int, int] = {}
    for bins in cls.bins:
        for b, count in bins.items():
            whole[b] = whole.get(b, 0) + count
    return {
        "runs": sum(cls.runs),
        "failures": sum(cls.failures),
        "run_p50_ms": _rounded(percentile(whole, 0.50)),
        "run_p99_ms": _rounded(percentile(whole, 0.99)),
        "series": {
            "run_p50_ms": [_rounded(percentile(bins, 0.50)) for bins in cls.bins],
            "run_p99_ms": [_rounded(percentile(bins, 0.99)) for bins in cls.bins],
            "failures": [f if r else None for r, f in zip(cls.runs, cls.failures, strict=True)],
        },
    }


def percentile(bins: Mapping[int, int], p: float) -> float | None:
    """The ``p`` quantile (0 to 1) of the milliseconds counted in power-of-two ``bins``
    (bin 0: under 1 ms; bin k: 2^(k-1) to 2^k ms), interpolated linearly within its
    bin; None for no counts."""
    total = sum(bins.values())
    if total <= 0:
        return None
    rank, seen = p * total, 0
    for b in sorted(bins):
        count = bins[b]
        if count > 0 and seen + count >= rank:
            low = 0.0 if b == 0 else 2.0 ** (b - 1)
            return low + (2.0**b - low) * max(rank - seen, 0) / count
        seen += count
    return 2.0 ** max(bins)


def _rounded(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 3)


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 4)
