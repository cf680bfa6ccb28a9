"""Writing archive rows: batch upserts in one transaction, a row at a time when the
database refuses the batch, and retention.

Upserts (:mod:`jobkit.archive.upserts`) make a batch written twice (re-delivered after
an archiver died before its ack) harmless: a job row is keyed by id, an attempt row by
(job id, attempt), and an older event never overwrites a newer one.

A batch the database refuses (a value it cannot store, say) is written again a row at a
time; each row still refused is logged and skipped, and the rest goes in. A database
that cannot be reached raises :class:`HistoryUnavailable`: the caller keeps its batch
unacknowledged in Redis and tries again later.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from jobkit.archive import DEFAULT_FILE
from jobkit.archive.rows import Rows
from jobkit.archive.schema import attempts, jobs
from jobkit.archive.upserts import Upsert
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
            # first: switching to WAL takes a lock, and archivers starting together on a
            # new file would otherwise fail it at once ("database is locked")
            cursor.execute("PRAGMA busy_timeout=5000")  # several archivers, one file
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # 64 MiB of pages (default 2): upserts land all over the id index (ids are
            # random), and a cache that holds it saves reads from the OS
            cursor.execute("PRAGMA cache_size=-65536")
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


def unreachable(exc: SQLAlchemyError) -> bool:
    """Whether ``exc`` says the database is away or busy, not that it refused the data."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


class Writer:
    """Writes batches of rows into one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._jobs = Upsert(jobs, engine.dialect)
        self._attempts = Upsert(attempts, engine.dialect)

    def write(self, rows: Rows) -> int:
        """Write ``rows``; how many were refused and skipped (each logged). Raises
        :class:`HistoryUnavailable` when the database cannot be reached."""
        job_rows, attempt_rows = list(rows.jobs.values()), list(rows.attempts.values())
        try:
            with self.engine.begin() as conn:
                self._execute(conn, job_rows, attempt_rows)
            return 0
        except SQLAlchemyError as exc:
            if unreachable(exc):
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
            if unreachable(exc):
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
        self._jobs.run(conn, job_rows)
        self._attempts.run(conn, attempt_rows)

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
