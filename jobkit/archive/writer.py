"""Writing archive rows: batch upserts in one transaction, a row at a time when the
database refuses the batch, and retention.

Upserts make a batch written twice (re-delivered after an archiver died before its
ack) harmless: a job row is keyed by id, an attempt row by (job id, attempt). A job row
is only overwritten by a batch whose last event of that job is not older than the one
it holds (``event_ms``, ``event_seq``), so an old batch taken over late never undoes a
newer state; columns a batch does not know (None) keep what is stored.

A batch the database refuses (a value it cannot store, say) is written again a row at a
time; each row still refused is logged and skipped, and the rest goes in. A database
that cannot be reached raises :class:`HistoryUnavailable`: the caller keeps its batch
unacknowledged in Redis and tries again later.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Table,
    and_,
    create_engine,
    event,
    func,
    literal_column,
    or_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from jobkit.archive import DEFAULT_FILE
from jobkit.archive.rows import DETAILS, Rows
from jobkit.archive.schema import attempts, jobs
from jobkit.errors import HistoryUnavailable

log = logging.getLogger("jobkit.archiver")


def database_url(url: str | None, data_dir: Path) -> str:
    """``url``, or the default SQLite file under ``data_dir`` (created)."""
    if url:
        return url
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(data_dir / DEFAULT_FILE).resolve()}"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite in WAL mode (readers never block the archiver)."""
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")  # several archivers, one file
            cursor.close()

    return engine


def shown(engine: Engine) -> str:
    """The engine's URL as a log line may show it: password masked."""
    return engine.url.render_as_string(hide_password=True)


def describe(exc: BaseException) -> str:
    """One short line for a log: the driver's message, never the statement's values."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else "no message"
    return f"{type(inner).__name__}: {text[:300]}"


def _unreachable(exc: SQLAlchemyError) -> bool:
    """Whether ``exc`` says the database is away or busy, not that it refused the data."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


class Writer:
    """Writes batches of rows into one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        self._jobs = _Upsert(_upsert_jobs(dialect), jobs, engine.dialect)
        self._attempts = _Upsert(_upsert_attempts(dialect), attempts, engine.dialect)

    def write(self, rows: Rows) -> int:
        """Write ``rows``; how many were refused and skipped (each logged). Raises
        :class:`HistoryUnavailable` when the database cannot be reached."""
        job_rows, attempt_rows = list(rows.jobs.values()), list(rows.attempts.values())
        try:
            with self.engine.begin() as conn:
                self._execute(conn, job_rows, attempt_rows)
            return 0
        except SQLAlchemyError as exc:
            if _unreachable(exc):
                raise HistoryUnavailable(describe(exc)) from None
            log.warning("the database refused a batch (%s): writing it row by row", describe(exc))
        skipped = 0
        for job_row in job_rows:
            skipped += self._one(job_row, None)
        for attempt_row in attempt_rows:
            skipped += self._one(None, attempt_row)
        return skipped

    def _one(self, job_row: dict[str, Any] | None, attempt_row: dict[str, Any] | None) -> int:
        try:
            with self.engine.begin() as conn:
                self._execute(
                    conn,
                    [job_row] if job_row else [],
                    [attempt_row] if attempt_row else [],
                )
            return 0
        except SQLAlchemyError as exc:
            if _unreachable(exc):
                raise HistoryUnavailable(describe(exc)) from None
            what = (
                f"job {job_row['id']}"
                if job_row
                else f"attempt {attempt_row['attempt'] if attempt_row else '?'} of job "
                f"{attempt_row['job_id'] if attempt_row else '?'}"
            )
            log.error("skipped the archive row of %s: the database refused it (%s)", what,
                      describe(exc))  # fmt: skip
            return 1

    def _execute(
        self, conn: Connection, job_rows: Sequence[dict[str, Any]], attempt_rows: Sequence[Any]
    ) -> None:
        if job_rows:
            conn.exec_driver_sql(self._jobs.sql, self._jobs.params(job_rows))
        if attempt_rows:
            conn.exec_driver_sql(self._attempts.sql, self._attempts.params(attempt_rows))

    def prune(self, days: float, now: datetime | None = None) -> tuple[int, int]:
        """Delete jobs last changed, and attempts ended, more than ``days`` ago: how many
        of each."""
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=days)
        with self.engine.begin() as conn:
            gone_jobs = conn.execute(jobs.delete().where(jobs.c.changed_at < cutoff)).rowcount
            gone_attempts = conn.execute(
                attempts.delete().where(attempts.c.finished_at < cutoff)
            ).rowcount
        return gone_jobs, gone_attempts


class _Upsert:
    """An upsert compiled once for the engine's dialect, executed through SQLAlchemy
    Core's ``exec_driver_sql``: each row's values go to the driver's executemany through
    their column's bind processor (what ``execute`` does per row, without its per-row
    bookkeeping, which cost more than the database's own insert)."""

    def __init__(self, stmt: Any, table: Table, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = compiled.string
        names = list(compiled.positiontup or compiled.bind_names.values())
        strange = [name for name in names if name not in table.c]
        if strange:  # a literal would need its value in every row: render it inline
            raise ValueError(f"upsert of {table.name} binds {strange}, which are no columns")
        self._positional = compiled.positiontup is not None
        self._names = names
        self._values = itemgetter(*names)
        self._processors = [
            (index, processor)
            for index, name in enumerate(names)
            if (processor := _processor(table, name, dialect))
        ]

    def params(self, rows: Sequence[dict[str, Any]]) -> list[Any]:
        """``rows`` (dicts by column name) as the driver takes them."""
        if not self._processors:
            return [self._values(row) for row in rows] if self._positional else list(rows)
        out: list[Any] = []
        for row in rows:
            values = list(self._values(row))
            for index, processor in self._processors:
                values[index] = processor(values[index])
            named = not self._positional
            out.append(dict(zip(self._names, values, strict=True)) if named else tuple(values))
        return out


def _processor(table: Table, name: str, dialect: Dialect) -> Any:
    """The column's bind processor for ``dialect``. SQLite's for times formats them in
    Python, a call per value; ``datetime.isoformat`` writes the same text in C, so it is
    used instead when it does (checked here, on a sample)."""
    column_type = table.c[name].type
    processor = column_type.dialect_impl(dialect).bind_processor(dialect)
    if processor is not None and isinstance(column_type, DateTime):
        sample = datetime(2001, 2, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
        if processor(sample) == _time_text(sample) and processor(None) is None:
            return _time_text
    return processor


def _time_text(value: datetime | None) -> str | None:
    return None if value is None else value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _upsert_jobs(dialect: Any) -> Any:
    stmt = dialect.insert(jobs)
    new = stmt.excluded
    keep = {name: func.coalesce(new[name], jobs.c[name]) for name in DETAILS}
    latest = {name: new[name] for name in ("status", "attempts", "changed_at")}
    latest.update(event_ms=new.event_ms, event_seq=new.event_seq, queue=new.queue)
    blank: Any = literal_column("''")  # inline: a bound literal would need a value in every row
    latest["job_class"] = func.coalesce(func.nullif(new.job_class, blank), jobs.c.job_class)
    newer = or_(
        new.event_ms > jobs.c.event_ms,
        and_(new.event_ms == jobs.c.event_ms, new.event_seq >= jobs.c.event_seq),
    )
    return stmt.on_conflict_do_update(
        index_elements=[jobs.c.id], set_={**keep, **latest}, where=newer
    )


def _upsert_attempts(dialect: Any) -> Any:
    stmt = dialect.insert(attempts)
    new = stmt.excluded
    fill = ("error_type", "error_message", "traceback", "started_at", "duration_ms", "worker")
    keep = {name: func.coalesce(new[name], attempts.c[name]) for name in fill}
    latest = {name: new[name] for name in ("outcome", "reason", "finished_at", "job_class")}
    return stmt.on_conflict_do_update(
        index_elements=[attempts.c.job_id, attempts.c.attempt], set_={**keep, **latest}
    )
