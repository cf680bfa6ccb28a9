"""The brief's API: ``POST /add-task`` queues ``background_task``, ``GET
/task-status/<task_id>`` tracks it with the brief's statuses (Pending, Running,
Completed, Failed)::

    curl -X POST localhost:5000/add-task -H 'Content-Type: application/json' \\
         -d '{"args": [2, 3], "countdown": 0}'      # {"task_id": "...", "status": "Pending"}
    curl localhost:5000/task-status/<task_id>

The body's ``args`` are the task's two arguments; ``countdown`` (seconds, optional)
schedules it for later with ``apply_async``, as the brief's "Scheduling Tasks" does,
and without it the route calls ``delay``. Every error is a JSON answer: a body that is
not a JSON object, arguments the task refuses, a countdown that is no number of seconds
is a 422 and queues nothing; an unknown id a 404.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, NotFound

import jobkit
from jobkit.backend.keys import queue_of
from jobs_example import launch
from jobs_example.celery_style.tasks import QUEUE, app, background_task
from jobs_example.refusals import BadInput, call_task, json_object

log = logging.getLogger("jobs_example.celery_style")

api = Flask(__name__)

# jobkit's statuses in the brief's words
BRIEF_STATUS = {
    jobkit.Status.SCHEDULED: "Pending",
    jobkit.Status.QUEUED: "Pending",
    jobkit.Status.RETRYING: "Pending",  # failed, another attempt is due
    jobkit.Status.RUNNING: "Running",
    jobkit.Status.SUCCEEDED: "Completed",
    jobkit.Status.DEAD: "Failed",
    jobkit.Status.CANCELLED: "Failed",
}


def _view(job: jobkit.JobHandle) -> dict[str, Any]:
    record = job.record
    if record is None:
        raise NotFound(f"no task {job.id}")
    done = record.status is jobkit.Status.SUCCEEDED
    return {
        "task_id": record.id,
        "status": BRIEF_STATUS.get(record.status, "Pending"),
        "result": record.result if done else None,
        "error": str(record.error) if record.error else record.reason,
        "attempts": record.attempts,
    }


@api.post("/add-task")
def add_task() -> tuple[Response, int]:
    """Queue the task: ``{"args": [a, b]}``, and ``"countdown"`` to run it later."""
    body = json_object(request.get_data())
    args = body.get("args", [])
    if not isinstance(args, list) or set(body) - {"args", "countdown"}:
        raise BadInput(422, 'send {"args": [task_arg1, task_arg2]} and an optional "countdown"')
    countdown = body.get("countdown")
    if countdown is None:
        job = call_task(lambda: background_task.delay(*args))
    else:
        job = call_task(lambda: background_task.apply_async(args, countdown=countdown))
    return jsonify(_view(job)), 202


@api.get("/task-status/<task_id>")
def task_status(task_id: str) -> Response:
    """The task's status in the brief's words, its result once Completed."""
    if queue_of(task_id) != QUEUE:
        raise NotFound(f"no task {task_id}")
    return jsonify(_view(app.get_job(task_id)))


def _error(status: int, error: str, detail: object) -> tuple[Response, int]:
    return jsonify({"error": error, "detail": detail}), status


@api.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> tuple[Response, int]:
    """Flask's own errors (404, 405, 415 ...) as JSON."""
    return _error(exc.code or 500, exc.name, exc.description)


@api.errorhandler(BadInput)
def bad_input(exc: BadInput) -> tuple[Response, int]:
    """A body or arguments refused before anything was queued."""
    return _error(exc.status, "refused", exc.detail)


@api.errorhandler(jobkit.JobkitError)
def refused(exc: jobkit.JobkitError) -> tuple[Response, int]:
    """Any other refusal of jobkit's (an id of no queue ...): a 422, nothing written."""
    return _error(422, "refused", str(exc))


@api.errorhandler(Exception)
def unexpected(exc: Exception) -> tuple[Response, int]:
    """A bug, or Redis out of reach: logged, answered as JSON without details."""
    log.exception("unexpected error")
    return _error(500, "internal error", "see the server's log")


def main(argv: list[str] | None = None) -> int:
    """``python -m jobs_example.celery_style``: Flask on :5000 and a worker."""
    args = launch.arguments("The Celery-style brief on jobkit.", 5000).parse_args(argv)
    server = [
        sys.executable, "-m", "flask", "--app", "jobs_example.celery_style.app:api", "run",
        "--host", args.host, "--port", str(args.port), "--no-reload", "--no-debugger",
    ]  # fmt: skip
    services = [
        launch.Service("flask", server),
        launch.Service("worker", launch.worker(QUEUE, 2)),
    ]
    url = f"http://localhost:{args.port}"
    banner = "\n".join(
        [
            f"Celery-style brief: API on {url}, two workers on the {QUEUE} queue",
            f"  curl -X POST {url}/add-task -H 'Content-Type: application/json' "
            """-d '{"args": [2, 3]}'""",
            f"  curl {url}/task-status/<task_id>",
            "Ctrl-C stops everything.",
        ]
    )
    return launch.launch(services, (args.host, args.port), banner)
