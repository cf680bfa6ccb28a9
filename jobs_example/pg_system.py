"""The FastAPI + PostgreSQL job system, in its own words::

    POST /create-jobs/        {"schema": "public", "table_name": "users"}
                              -> {"job_id", "status": "enqueued"}
    GET  /job-status/{job_id} -> {"id", "status", "result", "created_at", "updated_at"}

``status`` is ``queued | started | completed | failed``. Job statuses live in PostgreSQL:
``jobkit archiver`` writes every job's history there (``jobkit_jobs``), this app makes the
``job_statuses`` view over it at start, and ``GET /job-status`` answers from the archive
once Redis has forgotten a job (``X-Jobkit-Source: archive``). Run it all with::

    JOBKIT_HISTORY_URL=postgresql+psycopg://user:pw@localhost/db python -m jobs_example.pg_system

(the API on :8000, a worker on high,default,low,etl, the archiver and the scheduler). The
database is the one ``JOBKIT_HISTORY_URL`` names: the archive, the view and the tables
the jobs truncate (this app makes ``public.users`` and ``public.daily_stats`` there, with
a few rows, when they are missing).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal

import redis
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool

import jobkit
from jobkit.archive.schema import ensure_schema
from jobkit.backend.keys import queue_of
from jobkit.errors import HistoryUnavailable
from jobkit.models import JobRecord, Source
from jobs_example import launch
from jobs_example.pg_jobs import IDENTIFIER, TruncateTable, database_engine
from jobs_example.refusals import BadInput, dispatch, parse

# jobkit's statuses in the document's words (the view says the same in SQL)
STATUSES = {
    jobkit.Status.SCHEDULED: "queued",
    jobkit.Status.QUEUED: "queued",
    jobkit.Status.RETRYING: "queued",
    jobkit.Status.RUNNING: "started",
    jobkit.Status.SUCCEEDED: "completed",
    jobkit.Status.DEAD: "failed",
    jobkit.Status.CANCELLED: "failed",
}
QUEUES = "high,default,low,etl"
VIEW_LOCK = 0x6A6F62766965  # an advisory lock: apps started together make the view in turn
# The archive's status texts ('failed': an attempt failed and the job will retry) in the
# document's words; the view answers `SELECT * FROM job_statuses` as the document shows.
VIEW = """
CREATE OR REPLACE VIEW job_statuses AS
SELECT id,
       job_class,
       queue,
       CASE status
           WHEN 'running' THEN 'started'
           WHEN 'succeeded' THEN 'completed'
           WHEN 'dead' THEN 'failed'
           WHEN 'cancelled' THEN 'failed'
           ELSE 'queued'
       END AS status,
       result,
       CASE WHEN error_type IS NULL THEN NULL ELSE error_type || ': ' || error_message END
           AS error,
       attempts,
       created_at,
       changed_at AS updated_at
FROM jobkit_jobs
"""
DEMO_TABLES = {
    "users": "CREATE TABLE IF NOT EXISTS public.users (id serial PRIMARY KEY, name text)",
    "daily_stats": "CREATE TABLE IF NOT EXISTS public.daily_stats "
    "(day date PRIMARY KEY, visits integer)",
}
DEMO_ROWS = {
    "users": "INSERT INTO public.users (name) VALUES ('ada'), ('grace'), ('linus')",
    "daily_stats": "INSERT INTO public.daily_stats VALUES (current_date, 42)",
}


def prepare_database(engine: Engine) -> None:
    """The archive's tables (as ``jobkit archiver`` makes them), the ``job_statuses``
    view over them, and the demo tables, with a few rows, when they are missing."""
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(text(f"SELECT pg_advisory_xact_lock({VIEW_LOCK})"))
        conn.execute(text(VIEW))
        for name, create in DEMO_TABLES.items():
            missing = conn.execute(text(f"SELECT to_regclass('public.{name}') IS NULL")).scalar()
            if missing:  # a table that is there is the user's: never filled again
                conn.execute(text(create))
                conn.execute(text(DEMO_ROWS[name]))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Make the view (and what it reads) before the first request."""
    await run_in_threadpool(prepare_database, database_engine())
    yield


app = FastAPI(title="job system (jobkit example on PostgreSQL)", lifespan=lifespan)


class CreateJob(BaseModel):
    """The body of ``POST /create-jobs/``: the table to truncate, and the queue."""

    model_config = ConfigDict(extra="forbid")

    schema_: str = Field(alias="schema", pattern=IDENTIFIER)
    table_name: str = Field(pattern=IDENTIFIER)
    queue: Literal["high", "default", "low"] = "default"


@app.exception_handler(BadInput)
async def bad_input(request: Request, exc: BadInput) -> JSONResponse:
    """A refused request: its 4xx, and why, as FastAPI says it (``{"detail": ...}``)."""
    return JSONResponse({"detail": exc.detail}, status_code=exc.status)


@app.exception_handler(redis.RedisError)
async def redis_down(request: Request, exc: redis.RedisError) -> JSONResponse:
    """Redis out of reach: nothing was stored; the client may try again."""
    return JSONResponse({"detail": "the job store cannot be reached"}, status_code=503)


def _create(body: bytes) -> dict[str, str]:
    job = parse(CreateJob, body)
    params = {"schema": job.schema_, "table_name": job.table_name}
    handle = dispatch(TruncateTable, params, queue=job.queue)
    return {"job_id": handle.id, "status": "enqueued"}


@app.post("/create-jobs/")
async def create_jobs(request: Request) -> dict[str, str]:
    """Queue a ``TruncateTable`` job; its id comes back at once."""
    body = await request.body()
    return await run_in_threadpool(_create, body)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def status_view(record: JobRecord) -> dict[str, Any]:
    """A job in the document's fields; a failed job's ``result`` is its error."""
    status = STATUSES.get(record.status, "queued")
    result: Any = None
    if record.status is jobkit.Status.SUCCEEDED:
        result = record.result
    elif status == "failed" and record.error:
        result = str(record.error)
    changed = record.finished_at or record.started_at or record.created_at
    return {
        "id": record.id,
        "status": status,
        "result": result,
        "created_at": _iso(record.created_at),
        "updated_at": _iso(changed),
    }


@app.get("/job-status/{job_id}")
def job_status(job_id: str, response: Response) -> dict[str, Any]:
    """The job from Redis, or from the archive in PostgreSQL once Redis has forgotten it."""
    if queue_of(job_id) is None:
        raise HTTPException(404, f"no job {job_id}")
    try:
        record = jobkit.get_job(job_id).record
    except HistoryUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    if record is None:
        raise HTTPException(404, f"no job {job_id}")
    response.headers["X-Jobkit-Source"] = (record.source or Source.REDIS).value
    return status_view(record)


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs_example.pg_system``: the API, a worker, the archiver and the
    scheduler (the document's nightly truncation), on ``JOBKIT_HISTORY_URL``."""
    args = launch.arguments("The FastAPI + PostgreSQL job system on jobkit.", 8000).parse_args(argv)
    url = os.environ.get("JOBKIT_HISTORY_URL", "")
    if not url.startswith("postgresql"):
        print(
            "set JOBKIT_HISTORY_URL to the PostgreSQL database to use, e.g. "
            "postgresql+psycopg://jobkit:PASSWORD@localhost:5432/jobkit",
            file=sys.stderr,
        )
        return 2
    services = [
        launch.Service("api", launch.uvicorn("jobs_example.pg_system:app", args.host, args.port)),
        launch.Service("worker", launch.worker(QUEUES, 2)),
        launch.Service("archiver", launch.jobkit_command("archiver")),
        launch.Service("scheduler", launch.jobkit_command("scheduler", "-A", "jobs_example")),
    ]
    api = f"http://localhost:{args.port}"
    banner = "\n".join(
        [
            f"job system: API on {api} (Swagger UI: {api}/docs), statuses in PostgreSQL",
            f"  curl -X POST {api}/create-jobs/ -H 'Content-Type: application/json' "
            """-d '{"schema":"public","table_name":"users"}'""",
            f"  curl {api}/job-status/<job_id>",
            "  psql: SELECT * FROM job_statuses ORDER BY created_at DESC LIMIT 5;",
            "Ctrl-C stops everything.",
        ]
    )
    return launch.launch(services, (args.host, args.port), banner)


if __name__ == "__main__":
    sys.exit(main())
