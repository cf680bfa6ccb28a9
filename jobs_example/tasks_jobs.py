"""The Phoenix task runner's queues (``jobs_example.tasks`` serves them): each queue's job
class and worker count, in one table, as the runner's ``lib/tasks/queues.ex`` has them.

``python -m jobs_example.tasks`` starts ``jobkit worker -A jobs_example -q <id> -c <workers>``
for each entry, so a queue's worker count is its concurrency limit, as in the runner. A
new queue is a job class and a line here. The runner's polling ``interval`` has no
counterpart: idle jobkit workers block on Redis and take a job within milliseconds. Its
lease is jobkit's too: each claim leases the job, renewed while its worker lives.

This module imports no web framework.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from jobkit import BaseJob


class FibonacciQueue(BaseJob):
    """The n-th Fibonacci number. It is given as decimal text: JSON numbers past 2**53
    lose digits in most clients (and jobkit's JSON stops at 64 bits), and fib(303) is
    far past that."""

    queue = "fibonacci"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        n: int = Field(ge=0, le=10_000)

    params: Params  # BaseJob types it BaseModel: narrowed for the reads below

    def perform(self) -> dict[str, object]:
        a, b = 0, 1
        for _ in range(self.params.n):
            a, b = b, a + b
        return {"n": self.params.n, "fibonacci": str(a)}


class SleepyQueue(BaseJob):
    """Sleeps ``duration`` milliseconds (Elixir's ``Process.sleep/1`` takes ms)."""

    queue = "sleeper"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        duration: int = Field(ge=0, le=60_000)

    params: Params  # BaseJob types it BaseModel: narrowed for the reads below

    def perform(self) -> dict[str, int]:
        time.sleep(self.params.duration / 1000)
        return {"slept_ms": self.params.duration}


@dataclass(frozen=True)
class QueueSpec:
    """One queue: its id (the jobkit queue), the job class it runs, its worker count."""

    id: str
    module: type[BaseJob]
    workers: int

    def __post_init__(self) -> None:
        if self.module.queue != self.id:
            raise ValueError(f"queue {self.id}: {self.module.__name__} runs on {self.module.queue}")
        if self.workers < 1:
            raise ValueError(f"queue {self.id}: workers must be at least 1")


QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec(id="fibonacci", module=FibonacciQueue, workers=3),
    QueueSpec(id="sleeper", module=SleepyQueue, workers=3),
)
BY_ID = {spec.id: spec for spec in QUEUES}
