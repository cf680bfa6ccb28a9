"""The reliable-queue exercise's job (``jobs_example.reliable`` dispatches it): simulate
work, then return the payload as the result.

The exercise's rules, and what in jobkit keeps each:

- *no job lost if a worker dies mid-processing*: every claim is a lease; the worker's
  supervisor renews it, so only a dead worker's lease lapses, and then any worker
  requeues the job (``reap.lua``). "Stuck in processing longer than T" is that lease:
  ``JOBKIT_LEASE`` / ``jobkit worker --lease`` (the launcher's default: 10 s).
- *at most 2 attempts in all*: ``Retry(max_attempts=2)``. A crash is an attempt too: the
  claim counted it, and ``reap.lua`` dead-letters a crashed job whose attempts are used
  up, so a crash and a retry never make a third run. ``JOBKIT_MAX_CRASHES`` (default 2)
  must stay at 2 or more, or a crashed job would end without its one requeue: the
  launcher sets it to 2.
- *at most once successfully*: each lease carries a fencing token; a worker whose lease
  lapsed cannot record a result any more.

This module imports no web framework: ``jobkit worker -A jobs_example`` registers it.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobkit import BaseJob, Retry

QUEUE = "reliable"
MAX_ATTEMPTS = 2
MAX_WORK_SECONDS = 30.0


class ProcessPayload(BaseJob):
    """Sleeps ``seconds`` (the simulated work), then returns ``payload`` unchanged."""

    queue = QUEUE
    retry = Retry(max_attempts=MAX_ATTEMPTS, base=1.0, jitter=False)
    # A job that hangs on a live worker keeps its lease (the supervisor renews it): this
    # hard limit kills such an attempt, and it is retried once like any failure.
    timeout = 60.0

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        payload: dict[str, Any]
        seconds: float = Field(default=1.0, ge=0, le=MAX_WORK_SECONDS)

    params: Params  # BaseJob types it BaseModel: narrowed for the reads below

    def perform(self) -> dict[str, Any]:
        time.sleep(self.params.seconds)
        payload: dict[str, Any] = self.params.payload
        return payload
