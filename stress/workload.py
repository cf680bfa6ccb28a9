"""What a run dispatches: the mix of job kinds, how producers send them, and when.

The plan is made once by the harness from the seed and written to one JSON file per
producer, so a run is reproducible and a producer only follows its file.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import orjson


class Kind(str, Enum):
    """A job kind and what it is expected to end as."""

    INSTANT = "instant"  # succeeded, once
    DELAYED = "delayed"  # succeeded, not before its due time
    FLAKY = "flaky"  # succeeded after exactly `fail_times` raised executions
    FAILING = "failing"  # dead, reason exception, after max_attempts
    SLOW = "slow"  # succeeded; executions > 1 allowed when a kill cut one
    CANARY = "canary"  # dispatched by the harness after a fault: succeeded
    PROBE = "probe"  # dispatched by the harness, its enqueue reply dropped: succeeded once

    def __str__(self) -> str:
        return self.value


JOB_NAMES = {
    Kind.INSTANT: "stress.Instant",
    Kind.DELAYED: "stress.Delayed",
    Kind.FLAKY: "stress.Flaky",
    Kind.FAILING: "stress.AlwaysFails",
    Kind.SLOW: "stress.Slow",
    Kind.CANARY: "stress.Canary",
    Kind.PROBE: "stress.Probe",
}
KIND_OF_NAME = {name: kind for kind, name in JOB_NAMES.items()}

MIX = {Kind.INSTANT: 0.55, Kind.DELAYED: 0.15, Kind.FLAKY: 0.15, Kind.FAILING: 0.1, Kind.SLOW: 0.05}


class Mode(str, Enum):
    """How a producer dispatches: each goes down a different path in jobkit."""

    SINGLE = "single"  # dispatch(): a fresh random id, enqueue without the existence check
    MANY = "many"  # dispatch_many(): chunks streamed in one request
    KEYED = "keyed"  # dispatch(job_id=...): idempotent, retried with the same id

    def __str__(self) -> str:
        return self.value


MODES = {Mode.SINGLE: 0.5, Mode.MANY: 0.3, Mode.KEYED: 0.2}
MANY_BATCH = (5, 30)


@dataclass(frozen=True)
class Shape:
    """Sizes of a run's jobs (the short setting keeps them small)."""

    slow_seconds: tuple[float, float] = (0.5, 2.0)
    delay_seconds: tuple[float, float] = (0.5, 5.0)
    fail_times: tuple[int, int] = (1, 2)


@dataclass
class Batch:
    """One dispatch call a producer makes at ``at`` seconds after it starts."""

    at: float
    mode: Mode
    kind: Kind
    delay: float  # seconds; 0 for all but delayed jobs
    items: list[dict[str, Any]] = field(default_factory=list)  # params, `seq` first
    queue: str = "default"  # every job of the batch goes to this queue

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mode"], data["kind"] = self.mode.value, self.kind.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Batch:
        return cls(
            data["at"], Mode(data["mode"]), Kind(data["kind"]), data["delay"], data["items"],
            data["queue"],
        )  # fmt: skip


def _params(kind: Kind, seq: int, shape: Shape, rng: random.Random) -> dict[str, Any]:
    if kind is Kind.SLOW:
        return {"seq": seq, "seconds": round(rng.uniform(*shape.slow_seconds), 3)}
    if kind is Kind.FLAKY:
        return {"seq": seq, "fail_times": rng.randint(*shape.fail_times)}
    return {"seq": seq}  # a delayed job's not_before_ms is added as it is dispatched


def plan(
    jobs: int,
    producers: int,
    seconds: float,
    shape: Shape,
    rng: random.Random,
    queues: tuple[str, ...] = ("default",),
) -> list[list[Batch]]:
    """``jobs`` jobs in batches, spread evenly over ``seconds``, dealt to ``producers``;
    each batch goes to one of ``queues``, at random (on a cluster, queues whose shards
    live on different masters)."""
    kinds = list(MIX)
    modes = list(MODES)
    batches: list[Batch] = []
    seq = 0
    while seq < jobs:
        kind = rng.choices(kinds, weights=[MIX[k] for k in kinds])[0]
        mode = rng.choices(modes, weights=[MODES[m] for m in modes])[0]
        size = min(jobs - seq, rng.randint(*MANY_BATCH) if mode is Mode.MANY else 1)
        delay = round(rng.uniform(*shape.delay_seconds), 3) if kind is Kind.DELAYED else 0.0
        items = [_params(kind, seq + i, shape, rng) for i in range(size)]
        batches.append(Batch(0.0, mode, kind, delay, items, rng.choice(queues)))
        seq += size
    dealt: list[list[Batch]] = [[] for _ in range(producers)]
    for index, batch in enumerate(batches):
        batch.at = round(seconds * index / max(1, len(batches)), 3)
        dealt[index % producers].append(batch)
    return dealt


def write_plan(path: Path, batches: list[Batch]) -> None:
    path.write_bytes(orjson.dumps([b.to_json() for b in batches]))


def read_plan(path: Path) -> list[Batch]:
    return [Batch.from_json(b) for b in orjson.loads(path.read_bytes())]
