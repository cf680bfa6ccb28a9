"""The history archive summed up over time (``jobkit.ops.history``): two aggregate
queries, grouped in the database, that return counts per time bucket, never rows.

**Buckets** are whole numbers of seconds from a start, computed from each time's epoch
seconds in each database's own terms: ``floor((extract(epoch from t) - :lo) / :size)``
on PostgreSQL, ``(CAST(strftime('%s', t) AS INTEGER) - :lo) / :size`` (integer
division) on SQLite. Times before the start never reach it: the WHERE keeps them out.

**Durations** go into power-of-two bins counted in SQL (:data:`BINS`; bin 0 holds
under 1 ms, bin k from 2^(k-1) to 2^k ms): a nested CASE of a few comparisons per row,
the same on both databases. Percentiles are then interpolated from the bins in Python,
so no database's percentile function is needed, at the price of a bin's resolution.

The two queries:

- **jobs** created from ``lo`` to ``end`` (a range of ``ix_jobkit_jobs_created``): by
  queue, the bucket each was created in, the bucket it left the queue in (its
  ``started_at``, else its ``finished_at``: cancelled before it ran) and the bin of
  its wait (``started_at - created_at``); computed in a subquery the planner keeps
  whole (``OFFSET 0``), so each row's wait is computed once, not per comparison.
- **attempts** that ended from ``start`` to ``end`` (a range of
  ``ix_jobkit_attempts_finished``): by queue, job class, the bucket it ended in, the bin
  of its ``duration_ms`` and its ``outcome``.

What that costs: one index range scan of each table over the window (the jobs' reaching
back :data:`~jobkit.ops.history.LOOKBACK` further, for the depth), a few arithmetic
operations per row, and a hash aggregate whose groups number about queues x classes x
buckets x the bins in use; Python sees only the groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobkit.archive.reads import _datetime, _reading, history_url

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Select

    from jobkit.settings import Settings

BINS = 40  # 2^39 ms is 17 years: the last bin holds everything above


@dataclass(frozen=True)
class Window:
    """Where the buckets are: bucket 0 starts at ``lo_s`` (epoch s), each is ``size_s``
    long; jobs are read from ``lo_s``, attempts from ``start_s``, both to ``end_s``."""

    lo_s: int
    start_s: int
    end_s: int
    size_s: int


@dataclass
class Flows:
    """What the two queries return (see the module doc), as plain tuples."""

    # queue, bucket created, bucket left (None: still waiting), wait bin (None: not
    # started), how many jobs
    jobs: list[tuple[str, int, int | None, int | None, int]] = field(default_factory=list)
    # queue, job class, bucket ended, run bin (None: no duration), outcome, how many
    attempts: list[tuple[str, str, int, int | None, str, int]] = field(default_factory=list)


def read_flows(
    window: Window, queue: str | None = None, settings: Settings | None = None
) -> Flows | None:
    """The archive's counts over ``window`` (of ``queue`` alone, if given); None when no
    archive is configured, empty when it has no tables yet. Raises
    :class:`~jobkit.errors.HistoryUnavailable` when it cannot be read."""
    url = history_url(settings)
    if url is None:
        return None
    with _reading(url) as conn:
        if conn is None:
            return Flows()
        dialect = conn.dialect.name
        flows = Flows()
        for q, cb, lb, wb, n in conn.execute(_jobs_query(dialect, window, queue)):
            flows.jobs.append((q, int(cb), _int(lb), _int(wb), int(n)))
        for q, c, fb, rb, outcome, n in conn.execute(_attempts_query(dialect, window, queue)):
            flows.attempts.append((q, c, int(fb), _int(rb), outcome, int(n)))
    return flows


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _bucket(column: Any, dialect: str, window: Window) -> ColumnElement[int]:
    """The bucket number of the time ``column`` (see the module doc)."""
    from sqlalchemy import Integer, cast, extract, func, literal_column

    # the window's numbers written into the SQL (they are this module's integers, not
    # anyone's text), so a GROUP BY of the expression is the same text as its SELECT
    lo: Any = literal_column(str(int(window.lo_s)))
    size: Any = literal_column(str(int(window.size_s)))
    if dialect == "postgresql":
        return cast(func.floor((extract("epoch", column) - lo) / size), Integer)
    seconds = cast(func.strftime(literal_column("'%s'"), column), Integer)
    # "/" as SQLite reads it: of two integers, the integer quotient (what floor gives,
    # as every time here is at or after lo); SQLAlchemy's own "/" would divide as reals
    bucket: ColumnElement[int] = (seconds - lo).self_group().op("/", return_type=Integer)(size)
    return bucket


def _milliseconds(later: Any, earlier: Any, dialect: str) -> ColumnElement[float]:
    from sqlalchemy import Float, cast, extract, func

    if dialect == "postgresql":
        return cast(extract("epoch", later - earlier) * 1000, Float)
    return (func.julianday(later) - func.julianday(earlier)) * 86_400_000.0


def duration_bin(value: Any) -> ColumnElement[int]:
    """The power-of-two bin of the milliseconds ``value`` (NULL stays NULL): a binary
    search of nested CASEs, six comparisons a row. The edges are this module's
    constants, written into the SQL as numbers."""
    from sqlalchemy import case, literal_column

    def within(low: int, high: int) -> Any:
        if low == high:
            return literal_column(str(low))
        middle = (low + high + 1) // 2  # the first bin of the upper half starts at 2^(m-1)
        edge: Any = literal_column(str(2 ** (middle - 1)))
        return case((value < edge, within(low, middle - 1)), else_=within(middle, high))

    return case((value.is_(None), None), else_=within(0, BINS - 1))


def _jobs_query(dialect: str, window: Window, queue: str | None) -> Select[Any]:
    from sqlalchemy import func, select

    from jobkit.archive.schema import jobs as t

    left = func.coalesce(t.c.started_at, t.c.finished_at)
    inner = select(
        t.c.queue.label("queue"),
        _bucket(t.c.created_at, dialect, window).label("created"),
        _bucket(left, dialect, window).label("left"),
        _milliseconds(t.c.started_at, t.c.created_at, dialect).label("wait"),
    ).where(
        t.c.created_at >= _datetime(window.lo_s * 1_000_000),
        t.c.created_at < _datetime(window.end_s * 1_000_000),
    )
    if queue is not None:
        inner = inner.where(t.c.queue == queue)
    rows = inner.offset(0).subquery()  # OFFSET 0: computed once per row, then binned
    binned = duration_bin(rows.c.wait).label("wait_bin")
    columns = (rows.c.queue, rows.c.created, rows.c.left, binned)
    return select(*columns, func.count()).group_by(*columns)


def _attempts_query(dialect: str, window: Window, queue: str | None) -> Select[Any]:
    from sqlalchemy import func, select

    from jobkit.archive.schema import attempts as t

    columns = (
        t.c.queue,
        t.c.job_class,
        _bucket(t.c.finished_at, dialect, window).label("ended"),
        duration_bin(t.c.duration_ms).label("run_bin"),
        t.c.outcome,
    )
    query = select(*columns, func.count()).where(
        t.c.finished_at >= _datetime(window.start_s * 1_000_000),
        t.c.finished_at < _datetime(window.end_s * 1_000_000),
    )
    if queue is not None:
        query = query.where(t.c.queue == queue)
    return query.group_by(*columns)
