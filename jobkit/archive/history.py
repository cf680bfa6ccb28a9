"""The history archive summed up over time (``jobkit.ops.history``): three aggregate
queries, grouped in the database, that return counts per time bucket, never rows.

**Buckets** are numbered from the window's start, ``floor((seconds - start) / size)``,
from each time's epoch seconds in each database's own terms: ``date_part('epoch', t)``
on PostgreSQL, ``julianday(t)`` on SQLite (see :meth:`_Sql.bucket`). A WHERE on the
indexed time column keeps every other time out.

**Durations** go into power-of-two bins counted in SQL (:data:`BINS`; bin 0 holds
under 1 ms, bin k from 2^(k-1) to 2^k ms): PostgreSQL's ``width_bucket`` over the bins'
edges, a nested CASE of six comparisons on SQLite. Percentiles are then interpolated
from the bins in Python, so no database's percentile function is needed, at the price
of a bin's resolution.

The three queries:

- **waiting**: jobs created in the lookback before the window (a range of
  ``ix_jobkit_jobs_created``) that had not left the queue by its start; few pass the
  WHERE, so it costs a scan of that range's index entries and rows, nothing more;
- **jobs** created in the window (the same index): by queue, the bucket each was
  created in, the bucket it left the queue in (its ``started_at``, else its
  ``finished_at``: cancelled before it ran) and the bin of its wait
  (``started_at - created_at``);
- **attempts** that ended in the window (a range of ``ix_jobkit_attempts_finished``):
  by queue, job class, the bucket it ended in, the bin of its ``duration_ms`` and its
  ``outcome``.

What that costs: each of the last two reads every row of its table in the window
and aggregates it: a hash aggregate on PostgreSQL (given the ``work_mem`` to choose
one, see :func:`read_flows`), a sort on SQLite, which has no other way to group. Python
sees only the groups, about queues x classes x buckets x the bins in use. On the
machine ``benchmarks/search_history.py`` was run on (two shared cores), a day of a
million-job week (about 140,000 jobs and as many attempts) took 0.25 s on PostgreSQL
and 0.47 s on SQLite, the whole week 1.6 s and 3.7 s: some 0.8 and 1.8 microseconds
per row in the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobkit.archive.lookup import _datetime, _reading, history_url

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Select

    from jobkit.settings import Settings

BINS = 40  # 2^39 ms is 17 years: the last bin holds everything above


@dataclass(frozen=True)
class Window:
    """Where the buckets are: bucket 0 starts at ``start_s`` (epoch s), each is
    ``size_s`` long, the last ends at ``end_s``; jobs still waiting at the start are
    looked for among those created from ``lo_s``."""

    lo_s: int
    start_s: int
    end_s: int
    size_s: int


@dataclass
class Flows:
    """What the three queries return (see the module doc), as plain tuples."""

    # queue, bucket left (None: still waiting), wait bin (None: not started), how many
    # jobs: of those created in the lookback and still waiting as the window starts
    waiting: list[tuple[str, int | None, int | None, int]] = field(default_factory=list)
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
        sql = _Sql(conn.dialect.name, window)
        if sql.postgresql:
            # for this read's transaction only: the planner cannot know how few groups
            # the buckets make, and with the default work_mem it sorts a million rows
            # to disk rather than hash them; compiling the plan (JIT) costs more than
            # these queries run
            conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
            conn.exec_driver_sql("SET LOCAL jit = off")
        flows = Flows()
        for q, lb, wb, n in conn.execute(sql.waiting(queue)):
            flows.waiting.append((q, _int(lb), _int(wb), int(n)))
        for q, cb, lb, wb, n in conn.execute(sql.jobs(queue)):
            flows.jobs.append((q, int(cb), _int(lb), _int(wb), int(n)))
        for q, c, fb, rb, outcome, n in conn.execute(sql.attempts(queue)):
            flows.attempts.append((q, c, int(fb), _int(rb), outcome, int(n)))
    return flows


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _number(value: float) -> Any:
    """A constant of this module's (never anyone's text) written into the SQL, so a
    GROUP BY of an expression is the very text of its SELECT."""
    from sqlalchemy import literal_column

    return literal_column(repr(value))


def _divided(a: Any, b: Any) -> Any:
    """``a / b`` as the database divides reals (SQLAlchemy's own "/" adds casts)."""
    from sqlalchemy import Float

    return a.self_group().op("/", return_type=Float)(b)


class _Sql:
    """The three queries in one database's terms (see the module doc)."""

    def __init__(self, dialect: str, window: Window) -> None:
        self.postgresql = dialect == "postgresql"
        self.window = window

    def bucket(self, column: Any) -> ColumnElement[int]:
        """The bucket number of the time ``column``: PostgreSQL from its epoch seconds
        (double precision: exact for whole milliseconds), SQLite from its Julian day,
        whose rounding (some 40 microseconds) half a millisecond more keeps on the side
        of the bucket a millisecond time belongs to."""
        from sqlalchemy import Integer, cast, func, literal_column

        w = self.window
        size = _number(float(w.size_s))
        if self.postgresql:
            since = func.date_part(literal_column("'epoch'"), column) - _number(w.start_s)
            return cast(func.floor(_divided(since, size)), Integer)
        day = _number(w.start_s / 86_400 + 2_440_587.5)  # the start's Julian day
        seconds = (func.julianday(column) - day) * _number(86_400.0) + _number(0.0005)
        return cast(_divided(seconds, size), Integer)  # truncates: >= 0 here

    def milliseconds(self, later: Any, earlier: Any) -> ColumnElement[float]:
        from sqlalchemy import func, literal_column

        ms: ColumnElement[float]
        if self.postgresql:
            epoch: Any = literal_column("'epoch'")
            seconds = func.date_part(epoch, later) - func.date_part(epoch, earlier)
            ms = seconds * _number(1000.0)
        else:
            ms = (func.julianday(later) - func.julianday(earlier)) * _number(86_400_000.0)
        return ms

    def bin(self, value: Any) -> ColumnElement[int]:
        """The power-of-two bin of the milliseconds ``value`` (NULL stays NULL):
        PostgreSQL's ``width_bucket`` over the bins' lower edges; on SQLite a binary
        search of nested CASEs, six comparisons a row."""
        from sqlalchemy import Float, Integer, case, cast, func, literal_column

        if self.postgresql:
            edges = ",".join(str(2**k) for k in range(BINS - 1))
            lower: Any = literal_column(f"ARRAY[{edges}]::float8[]")
            return cast(func.width_bucket(cast(value, Float), lower), Integer)

        def within(low: int, high: int) -> Any:
            if low == high:
                return literal_column(str(low))
            middle = (low + high + 1) // 2  # the upper half's first bin starts at 2^(m-1)
            edge = _number(2 ** (middle - 1))
            return case((value < edge, within(low, middle - 1)), else_=within(middle, high))

        return case((value.is_(None), None), else_=within(0, BINS - 1))

    def waiting(self, queue: str | None) -> Select[Any]:
        """Jobs created in the lookback and not yet left at the window's start: by
        queue, the bucket they left in and the bin of their wait. Few rows pass the
        WHERE, so little is computed."""
        from sqlalchemy import func, or_

        from jobkit.archive.schema import jobs as t

        w = self.window
        left = func.coalesce(t.c.started_at, t.c.finished_at)
        start = _datetime(w.start_s * 1_000_000)
        where = [t.c.created_at >= _datetime(w.lo_s * 1_000_000), t.c.created_at < start,
                 or_(left.is_(None), left >= start)]  # fmt: skip
        return self._grouped(where, queue, created=False)

    def jobs(self, queue: str | None) -> Select[Any]:
        """Jobs created in the window: by queue, the buckets they were created and
        left in, and the bin of their wait."""
        from jobkit.archive.schema import jobs as t

        w = self.window
        where = [
            t.c.created_at >= _datetime(w.start_s * 1_000_000),
            t.c.created_at < _datetime(w.end_s * 1_000_000),
        ]
        return self._grouped(where, queue, created=True)

    def _grouped(self, where: list[Any], queue: str | None, *, created: bool) -> Select[Any]:
        """Jobs rows matching ``where``, counted by queue, the bucket they were created
        in (if ``created``), the bucket they left in and the bin of their wait. SQLite
        computes the wait in a subquery it keeps whole (``LIMIT -1 OFFSET 0``), so its
        CASEs compare a column, not the expression computed again each time."""
        from sqlalchemy import func, select

        from jobkit.archive.schema import jobs as t

        if queue is not None:
            where = [*where, t.c.queue == queue]
        made = [self.bucket(t.c.created_at).label("created")] if created else []
        left = self.bucket(func.coalesce(t.c.started_at, t.c.finished_at)).label("left")
        wait = self.milliseconds(t.c.started_at, t.c.created_at)
        if self.postgresql:
            columns: list[Any] = [t.c.queue, *made, left, self.bin(wait).label("wait")]
            return select(*columns, func.count()).where(*where).group_by(*columns)
        inner = select(t.c.queue, *made, left, wait.label("wait")).where(*where)
        rows = inner.offset(0).subquery()
        columns = [rows.c.queue, *([rows.c.created] if created else []), rows.c.left,
                   self.bin(rows.c.wait)]  # fmt: skip
        return select(*columns, func.count()).group_by(*columns)

    def attempts(self, queue: str | None) -> Select[Any]:
        """Attempts that ended in the window: by queue, class, the bucket they ended
        in, the bin of their run time and their outcome."""
        from sqlalchemy import func, select

        from jobkit.archive.schema import attempts as t

        w = self.window
        columns = (
            t.c.queue,
            t.c.job_class,
            self.bucket(t.c.finished_at).label("ended"),
            self.bin(t.c.duration_ms).label("run_bin"),
            t.c.outcome,
        )
        query = select(*columns, func.count()).where(
            t.c.finished_at >= _datetime(w.start_s * 1_000_000),
            t.c.finished_at < _datetime(w.end_s * 1_000_000),
        )
        if queue is not None:
            query = query.where(t.c.queue == queue)
        return query.group_by(*columns)
