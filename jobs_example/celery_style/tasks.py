"""The brief's ``tasks`` module: ``from tasks import background_task``, then
``background_task.delay(task_arg1, task_arg2)`` or
``background_task.apply_async((arg1, arg2), countdown=60)``, unchanged.

``app`` is the brief's Celery app: a :class:`jobkit.Queue` on ``BROKER_URL``. This
module imports no web framework, so a worker needs none.
"""

from __future__ import annotations

import time

import jobkit
from jobs_example.celery_style import config

app = jobkit.Queue(redis=config.BROKER_URL)

QUEUE = "celery-style"


@app.task(
    name="tasks.background_task",
    queue=QUEUE,
    retry=jobkit.Retry(max_attempts=config.MAX_RETRIES + 1, base=1.0),
    timeout=config.TASK_TIMEOUT,
)
def background_task(task_arg1: float, task_arg2: float, seconds: float = 0.5) -> float:
    """Stands in for a long task: waits ``seconds``, then adds its two arguments."""
    time.sleep(seconds)
    return task_arg1 + task_arg2
