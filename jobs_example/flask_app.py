"""The Flask brief, in its own words: ``POST /task/`` dispatches the job and answers at
once with ``{"job", "status"}``; ``GET /task/<id>`` polls the job's state::

    python -m jobs_example.flask_app     # Flask on :5000 and a worker tagged gpu

or the parts by hand: ``flask --app jobs_example.flask_app run --port 5000`` and
``jobkit worker -A jobs_example -q training --tags gpu``.

The brief's ``job = my_task(**request.json)`` is ``retrain_model(**body)``: calling the
task dispatches it, and the body's keys are its arguments; ``f.get_job(id)`` reads it
back. Every error is a JSON answer, never Flask's HTML page: bad input (not JSON, not an
object, an unknown key, invalid params) is a 4xx and writes nothing, an unknown id or
route a 404, a wrong method a 405.
"""

from __future__ import annotations

import logging
import sys

import redis
from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, NotFound, UnsupportedMediaType

import jobkit
from jobkit.backend.keys import queue_of
from jobkit.errors import HistoryUnavailable, JobkitError, PayloadTooLarge
from jobs_example import launch
from jobs_example.flask_jobs import QUEUE, TAGS, f, retrain_model
from jobs_example.refusals import BadInput, call_task, errors_of, json_object

log = logging.getLogger("jobs_example.flask_app")

app = Flask(__name__)
# a body over jobkit's params limit (4 MiB by default) is refused before it is read whole
app.config["MAX_CONTENT_LENGTH"] = 8 * 1024 * 1024


@app.post("/task/")
def run_task() -> Response:
    """Dispatch the job with the body as its params; its id and status come back at once."""
    if not request.is_json:
        raise UnsupportedMediaType("send the params as JSON (Content-Type: application/json)")
    body = json_object(request.get_data())
    job = call_task(lambda: retrain_model(**body))  # the brief's my_task(**request.json)
    return jsonify({"job": job.id, "status": job.status.value})


@app.get("/task/<job_id>")
def get_task(job_id: str) -> Response:
    """The job's status, with its result once it succeeded (404 for an unknown id)."""
    if queue_of(job_id) is None:
        raise NotFound(f"no job {job_id}")
    record = f.get_job(job_id).record
    if record is None:
        raise NotFound(f"no job {job_id}")
    return jsonify(
        {
            "job": record.id,
            "status": record.status.value,
            "result": record.result if record.status is jobkit.Status.SUCCEEDED else None,
            "attempts": record.attempts,
            "error": str(record.error) if record.error else None,
        }
    )


def _error(status: int, error: str, detail: object) -> tuple[Response, int]:
    return jsonify({"error": error, "detail": detail}), status


@app.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> tuple[Response, int]:
    """Every HTTP error Flask or this app raises (400, 404, 405, 413, 415 ...) as JSON."""
    return _error(exc.code or 500, exc.name, exc.description)


@app.errorhandler(BadInput)
def bad_input(exc: BadInput) -> tuple[Response, int]:
    """A body that is no JSON object, params the job refuses (pydantic's errors, without
    the inputs), params over jobkit's size limit: the 4xx, nothing written."""
    return _error(exc.status, "refused", exc.detail)


@app.errorhandler(ValidationError)
def invalid(exc: ValidationError) -> tuple[Response, int]:
    """A pydantic refusal that did not come through :func:`dispatch`: still a 422."""
    return _error(422, "refused", errors_of(exc))


@app.errorhandler(JobkitError)
def jobkit_refused(exc: JobkitError) -> tuple[Response, int]:
    """jobkit's errors: the history archive (``JOBKIT_HISTORY_URL``, when set) out of
    reach is a 503, params over the size limit a 413, any other refusal a 422."""
    if isinstance(exc, HistoryUnavailable):
        return _error(503, "history unavailable", str(exc))
    if isinstance(exc, PayloadTooLarge):
        return _error(413, "refused", str(exc))
    return _error(422, "refused", str(exc))


@app.errorhandler(redis.RedisError)
def redis_down(exc: redis.RedisError) -> tuple[Response, int]:
    """Redis out of reach: the job was not stored; try again later."""
    log.error("Redis: %s", type(exc).__name__)
    return _error(503, "service unavailable", "the job store cannot be reached")


@app.errorhandler(Exception)
def unexpected(exc: Exception) -> tuple[Response, int]:
    """A bug: logged here, answered as JSON without its details."""
    log.exception("unexpected error")
    return _error(500, "internal error", "see the server's log")


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs_example.flask_app``: Flask's server and a worker tagged ``gpu``."""
    args = launch.arguments("The Flask brief on jobkit.", 5000).parse_args(argv)
    server = [
        sys.executable, "-m", "flask", "--app", "jobs_example.flask_app", "run",
        "--host", args.host, "--port", str(args.port), "--no-reload", "--no-debugger",
    ]  # fmt: skip
    tags = ",".join(sorted(TAGS))
    services = [
        launch.Service("flask", server),
        launch.Service("gpu-worker", launch.worker(QUEUE, 1, "--tags", tags)),
    ]
    url = f"http://localhost:{args.port}"
    banner = "\n".join(
        [
            f"Flask brief: API on {url}, a worker tagged {tags} on the {QUEUE} queue",
            f"  curl -X POST {url}/task/ -H 'Content-Type: application/json' "
            """-d '{"model":"churn","epochs":3}'""",
            f"  curl {url}/task/<job>",
            "Ctrl-C stops everything.",
        ]
    )
    return launch.launch(services, (args.host, args.port), banner)


if __name__ == "__main__":
    sys.exit(main())
