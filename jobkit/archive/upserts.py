"""The archive's two upserts, compiled once per database and run without SQLAlchemy's
per-row parameter handling (which cost more than the databases' own inserts).

A job row is only overwritten by a row whose event is not older than the one it holds
(``event_ms``, ``event_seq``), so an old batch taken over late never undoes a newer
state; columns a batch does not know (None) keep what is stored.

How a batch reaches the database:

* SQLite: the compiled ``INSERT ... ON CONFLICT DO UPDATE`` goes to the driver's
  ``executemany`` with one tuple per row (SQLite runs in the process: a statement per
  row costs no round trip).
* PostgreSQL: the rows are copied (``COPY ... FROM STDIN``, the driver's own bulk path,
  through the SQLAlchemy connection's DBAPI connection) into a temporary table emptied at
  commit, then one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` moves them: two
  statements per batch, where ``executemany`` sends and plans one per row. A batch holds
  each job (and attempt) once, as ``ON CONFLICT DO UPDATE`` requires of one statement.
  A role refused temporary tables gets ``executemany`` of the one-row upsert instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    Table,
    and_,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from jobkit.archive.rows import DETAILS
from jobkit.archive.schema import attempts, jobs
from jobkit.archive.times import converter

log = logging.getLogger("jobkit.archiver")

_CAN_STAGE = "SELECT has_database_privilege(current_database(), 'TEMPORARY')"

_ATTEMPT_FILL = ("error_type", "error_message", "traceback", "started_at", "duration_ms", "worker")
_ATTEMPT_LATEST = ("outcome", "reason", "finished_at", "job_class")


class Upsert:
    """One table's upsert for one database: :meth:`run` writes a batch of rows."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self.table = table
        names = [column.name for column in table.c]
        self._values = itemgetter(*names)
        self._copied = dialect.name == "postgresql"
        if self._copied:
            staging = Table(
                f"{table.name}_in", MetaData(), *(Column(c.name, c.type) for c in table.c)
            )
            insert: Any = postgresql.insert(table).from_select(names, select(staging))
            self._stage = (
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging.name} "
                f"(LIKE {table.name}) ON COMMIT DELETE ROWS"
            )
            self._copy = f"COPY {staging.name} ({', '.join(names)}) FROM STDIN"
            plain = _on_conflict(table, postgresql.insert(table)).compile(dialect=dialect)
            self._plain = plain.string  # one row per statement, for a role without TEMP
            self._can_stage: bool | None = None  # asked at the first batch
        else:
            insert = sqlite.insert(table)
        compiled = _on_conflict(table, insert).compile(dialect=dialect)
        self.sql = compiled.string
        if not self._copied and compiled.positiontup != names:  # bound by position
            raise ValueError(f"the upsert of {table.name} binds {compiled.positiontup}")
        self._names = names
        self._processors = [
            (index, convert)
            for index, name in enumerate(names)
            if (convert := converter(table.c[name].type, dialect))
        ]

    def run(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert ``rows`` (dicts by column name, each key once) in ``conn``'s transaction."""
        if not rows:
            return
        values = [self._values(row) for row in rows]
        if self._processors:
            values = [self._processed(row) for row in values]
        if self._copied and self._staging(conn):
            conn.exec_driver_sql(self._stage)
            self._copy_in(conn, values)
            conn.exec_driver_sql(self.sql)
        elif self._copied:
            named = [dict(zip(self._names, row, strict=True)) for row in values]
            conn.exec_driver_sql(self._plain, named)
        else:
            conn.exec_driver_sql(self.sql, values)

    def _staging(self, conn: Connection) -> bool:
        """Whether the database lets this role make the staging table (TEMPORARY is
        granted to everyone unless revoked); asked once."""
        if self._can_stage is None:
            self._can_stage = bool(conn.exec_driver_sql(_CAN_STAGE).scalar())
            if not self._can_stage:
                log.warning(
                    "the history database refuses this role temporary tables: %s rows go "
                    "one statement each, slower (GRANT TEMPORARY ON DATABASE to speed it up)",
                    self.table.name,
                )
        return self._can_stage

    def _copy_in(self, conn: Connection, values: list[Any]) -> None:
        """COPY ``values`` into the staging table. The driver's errors are raised as
        SQLAlchemy's (as ``exec_driver_sql`` would), so callers tell refused rows from a
        database that is away the same way for every statement."""
        dbapi = conn.dialect.loaded_dbapi
        try:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(self._copy) as copy:
                for row in values:
                    copy.write_row(row)
        except dbapi.Error as exc:
            raise DBAPIError.instance(
                self._copy, None, exc, dbapi.Error, dialect=conn.dialect
            ) from None

    def _processed(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        out = list(row)
        for index, processor in self._processors:
            out[index] = processor(out[index])
        return tuple(out)


def _on_conflict(table: Table, stmt: Any) -> Any:
    new = stmt.excluded
    if table is attempts:
        keep = {name: func.coalesce(new[name], attempts.c[name]) for name in _ATTEMPT_FILL}
        latest = {name: new[name] for name in _ATTEMPT_LATEST}
        return stmt.on_conflict_do_update(
            index_elements=[attempts.c.job_id, attempts.c.attempt], set_={**keep, **latest}
        )
    keep = {name: func.coalesce(new[name], jobs.c[name]) for name in DETAILS}
    latest = {name: new[name] for name in ("status", "attempts", "changed_at", "queue")}
    latest.update(event_ms=new.event_ms, event_seq=new.event_seq)
    blank: Any = literal_column("''")  # inline: a bound literal would need a value per row
    latest["job_class"] = func.coalesce(func.nullif(new.job_class, blank), jobs.c.job_class)
    newer = or_(
        new.event_ms > jobs.c.event_ms,
        and_(new.event_ms == jobs.c.event_ms, new.event_seq >= jobs.c.event_seq),
    )
    return stmt.on_conflict_do_update(
        index_elements=[jobs.c.id], set_={**keep, **latest}, where=newer
    )
