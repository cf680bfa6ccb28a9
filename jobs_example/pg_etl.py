"""The FastAPI + PostgreSQL system's ETL, in its own words: a ``DataImportJob`` that the
scheduler dispatches on weekdays at 01:00 (the document's
``@scheduler.scheduled_job('cron', day_of_week='mon-fri', hour=1)``, declared on the
class as ``cron("0 1 * * mon-fri")``) with ``source="external_api"`` and
``target="data_warehouse"`` on the ``etl`` queue.

Its three steps are jobs of their own, run as a chain (the document's "for complex ETL
pipelines, you can chain jobs"): ``ExtractRows`` reads the source, ``TransformRows``
cleans what it read, ``LoadRows`` upserts the result into the target table of the app's
PostgreSQL (``JOBKIT_HISTORY_URL``). Each step takes the one before's result, is retried
on its own, and shows in ``GET /job-status/{id}``; ``DataImportJob``'s result names them.
This module imports no web framework.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

import jobkit
from jobkit import BaseJob, Retry, cron
from jobs_example.pg_jobs import IDENTIFIER, database_engine

QUEUE = "etl"

# what the "external_api" source answers: the amounts as its API gives them, messy
_SOURCES: dict[str, list[dict[str, Any]]] = {
    "external_api": [
        {"id": 1, "amount": "12.50", "currency": "eur"},
        {"id": 2, "amount": 7, "currency": "USD"},
        {"id": 3, "amount": "n/a", "currency": "eur"},  # no amount: dropped by transform
        {"id": 4, "amount": "0.99", "currency": " gbp "},
    ],
}


class ImportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(pattern=IDENTIFIER)
    target: str = Field(pattern=IDENTIFIER)

    @field_validator("target")
    @classmethod
    def _not_own(cls, value: str) -> str:
        if value.lower().startswith(("jobkit_", "job_statuses", "pg_")):
            raise ValueError("the job history's tables are no import target")
        return value


class DataImportJob(BaseJob[ImportParams]):
    """Starts the import's chain: extract, transform, load."""

    queue = QUEUE
    schedule = cron(
        "0 1 * * mon-fri",
        params={"source": "external_api", "target": "data_warehouse"},
        name="nightly-data-import",
    )

    def perform(self) -> dict[str, Any]:
        flow = jobkit.chain(
            ExtractRows.s(source=self.params.source),
            TransformRows.s(),
            LoadRows.s(target=self.params.target),
        ).dispatch()
        return {"steps": [job.id for job in flow.jobs]}


class SourceParams(BaseModel):
    source: str = Field(pattern=IDENTIFIER)


class ExtractRows(BaseJob[SourceParams]):
    """1. Extract data from source."""

    queue = QUEUE
    retry = Retry(max_attempts=5, base=2.0)

    def perform(self) -> list[dict[str, Any]]:
        if self.params.source not in _SOURCES:
            raise LookupError(f"no source {self.params.source!r}")
        return _SOURCES[self.params.source]


class RowsParams(BaseModel):
    rows: list[dict[str, Any]]


class TransformRows(BaseJob[RowsParams]):
    """2. Transform data: amounts in cents, currencies in ISO case, bad rows dropped."""

    queue = QUEUE

    def perform(self) -> list[dict[str, Any]]:
        clean = []
        for row in self.params.rows:
            try:
                cents = round(float(row["amount"]) * 100)
            except (KeyError, TypeError, ValueError):
                continue
            currency = str(row.get("currency", "")).strip().upper()
            clean.append({"id": int(row["id"]), "amount_cents": cents, "currency": currency})
        return clean


class LoadParams(BaseModel):
    rows: list[dict[str, Any]]  # the transform's result
    target: str = Field(pattern=IDENTIFIER)


class LoadRows(BaseJob[LoadParams]):
    """3. Load data into target: an upsert by id, so a step run twice loads once."""

    queue = QUEUE
    retry = Retry(max_attempts=5, base=2.0)

    def perform(self) -> str:
        from sqlalchemy import text

        engine = database_engine()
        table = engine.dialect.identifier_preparer.quote_identifier(self.params.target)
        with engine.begin() as conn:
            conn.execute(text(
                f"CREATE TABLE IF NOT EXISTS public.{table} (id bigint PRIMARY KEY, "
                "amount_cents bigint NOT NULL, currency text NOT NULL, "
                "loaded_at timestamptz NOT NULL DEFAULT now())"
            ))  # fmt: skip
            for row in self.params.rows:
                conn.execute(
                    text(
                        f"INSERT INTO public.{table} (id, amount_cents, currency) "
                        "VALUES (:id, :amount_cents, :currency) ON CONFLICT (id) DO UPDATE "
                        "SET amount_cents = EXCLUDED.amount_cents, "
                        "currency = EXCLUDED.currency, loaded_at = now()"
                    ),
                    row,
                )
        return f"{len(self.params.rows)} rows loaded into public.{self.params.target}"
