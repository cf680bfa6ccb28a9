"""The FastAPI + PostgreSQL system's job (``jobs_example.pg_system`` dispatches it):
``TruncateTable``, as that document has it, truncating a table of the app's PostgreSQL
(the database ``JOBKIT_HISTORY_URL`` names: the one the job statuses live in too).

The document's cron idea is declared on the class: every night at 02:00 the scheduler
(``jobkit scheduler -A jobs_example``) enqueues the document's
``TruncateTable.dispatch(schema="public", table_name="daily_stats", queue="low")``.

The table's name is data from a request: it is checked against a strict identifier rule
(and never a system schema or jobkit's own tables), then quoted, so no value can change
the statement. This module imports no web framework.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

import jobkit
from jobkit import BaseJob, Retry, cron

if TYPE_CHECKING:  # imported when a job runs: `-A jobs_example` stays light for every worker
    from sqlalchemy import Engine

# a PostgreSQL identifier without quoting's help: a letter or _, then letters, digits, _
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
# never a target: the catalogs, and the job history this system reports from
_SYSTEM_SCHEMAS = ("pg_", "information_schema")
_OWN_TABLES = ("jobkit_", "job_statuses")
_MISSING = {"42P01", "3F000"}  # PostgreSQL: undefined table, undefined schema


class NoSuchTable(Exception):
    """The table to truncate is not there (waiting will not make it appear)."""


@functools.cache
def _engine(url: str) -> Engine:
    from sqlalchemy import create_engine

    # parameters never in an error's text: they are request data
    return create_engine(url, pool_pre_ping=True, pool_size=1, hide_parameters=True)


def database_engine() -> Engine:
    """The app's PostgreSQL (``JOBKIT_HISTORY_URL``), one engine per process."""
    url = jobkit.get_settings().history_url
    if not url or not url.startswith("postgresql"):
        raise jobkit.ConfigurationError(
            "JOBKIT_HISTORY_URL must name the PostgreSQL database of the job system"
        )
    return _engine(url)


class TruncateTable(BaseJob):
    """Empties ``schema.table_name``; its result says so, in the document's words."""

    queue = "low"
    # exponential back-off, as the document's retry policy; a missing table fails at once
    retry = Retry(max_attempts=3, base=1.0, factor=2.0, give_up_on=(NoSuchTable,))
    timeout = 300.0
    schedule = cron(
        "0 2 * * *",
        params={"schema": "public", "table_name": "daily_stats"},
        name="nightly-daily-stats",
    )

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        schema_: str = Field(alias="schema", pattern=IDENTIFIER)
        table_name: str = Field(pattern=IDENTIFIER)

        @field_validator("schema_")
        @classmethod
        def _not_system(cls, value: str) -> str:
            if value.lower().startswith(_SYSTEM_SCHEMAS):
                raise ValueError("a system schema cannot be truncated")
            return value

        @field_validator("table_name")
        @classmethod
        def _not_own(cls, value: str) -> str:
            if value.lower().startswith(_OWN_TABLES):
                raise ValueError("the job history's tables cannot be truncated")
            return value

    params: Params  # BaseJob types it BaseModel: narrowed for the reads below

    def perform(self) -> str:
        from sqlalchemy import text
        from sqlalchemy.exc import ProgrammingError

        schema, table = self.params.schema_, self.params.table_name
        engine = database_engine()
        quote = engine.dialect.identifier_preparer.quote_identifier
        try:
            with engine.begin() as conn:
                conn.execute(text(f"TRUNCATE TABLE {quote(schema)}.{quote(table)}"))
        except ProgrammingError as exc:
            if getattr(exc.orig, "sqlstate", None) in _MISSING:
                raise NoSuchTable(f"there is no table {schema}.{table}") from None
            raise
        return f"Table {schema}.{table} truncated successfully"
