"""The records read back from Redis (a job, its error) and the ones written to it (a new
job, a claimed one). The state machine's names live in :mod:`jobkit.status`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson

from jobkit.backend.keys import split_lane
from jobkit.status import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    CancelOutcome,
    DeadReason,
    Outcome,
    Source,
    Status,
)

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "CancelOutcome",
    "Claimed",
    "DeadReason",
    "JobError",
    "JobRecord",
    "JobSpec",
    "NewJob",
    "Outcome",
    "Progress",
    "Source",
    "Status",
    "ms_to_datetime",
]


def ms_to_datetime(raw: str | None) -> datetime | None:
    """A stored epoch-ms time; None when absent or not a representable time (a record
    written by something else must not make the job unreadable)."""
    if not raw:
        return None
    try:
        return datetime.fromtimestamp(int(raw) / 1000, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


@dataclass(frozen=True, slots=True)
class JobError:
    """The last error of a job: exception type, message and traceback."""

    type: str
    message: str
    traceback: str = ""

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"type": self.type, "message": self.message, "traceback": self.traceback}
        )

    @classmethod
    def from_json(cls, raw: str | None) -> JobError | None:
        if not raw:
            return None
        try:
            data = orjson.loads(raw)
            return cls(
                str(data.get("type", "")),
                str(data.get("message", "")),
                str(data.get("traceback", "")),
            )
        except (orjson.JSONDecodeError, AttributeError):
            return cls("Unknown", raw)

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a job's latest attempt said it got (``BaseJob.progress``): a fraction
    from 0 to 1, an optional message, when Redis recorded it, and that attempt."""

    fraction: float
    message: str | None
    at: datetime | None
    attempt: int

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> Progress | None:
        """The progress of the attempt holding the record's lease now; None when that
        attempt reported none (an earlier attempt's is not this one's: see
        docs/progress.md), or the fields are not what progress.lua writes."""
        raw = h.get("progress")
        if raw is None or h.get("progress_lease") != h.get("lease"):
            return None
        try:
            fraction = float(raw)
        except ValueError:
            return None
        if not 0.0 <= fraction <= 1.0:  # NaN fails too
            return None
        at = ms_to_datetime(h.get("progress_at"))
        return cls(fraction, h.get("progress_message") or None, at, _int(h.get("attempts")))

    def as_dict(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "message": self.message, "at": _iso(self.at),
                "attempt": self.attempt}  # fmt: skip

    def __str__(self) -> str:
        """``40% resizing (attempt 2)``: the CLI's line."""
        said = f"{self.fraction:.0%}" + (f" {self.message}" if self.message else "")
        return f"{said} (attempt {self.attempt})"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored in Redis, parsed (or as the history archive last saw it: ``source``)."""

    id: str
    name: str
    queue: str
    lane: str
    status: Status
    params_json: str
    priority: int
    attempts: int
    crashes: int
    max_attempts: int
    timeout: float
    worker: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    due_at: datetime | None
    result_json: str | None
    error: JobError | None
    reason: str | None
    source: Source = Source.REDIS
    progress: Progress | None = None  # the latest attempt's (not in as_dict: see ops.jobs)
    waits_for: tuple[str, ...] = ()  # the jobs it was dispatched to wait for (depends_on)
    waited_for: bool = False  # jobs wait (or waited) for it: see Flows.dependants
    # its payload's version (BaseJob.version; absent: 1). Not in as_dict, whose keys
    # docs/json.md pins
    version: int = 1

    @classmethod
    def from_hash(cls, job_id: str, h: dict[str, str]) -> JobRecord:
        try:
            status = Status(h.get("status", "unknown"))
        except ValueError:
            status = Status.UNKNOWN
        return cls(
            id=job_id,
            name=h.get("name", ""),
            queue=h.get("queue") or split_lane(h.get("lane", ""))[0],
            lane=h.get("lane", ""),
            status=status,
            params_json=h.get("params", ""),
            priority=_int(h.get("priority")),
            attempts=_int(h.get("attempts")),
            crashes=_int(h.get("crashes")),
            max_attempts=_int(h.get("max_attempts")),
            timeout=_float(h.get("timeout")),
            worker=h.get("worker"),
            created_at=ms_to_datetime(h.get("created_at")),
            started_at=ms_to_datetime(h.get("started_at")),
            finished_at=ms_to_datetime(h.get("finished_at")),
            # absent: queued as it was created, so due then (see create_job in _lib.lua)
            due_at=ms_to_datetime(h.get("due_at") or h.get("created_at")),
            result_json=h.get("result"),
            error=JobError.from_json(h.get("error")),
            reason=h.get("reason"),
            version=_int(h.get("version")) or 1,
            progress=Progress.from_hash(h) if "progress" in h else None,
            waits_for=_ids(h.get("deps")) if "deps" in h else (),
            waited_for="dependants" in h,
        )

    @classmethod
    def unreadable(cls, job_id: str, why: str) -> JobRecord:
        """A key under a job's name that is no job hash (garbage written by something
        else): reported, with what Redis said, instead of raised."""
        return replace(
            cls.from_hash(job_id, {}),
            error=JobError("InvalidRecord", f"the key is not a job record: {why}"),
            reason=DeadReason.INVALID_RECORD.value,
        )

    @property
    def result(self) -> Any:
        """The decoded result (None until the job succeeded; the stored text as it is if
        something else wrote a result that is not JSON)."""
        if not self.result_json:
            return None
        try:
            return orjson.loads(self.result_json)
        except orjson.JSONDecodeError:
            return self.result_json

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (CLI ``--json``, HTTP)."""
        params: Any
        try:
            params = orjson.loads(self.params_json) if self.params_json else None
        except orjson.JSONDecodeError:
            params = self.params_json
        return {
            "id": self.id,
            "name": self.name,
            "queue": self.queue,
            "status": self.status.value,
            "params": params,
            "priority": self.priority,
            "attempts": self.attempts,
            "crashes": self.crashes,
            "worker": self.worker,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "due_at": _iso(self.due_at),
            "result": self.result if self.status is Status.SUCCEEDED else None,
            "error": None
            if self.error is None
            else {
                "type": self.error.type,
                "message": self.error.message,
                "traceback": self.error.traceback,
            },
            "reason": self.reason,
            "source": self.source.value,
        }


def _ids(raw: str | None) -> tuple[str, ...]:
    """A JSON list of job ids (wait.lua's ``deps``); () for anything else."""
    try:
        value = orjson.loads(raw or "[]")
    except orjson.JSONDecodeError:
        return ()
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _int(raw: str | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def _float(raw: str | None) -> float:
    try:
        return float(raw or 0)
    except ValueError:
        return 0.0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class JobSpec(NamedTuple):
    """What every job of one dispatch call shares (a class, its options): enqueue.lua
    takes it once per call, as :class:`jobkit.backend.calls.EnqueueArgs` sends it. The
    queue is the lane's part before '|'."""

    name: str
    lane: str
    priority: int
    delay_ms: int
    at_ms: int  # 0: none
    max_attempts: int
    timeout: float  # seconds; 0: none
    result_ttl: int
    limits: str  # see jobkit.job_limits: '' for a class with none
    # stored only when they say something (version > 1, a trace context): see enqueue.lua
    version: int = 1  # the class's payload version (BaseJob.version)
    trace: str = ""  # the dispatcher's W3C trace context as JSON (jobkit.tracing)


class NewJob(NamedTuple):
    """One job to create: its id and params, and the spec it shares with the jobs of
    its dispatch call.

    A NamedTuple rather than a frozen dataclass: dispatch builds one per call, and a
    tuple is built several times faster.
    """

    id: str
    params_json: str | bytes
    spec: JobSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def lane(self) -> str:
        return self.spec.lane

    @property
    def priority(self) -> int:
        return self.spec.priority

    @property
    def max_attempts(self) -> int:
        return self.spec.max_attempts

    @property
    def timeout(self) -> float:
        return self.spec.timeout

    @property
    def result_ttl(self) -> int:
        return self.spec.result_ttl

    @property
    def limits(self) -> str:
        return self.spec.limits


class Claimed(NamedTuple):
    """One leased job handed to a worker child (a NamedTuple: built for every job)."""

    id: str
    token: str
    name: str
    params_json: str
    attempts: int
    timeout: float
    lane: str
    # only a job stored with them has other values (see claim.lua): 1 and '' cost nothing
    version: int = 1
    trace: str = ""
