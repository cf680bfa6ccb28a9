"""The Phoenix task runner, in its own words::

    GET  /api/jobs                                        the jobs in the system
    POST /api/jobs {"job": {"queue_id", "payload"}}       create one (201)
    GET  /api/jobs/{id}                                   one job

Answers are Phoenix's JSON shapes: ``{"data": ...}``, and ``{"errors": {...}}`` with a
422 for a bad payload (an unknown ``queue_id``, a payload its queue's job refuses) or a
404 for an unknown job or route. Run it with one worker per queue of the table in
:mod:`jobs_example.tasks_jobs`::

    python -m jobs_example.tasks         # API on :4000, `jobkit worker -q <id> -c <workers>` each

The listing is jobkit's (``jobkit.ops.jobs.list_page``): newest first, a page at a time
(``?limit=``, and ``?cursor=`` from the last page's ``next_cursor``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import redis
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import jobkit
from jobkit.backend.keys import queue_of
from jobkit.errors import HistoryUnavailable, InvalidQuery
from jobkit.ops.jobs import list_page, page_as_dict
from jobkit.ops.listing import JobQuery
from jobs_example import launch
from jobs_example.refusals import BadInput, dispatch, json_object
from jobs_example.tasks_jobs import BY_ID, QUEUES

app = FastAPI(title="tasks (jobkit example of the Phoenix task runner)")


class NewJob(BaseModel):
    """``{"job": {...}}``'s inner object."""

    model_config = ConfigDict(extra="forbid")

    queue_id: str
    payload: dict[str, Any]


class CreateBody(BaseModel):
    """The body of ``POST /api/jobs``."""

    model_config = ConfigDict(extra="forbid")

    job: NewJob


def _messages(exc: ValidationError, under: str = "") -> dict[str, list[str]]:
    """pydantic's errors as a changeset's: field path -> messages (no input echoed)."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        path = ".".join(str(part) for part in (under, *error["loc"]) if part != "")
        errors.setdefault(path or "body", []).append(error["msg"])
    return errors


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    """A job (``JobRecord.as_dict()``'s shape) as the runner shows one."""
    error = job.get("error")
    return {
        "id": job["id"],
        "queue_id": job["queue"],
        "payload": job["params"],
        "status": job["status"],
        "attempts": job["attempts"],
        "result": job["result"],
        "error": f"{error['type']}: {error['message']}" if error else None,
        "inserted_at": job["created_at"],
        "updated_at": job["finished_at"] or job["started_at"] or job["created_at"],
    }


def _create(body: bytes) -> dict[str, Any]:
    try:
        new = CreateBody.model_validate(json_object(body)).job
    except ValidationError as exc:
        raise BadInput(422, _messages(exc)) from None
    spec = BY_ID.get(new.queue_id)
    if spec is None:
        raise BadInput(422, {"queue_id": [f"is invalid: use {', '.join(BY_ID)}"]})
    handle = dispatch(
        spec.module, new.payload, queue=spec.id, explain=lambda e: _messages(e, "payload")
    )
    record = handle.record
    if record is None:  # expired or purged within the call: say what was accepted
        return {"id": handle.id, "queue_id": spec.id, "payload": new.payload, "status": "queued"}
    return job_view(record.as_dict())


@app.post("/api/jobs", status_code=201)
async def create_job(request: Request) -> dict[str, Any]:
    """Create a job on the queue ``queue_id`` with ``payload`` as its job's params."""
    body = await request.body()
    return {"data": await run_in_threadpool(_create, body)}


@app.get("/api/jobs")
def list_jobs(limit: int = Query(50, ge=1, le=1000), cursor: str | None = None) -> dict[str, Any]:
    """The jobs of every queue in the table, newest first."""
    store = jobkit.get_store()
    known = set(store.reads.queues())  # a queue nothing was ever sent to has no jobs to list
    queues = tuple(spec.id for spec in QUEUES if spec.id in known)
    if not queues:
        return {"data": [], "next_cursor": None}
    try:
        page = page_as_dict(list_page(JobQuery(queues=queues, limit=limit, cursor=cursor), store))
    except InvalidQuery as exc:
        raise HTTPException(422, {"cursor": [str(exc)]}) from None
    return {"data": [job_view(job) for job in page["jobs"]], "next_cursor": page["next_cursor"]}


@app.get("/api/jobs/{job_id}")
def show_job(job_id: str) -> dict[str, Any]:
    """One job, from Redis (or the history archive once Redis has forgotten it)."""
    queue = queue_of(job_id)
    if queue is None or queue not in BY_ID:
        raise HTTPException(404, "Not Found")
    try:
        record = jobkit.get_job(job_id).record
    except HistoryUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    if record is None:
        raise HTTPException(404, "Not Found")
    return {"data": job_view(record.as_dict())}


def _errors(status: int, detail: object, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An error as Phoenix answers one: ``{"errors": {field: [messages]}}``, or
    ``{"errors": {"detail": ...}}``."""
    errors = detail if isinstance(detail, dict) else {"detail": detail}
    return JSONResponse({"errors": errors}, status_code=status, headers=headers)


@app.exception_handler(StarletteHTTPException)
async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Unknown routes and jobs (404), wrong methods (405) ..."""
    return _errors(exc.status_code, exc.detail, exc.headers)


@app.exception_handler(BadInput)
async def bad_input(request: Request, exc: BadInput) -> JSONResponse:
    """A refused payload: 422 (413 when too large), nothing written."""
    return _errors(exc.status, exc.detail)


@app.exception_handler(redis.RedisError)
async def redis_down(request: Request, exc: redis.RedisError) -> JSONResponse:
    """Redis out of reach: nothing was stored; the client may try again."""
    return _errors(503, "the job store cannot be reached")


@app.exception_handler(RequestValidationError)
async def bad_query(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A query parameter out of its range (``?limit=0``)."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        path = ".".join(str(p) for p in error["loc"][1:]) or "request"
        errors.setdefault(path, []).append(str(error["msg"]))
    return JSONResponse({"errors": errors}, status_code=422)


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs_example.tasks``: the API, and for each queue of the table a worker
    with as many children as the queue's ``workers``."""
    args = launch.arguments("The Phoenix task runner on jobkit.", 4000).parse_args(argv)
    services = [
        launch.Service("api", launch.uvicorn("jobs_example.tasks:app", args.host, args.port))
    ]
    services += [
        launch.Service(f"{spec.id}-workers", launch.worker(spec.id, spec.workers))
        for spec in QUEUES
    ]
    url = f"http://localhost:{args.port}"
    queues = ", ".join(f"{spec.id} x{spec.workers}" for spec in QUEUES)
    banner = "\n".join(
        [
            f"tasks: API on {url}, queues {queues}",
            f'  curl -X GET --location "{url}/api/jobs"',
            f'  curl -X POST --location "{url}/api/jobs" -H "Content-Type: application/json" '
            """-d '{"job": {"queue_id": "fibonacci", "payload": {"n": 303}}}'""",
            "Ctrl-C stops everything.",
        ]
    )
    return launch.launch(services, (args.host, args.port), banner)


if __name__ == "__main__":
    sys.exit(main())
