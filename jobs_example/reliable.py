"""The reliable-queue exercise's API, in its own words::

    POST /jobs {"payload": {...}}   -> {"job_id": "<uuid>"}
    GET  /jobs/{job_id}             -> {"job_id", "status", "result", "attempts"}

``status`` is ``queued | processing | done | failed``. Run it with its worker and Redis::

    python -m jobs_example.reliable          # API on :8000, worker, T = JOBKIT_LEASE or 10 s

or the parts by hand: ``uvicorn jobs_example.reliable:app --port 8000`` and
``jobkit worker -A jobs_example -q reliable -c 2 --lease 10``.

A job's jobkit id is ``reliable:<uuid>`` (ids name their queue): the API hands out the
UUID and maps it back. Bad input is a 4xx with a JSON body and writes nothing; an unknown
id is a 404.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

import redis
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

import jobkit
from jobkit.backend.keys import job_id as jobkit_id
from jobkit.errors import HistoryUnavailable
from jobs_example import launch
from jobs_example.refusals import BadInput, dispatch, parse
from jobs_example.reliable_jobs import MAX_WORK_SECONDS, QUEUE, ProcessPayload

# jobkit's statuses in the exercise's words
STATUSES = {
    jobkit.Status.SCHEDULED: "queued",
    jobkit.Status.QUEUED: "queued",
    jobkit.Status.RETRYING: "queued",
    jobkit.Status.RUNNING: "processing",
    jobkit.Status.SUCCEEDED: "done",
    jobkit.Status.DEAD: "failed",
    jobkit.Status.CANCELLED: "failed",
}
DEFAULT_T = 10.0  # the exercise's "stuck in processing longer than T seconds"


def _work_seconds() -> float:
    """The simulated work of each job (the exercise: "sleep is fine"), checked at start:
    a value the job's params refuse would make every POST a 422."""
    raw = os.environ.get("RELIABLE_WORK_SECONDS", "1.0")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_WORK_SECONDS:
        raise RuntimeError(
            f"RELIABLE_WORK_SECONDS must be seconds from 0 to {MAX_WORK_SECONDS:g}, not {raw!r}"
        )
    return seconds


WORK_SECONDS = _work_seconds()

app = FastAPI(title="reliable queue (jobkit example)")


class CreateJob(BaseModel):
    """The body of ``POST /jobs``."""

    model_config = ConfigDict(extra="forbid")

    payload: dict[str, Any]


@app.exception_handler(BadInput)
async def bad_input(request: Request, exc: BadInput) -> JSONResponse:
    """A refused request: its 4xx, and why, as FastAPI says it (``{"detail": ...}``)."""
    return JSONResponse({"detail": exc.detail}, status_code=exc.status)


@app.exception_handler(redis.RedisError)
async def redis_down(request: Request, exc: redis.RedisError) -> JSONResponse:
    """Redis out of reach: nothing was stored; the client may try again."""
    return JSONResponse({"detail": "the job store cannot be reached"}, status_code=503)


@app.exception_handler(HistoryUnavailable)
async def history_down(request: Request, exc: HistoryUnavailable) -> JSONResponse:
    """An id Redis does not hold is looked up in the history archive, when one is
    configured (``JOBKIT_HISTORY_URL``); it could not be read."""
    return JSONResponse({"detail": str(exc)}, status_code=503)


def _create(body: bytes) -> dict[str, str]:
    request = parse(CreateJob, body)
    key = str(uuid.uuid4())
    dispatch(ProcessPayload, {"payload": request.payload, "seconds": WORK_SECONDS}, job_id=key)
    return {"job_id": key}


@app.post("/jobs")
async def create_job(request: Request) -> dict[str, str]:
    """Queue a job; its ``payload`` (any JSON object) comes back as its result."""
    body = await request.body()
    return await run_in_threadpool(_create, body)


@app.get("/jobs/{job_id}")
def get_job(job_id: str) -> dict[str, Any]:
    """The job's status, result (once done) and attempts so far; 404 for an unknown id."""
    try:
        key = str(uuid.UUID(job_id))
    except ValueError:
        raise HTTPException(404, f"no job {job_id}") from None
    record = jobkit.get_job(jobkit_id(QUEUE, key)).record
    if record is None:
        raise HTTPException(404, f"no job {key}")
    return {
        "job_id": key,
        "status": STATUSES.get(record.status, "queued"),
        "result": record.result if record.status is jobkit.Status.SUCCEEDED else None,
        "attempts": record.attempts,
    }


def _seconds(value: str, name: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise SystemExit(f"{name} must be a number of seconds, not {value!r}") from None
    if not seconds > 0:
        raise SystemExit(f"{name} must be above 0")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs_example.reliable``: the API, two workers' worth of children on the
    ``reliable`` queue with the lease T, until Ctrl-C or SIGTERM."""
    parser = launch.arguments("The reliable-queue exercise on jobkit.", 8000)
    parser.add_argument(
        "--lease",
        metavar="T",
        default=os.environ.get("JOBKIT_LEASE", str(DEFAULT_T)),
        help="T: seconds a job stays in processing once its worker is gone, before it is "
        f"requeued (JOBKIT_LEASE; default {DEFAULT_T:g})",
    )
    args = parser.parse_args(argv)
    lease = _seconds(str(args.lease), "T")
    heartbeat = _seconds(os.environ.get("JOBKIT_HEARTBEAT", str(min(5.0, lease / 3))), "heartbeat")
    if heartbeat >= lease:
        raise SystemExit(f"JOBKIT_HEARTBEAT ({heartbeat:g}) must be below T ({lease:g})")
    # every process (this one and the children) reads the settings: all get the same T,
    # and the requeue after a crash needs a crash allowance of at least 2 (reliable_jobs)
    os.environ.update(
        JOBKIT_LEASE=f"{lease:g}", JOBKIT_HEARTBEAT=f"{heartbeat:g}", JOBKIT_MAX_CRASHES="2"
    )
    timing = ("--lease", f"{lease:g}", "--heartbeat", f"{heartbeat:g}")
    services = [
        launch.Service("api", launch.uvicorn("jobs_example.reliable:app", args.host, args.port)),
        launch.Service("worker", launch.worker(QUEUE, 2, *timing)),
    ]
    url = f"http://localhost:{args.port}"
    banner = "\n".join(
        [
            f"reliable queue: API on {url}, T = {lease:g} s (the lease), at most 2 attempts",
            f"  curl -X POST {url}/jobs -H 'Content-Type: application/json' "
            """-d '{"payload":{"x":1}}'""",
            f"  curl {url}/jobs/<job_id>",
            "Ctrl-C stops everything.",
        ]
    )
    return launch.launch(services, (args.host, args.port), banner)


if __name__ == "__main__":
    sys.exit(main())
