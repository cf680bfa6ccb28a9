"""Function tasks and a jobkit.Queue for the worker processes of the task tests."""

from __future__ import annotations

import asyncio
import os

import jobkit

# a Queue configured in code: its Redis is the one the test names in TASKS_REDIS_URL
# (read when the module is imported, as an app's settings would be)
side = jobkit.Queue(redis=os.environ.get("TASKS_REDIS_URL") or None)


@jobkit.task
def add(a: int, b: int = 0) -> int:
    """A plain function task on the default connection."""
    return a + b


@jobkit.task(queue="default", retry=jobkit.Retry(max_attempts=1))
async def shout(word: str, times: int = 1) -> str:
    """An ``async def`` task."""
    await asyncio.sleep(0)
    return " ".join([word.upper()] * times)


@jobkit.task(bind=True)
def who_am_i(job: jobkit.BaseJob, tag: str) -> dict[str, object]:
    """``bind=True``: the running job comes first."""
    return {"id": job.job_id, "attempt": job.attempt, "tag": tag}


@side.task(name="tests.side.mul")
def mul(a: int, b: int) -> int:
    """A task of the side Queue: dispatched on its Redis."""
    return a * b
