"""Jobs that wait for others, for the workflow tests' worker processes: an ETL chain
across two queues, a slow step to kill a worker in, a failing step, a group."""

from __future__ import annotations

import os
import time
from pathlib import Path

import jobkit

STAGE = "flow-stage"  # a second queue: the chain crosses shards on a cluster


@jobkit.task(queue="default")
def extract(day: str) -> list[int]:
    return [len(day), 2, 3]


@jobkit.task(queue=STAGE)
def transform(rows: list[int], factor: int = 10) -> list[int]:
    return [r * factor for r in rows]


@jobkit.task(queue="default")
def load(rows: list[int]) -> int:
    return sum(rows)


@jobkit.task(queue=STAGE, timeout=30)
def slow_step(rows: list[int], marker: str = "") -> list[int]:
    """Writes a line to ``marker`` as it starts (the test kills the worker then), then
    takes two seconds."""
    if marker:
        with Path(marker).open("a") as f:
            f.write(f"{os.getpid()}\n")
    time.sleep(2)
    return rows[::-1]


@jobkit.task(retry=jobkit.Retry(max_attempts=1))
def fails(why: str = "broken") -> None:
    raise RuntimeError(why)


@jobkit.task
def square(n: int) -> int:
    return n * n


@jobkit.task(queue=STAGE)
def total(results: list[int]) -> int:
    return sum(results)
