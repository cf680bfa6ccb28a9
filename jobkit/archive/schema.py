"""The history archive's tables: what ``jobkit archiver`` writes and users may query.

Two tables, created and upgraded by jobkit (:func:`ensure_schema`; ``jobkit archiver
--upgrade`` runs it alone), their version kept in ``jobkit_schema``. Times are UTC
(PostgreSQL: ``timestamptz``; SQLite: ISO text without the zone).

``jobkit_jobs``: one row per job, upserted by id as its events are archived.

==================  ==========================================================================
column              holds
==================  ==========================================================================
``id``              the job id, ``<queue>:<key>`` (primary key)
``queue``           its queue
``job_class``       the job class's registered name (``module.Class`` or its ``name``)
``params``          the params as JSON text (None when the job's record had expired in Redis
                    before it was archived: then only what the events say is known)
``status``          the status of its last archived event: scheduled, queued, running,
                    succeeded, failed, dead, cancelled
``attempts``        attempts started so far
``result``          the result as JSON text, for a job that succeeded
``error_type``      the last error's exception type
``error_message``   the last error's message
``traceback``       the last error's traceback
``reason``          why it ended as it did (dead-letter or cancel reason), when said
``worker``          the worker of its last attempt
``created_at``      when it was dispatched
``started_at``      when its last attempt started
``finished_at``     when it reached a final state (succeeded, dead, cancelled)
``duration_ms``     how long its last attempt ran, in milliseconds
``changed_at``      the time of its last archived event: "newest first" orders by this
``event_ms``        the stream id of its last archived event (ms part) ...
``event_seq``       ... and sequence part: an older event re-delivered never overwrites a newer
==================  ==========================================================================

``jobkit_attempts``: one row per attempt that ended, keyed by (``job_id``, ``attempt``).

==================  ==========================================================================
``job_id``          the job id (no foreign key: retention prunes each table on its own)
``attempt``         the attempt's number, 1 for the first
``queue``           its queue
``job_class``       its job class
``worker``          the worker that ran it
``outcome``         how it ended: succeeded, retrying, dead, cancelled (the status it led to)
``reason``          why, when said (timeout, crash, lease lost, ...)
``error_type``      its error's type (each failed attempt's event carries it)
``error_message``   its error's message: whole when the job's record still held this
                    attempt's error as it was archived, else the first 300 characters
``traceback``       its error's traceback, when the job's record still held this attempt's
                    error as it was archived
``started_at``      when it started
``finished_at``     when it ended
``duration_ms``     how long it ran, in milliseconds
==================  ==========================================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from jobkit.errors import ConfigurationError

SCHEMA_VERSION = 1

metadata = MetaData()

jobs = Table(
    "jobkit_jobs",
    metadata,
    Column("id", String(512), primary_key=True),
    Column("queue", String(255), nullable=False),
    Column("job_class", String(512), nullable=False, default=""),
    Column("params", Text),
    Column("status", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("result", Text),
    Column("error_type", Text),
    Column("error_message", Text),
    Column("traceback", Text),
    Column("reason", Text),
    Column("worker", String(512)),
    Column("created_at", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("duration_ms", BigInteger),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("event_ms", BigInteger, nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    Index("ix_jobkit_jobs_changed", "changed_at"),
    Index("ix_jobkit_jobs_status_changed", "status", "changed_at"),
    Index("ix_jobkit_jobs_queue_changed", "queue", "changed_at"),
    Index("ix_jobkit_jobs_class_changed", "job_class", "changed_at"),
    Index("ix_jobkit_jobs_created", "created_at"),
)

attempts = Table(
    "jobkit_attempts",
    metadata,
    Column("job_id", String(512), primary_key=True),
    Column("attempt", Integer, primary_key=True, autoincrement=False),
    Column("queue", String(255), nullable=False),
    Column("job_class", String(512), nullable=False, default=""),
    Column("worker", String(512)),
    Column("outcome", String(32), nullable=False),
    Column("reason", Text),
    Column("error_type", Text),
    Column("error_message", Text),
    Column("traceback", Text),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", BigInteger),
    Index("ix_jobkit_attempts_finished", "finished_at"),
    Index("ix_jobkit_attempts_worker_finished", "worker", "finished_at"),
)

schema_version = Table(
    "jobkit_schema",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
)

RACE_TRIES = 5  # attempts at creating the schema while other processes may be at it too
SCHEMA_LOCK = 0x6A6F626B6974  # "jobkit": the advisory lock PostgreSQL's creators take turns on

# version -> the step that upgrades a database at the version before it to this one
UPGRADES: dict[int, Callable[[Connection], None]] = {}


def ensure_schema(engine: Engine) -> int:
    """Create the tables that are missing and upgrade an older schema to
    :data:`SCHEMA_VERSION`, in one transaction; the version now. A database written by a
    newer jobkit is refused (:class:`~jobkit.errors.ConfigurationError`), never altered.

    Archivers started together may all find the tables missing. On PostgreSQL they take
    turns (a transaction-scoped advisory lock); on SQLite the one that loses the race
    finds what the other created and tries again, as it would on any database."""
    for attempt in range(1, RACE_TRIES + 1):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
                return _ensure(conn)
        except (IntegrityError, OperationalError, ProgrammingError) as exc:
            raced = isinstance(exc, IntegrityError) or "already exists" in str(exc.orig)
            if not raced or attempt == RACE_TRIES:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _ensure(conn: Connection) -> int:
    """The tables made or upgraded in ``conn``'s transaction; the version now."""
    metadata.create_all(conn)
    found = conn.execute(select(schema_version.c.version)).scalars().all()
    if not found:
        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
        return SCHEMA_VERSION
    current = max(found)
    if current > SCHEMA_VERSION:
        raise ConfigurationError(
            f"the history database has schema version {current}, newer than this "
            f"jobkit's {SCHEMA_VERSION}: upgrade jobkit"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        UPGRADES[version](conn)
    if current < SCHEMA_VERSION:
        conn.execute(schema_version.delete())
        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
    return SCHEMA_VERSION
