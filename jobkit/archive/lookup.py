"""Reading the history archive: a job Redis no longer holds (``get_job``, ``jobkit job``,
``GET /jobs/{id}``), its attempts, and pages of archived jobs with the live listing's
filters and page shape (``jobkit jobs --archived``, ``GET /jobs?archived=1``).

**Nothing here is on the hot path.** A handle asks the archive only after Redis said the
job is unknown, and only when a history database is configured (``JOBKIT_HISTORY_URL``)
or the default SQLite file (``history.db`` in the data directory) exists. SQLAlchemy is
imported then, not by ``import jobkit``. A database that does not exist (no archiver ever
ran) means no archive: the job stays unknown. SQLite is opened read-only, so a reader
never creates the file nor writes to it; a file with no jobkit tables reads as empty.

**Newest first, by ``changed_at``** (the time of a job's last archived event: when it
ended, for a finished job), ties by id. A page's position is the last row's
``changed_at`` and how many rows of that very instant were shown: the next page reads
from that instant on, past those rows, so paging never repeats a row (and the cursor
stays short whatever the ids: :mod:`jobkit.ops.cursor`). A job archived again meanwhile
(a later event) moves to the top: it is not shown twice, and if it had not been listed
yet it is missed by this pass.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobkit.archive import DEFAULT_FILE, require
from jobkit.connection import get_settings
from jobkit.errors import HistoryUnavailable
from jobkit.models import JobError, JobRecord, Source, Status
from jobkit.redact import MASK, is_secret_argument

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Connection, Engine, Row

    from jobkit.settings import Settings

# archived statuses that are not Status values: what each reports
_STATUS_ALIASES = {"failed": Status.RETRYING}
_STATUSES = {s.value: s for s in Status}

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_lock = threading.Lock()
_engines: dict[str, Engine] = {}


def history_url(settings: Settings | None = None) -> str | None:
    """The history database to read: ``JOBKIT_HISTORY_URL``, or the default SQLite file
    in the data directory; None when there is none to read (a SQLite file not there)."""
    settings = settings or get_settings()
    url = settings.history_url
    if not url:
        default = settings.data_dir / DEFAULT_FILE
        if not default.is_file():
            return None
        require("reading the history archive")
        return f"sqlite:///{default}"
    require("JOBKIT_HISTORY_URL")
    path = _sqlite_path(url)
    return None if path is not None and not path.is_file() else url


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for any other database, or an in-memory one)."""
    if not url.lower().startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def _engine(url: str) -> Engine:
    """One engine per URL for the process (SQLite: read-only, a connection per use)."""
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        import sqlite3

        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        path = _sqlite_path(url)
        if path is not None:
            uri = f"{path.resolve().as_uri()}?mode=ro"
            engine = create_engine(
                "sqlite://",
                creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
                poolclass=NullPool,
            )
        else:
            # parameters never in an error's text: they are job data
            engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
        _engines[url] = engine
        return engine


@contextmanager
def _reading(url: str) -> Iterator[Connection | None]:
    """A connection to the archive at ``url``; None when it has no jobkit tables yet.
    Database errors are raised as :class:`HistoryUnavailable`, naming the database with
    its password masked and quoting no SQL parameter."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from jobkit.archive.schema import jobs

    try:
        with _engine(url).connect() as conn:
            yield conn if inspect(conn).has_table(jobs.name) else None
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise HistoryUnavailable(f"history database {_shown(url)}: {_first_line(cause)}") from None
    except ImportError as exc:  # the URL names a driver that is not installed
        raise HistoryUnavailable(
            f"history database {_shown(url)}: its driver is not installed ({exc})"
        ) from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


def _shown(url: str) -> str:
    """``url`` as a message may show it: its password and secret-looking query values
    masked (the whole URL when it does not parse)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return MASK
    query = {k: MASK if is_secret_argument(k) else v for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


def archived_record(job_id: str, settings: Settings | None = None) -> JobRecord | None:
    """The job as the archive last saw it (``source`` ARCHIVE); None when there is no
    archive or it does not hold the job."""
    url = history_url(settings)
    if url is None:
        return None
    from sqlalchemy import select

    from jobkit.archive.schema import jobs

    with _reading(url) as conn:
        row = (
            None if conn is None else conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        )
    return None if row is None else _record(row)


@dataclass(frozen=True)
class ArchivedAttempt:
    """One attempt of an archived job: who ran it, how it ended, when, for how long."""

    attempt: int
    worker: str | None
    outcome: str  # the status it led to: succeeded, retrying, dead, cancelled
    reason: str | None
    error: JobError | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "worker": self.worker,
            "outcome": self.outcome,
            "reason": self.reason,
            "error": None if self.error is None else str(self.error),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_ms": self.duration_ms,
        }


def archived_attempts(job_id: str, settings: Settings | None = None) -> list[ArchivedAttempt]:
    """The archived attempts of a job, first first (empty without an archive)."""
    url = history_url(settings)
    if url is None:
        return []
    from sqlalchemy import select

    from jobkit.archive.schema import attempts as t

    query = select(t).where(t.c.job_id == job_id).order_by(t.c.attempt)
    with _reading(url) as conn:
        rows = [] if conn is None else conn.execute(query).all()
    return [_attempt(r) for r in rows]


def _attempt(r: Row[Any]) -> ArchivedAttempt:
    return ArchivedAttempt(
        attempt=r.attempt,
        worker=r.worker,
        outcome=r.outcome,
        reason=r.reason,
        error=_error(r.error_type, r.error_message, r.traceback),
        started_at=_utc(r.started_at),
        finished_at=_utc(r.finished_at),
        duration_ms=r.duration_ms,
    )


def archived_rows(
    statuses: frozenset[Status],
    queues: tuple[str, ...],
    name: str | None,
    since_ms: int | None,
    after: tuple[int, int] | None,
    limit: int,
    settings: Settings | None = None,
) -> tuple[list[tuple[JobRecord, int]], tuple[int, int] | None]:
    """Up to ``limit`` archived jobs matching the filters, newest change first, each with
    the time (ms) it is listed by, strictly after the position ``after`` (see the module
    doc); and the position after them (None: nothing more)."""
    url = history_url(settings)
    if url is None:
        return [], None
    from sqlalchemy import select

    from jobkit.archive.schema import jobs as t

    where: list[ColumnElement[bool]] = []
    if statuses:
        where.append(t.c.status.in_(_stored(statuses)))
    if queues:
        where.append(t.c.queue.in_(queues))
    if name is not None:
        where.append(t.c.job_class == name)
    if since_ms is not None:
        where.append(t.c.changed_at >= _datetime(since_ms * 1000))
    skip = 0
    if after is not None:
        where.append(t.c.changed_at <= _datetime(after[0]))
        skip = after[1]
    select_ = select(t).where(*where).order_by(t.c.changed_at.desc(), t.c.id.desc())
    with _reading(url) as conn:
        query = select_.offset(skip).limit(limit + 1)
        rows = [] if conn is None else conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    listed = [(_record(r), _micros(_utc(r.changed_at)) // 1000) for r in rows]
    if not more:
        return listed, None
    # the next page starts at the last row's instant, past the rows of it shown so far
    at = _micros(_utc(rows[-1].changed_at))
    shown = sum(1 for r in rows if _micros(_utc(r.changed_at)) == at)
    if after is not None and after[0] == at:
        shown += skip
    return listed, (at, shown)


def _stored(statuses: frozenset[Status]) -> list[str]:
    """The archived status texts that report as any of ``statuses``."""
    wanted = {s.value for s in statuses}
    wanted |= {text for text, status in _STATUS_ALIASES.items() if status in statuses}
    return sorted(wanted)


def _record(row: Row[Any]) -> JobRecord:
    status = _STATUSES.get(row.status) or _STATUS_ALIASES.get(row.status, Status.UNKNOWN)
    return JobRecord(
        id=row.id,
        name=row.job_class,
        queue=row.queue,
        lane=row.queue,
        status=status,
        params_json=row.params or "",
        priority=0,
        attempts=row.attempts,
        crashes=0,
        max_attempts=0,
        timeout=0.0,
        worker=row.worker,
        created_at=_utc(row.created_at),
        started_at=_utc(row.started_at),
        finished_at=_utc(row.finished_at),
        due_at=None,
        result_json=row.result,
        error=_error(row.error_type, row.error_message, row.traceback),
        # a status this jobkit has no name for is said in the reason, not lost
        reason=row.reason if status is not Status.UNKNOWN else (row.reason or row.status),
        source=Source.ARCHIVE,
    )


def _error(kind: str | None, message: str | None, traceback: str | None) -> JobError | None:
    if not kind and not message:
        return None
    return JobError(kind or "", message or "", traceback or "")


def _utc(value: datetime | None) -> datetime | None:
    """A time read back: SQLite gives it without its zone, and it is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _micros(value: datetime | None) -> int:
    if value is None:
        return 0
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)
