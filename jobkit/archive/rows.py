"""Events (and the job records read beside them) folded into archive rows.

One batch of events becomes at most one job row per job (its state after the batch's
last event of it) and one attempt row per attempt that ended. Events carry no params,
result or error: for a job whose batch ends an attempt or reaches a final state, the
archiver reads those fields of the job's record from Redis (:data:`DETAIL_FIELDS`, one
HMGET each, in one round trip), and they fill the rows. A job whose record has expired
keeps what the events tell (details None: the upsert keeps what an earlier batch wrote).

Times in rows are epoch milliseconds (ints), as Redis holds them: the upserts write them
as each database's time (see :mod:`jobkit.archive.upserts`), without a datetime per value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobkit.backend.events import Event
from jobkit.models import JobError, Status

# statuses after which a job changes no more (unless revived): its record is read
FINAL = frozenset({Status.SUCCEEDED.value, Status.DEAD.value, Status.CANCELLED.value, "purged"})

# columns an event never fills: an upsert keeps the stored value where the row has None
DETAILS = (
    "params",
    "result",
    "error_type",
    "error_message",
    "traceback",
    "reason",
    "worker",
    "created_at",
    "started_at",
    "finished_at",
    "duration_ms",
)

# the fields of a job's record (its Redis hash) that the archive's rows take
DETAIL_FIELDS = (
    "name", "params", "result", "error", "attempts", "created_at", "started_at", "finished_at",
)  # fmt: skip
_TIMES = ("created_at", "started_at", "finished_at")

Record = Sequence[str | None]  # a record's DETAIL_FIELDS, in that order


def needs_record(event: Event) -> bool:
    """Whether this event calls for the job's record (params, result, error)."""
    return event.from_status == "running" or event.to_status in FINAL


@dataclass
class Rows:
    """One batch's rows: job rows by id, attempt rows by (id, attempt)."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)


def fold(events: Iterable[Event], records: Mapping[str, Record | None]) -> Rows:
    """The rows ``events`` make (any order: each job's are applied oldest first), with
    details from ``records`` (by job id, :data:`DETAIL_FIELDS` as Redis holds them;
    missing or None: expired)."""
    rows = Rows()
    for event in sorted(events, key=_order):
        _apply(rows, event)
    for job_id, record in records.items():
        row = rows.jobs.get(job_id)
        if row is not None and record is not None:
            _fill(row, record, rows)
    return rows


def _order(e: Event) -> tuple[int, int]:
    return e.at_ms, _seq(e.seq)


def _apply(rows: Rows, e: Event) -> None:
    at = e.at_ms
    row = rows.jobs.get(e.id)
    if row is None:
        row = rows.jobs[e.id] = dict.fromkeys(DETAILS)
        row["id"] = e.id
        row["queue"] = e.queue
        row["job_class"] = e.job_class
    elif e.job_class:
        row["job_class"] = e.job_class
    row["status"] = to = e.to_status
    row["attempts"] = e.attempt
    row["changed_at"] = at
    row["event_ms"] = e.at_ms
    row["event_seq"] = _seq(e.seq)
    if e.worker:
        row["worker"] = e.worker
    if e.reason:
        row["reason"] = e.reason
    if not e.from_status:
        row["created_at"] = at
    elif e.from_status == "running":
        _end_attempt(rows, row, e, at)
    if to == "running":
        row["started_at"] = at
    elif to in FINAL:
        row["finished_at"] = at


def _end_attempt(rows: Rows, row: dict[str, Any], e: Event, at: int) -> None:
    row["duration_ms"] = ms = e.duration_ms
    rows.attempts[(e.id, e.attempt)] = {
        "job_id": e.id,
        "attempt": e.attempt,
        "queue": e.queue,
        "job_class": row["job_class"],
        "worker": e.worker or None,
        "outcome": e.to_status,
        "reason": e.reason or None,
        "error_type": e.error_type or None,
        "error_message": e.error_message or None,
        "traceback": None,
        "started_at": None if ms is None else at - ms,
        "finished_at": at,
        "duration_ms": ms,
    }


def _fill(row: dict[str, Any], record: Record, rows: Rows) -> None:
    """What the job's record adds to its row, and to the row of its last attempt."""
    name, params, result, error, attempts, *times = record
    if params:
        row["params"] = params
    if name:
        row["job_class"] = name
    if result is not None and row["status"] == Status.SUCCEEDED.value:
        row["result"] = result
    for column, raw in zip(_TIMES, times, strict=True):
        if raw:
            row[column] = _ms(raw) or row[column]
    failure = JobError.from_json(error)
    if failure is not None:
        row["error_type"] = failure.type
        row["error_message"] = failure.message
        row["traceback"] = failure.traceback
        # the record keeps the last error, its traceback and its whole message: they
        # belong to the attempt that made it (each attempt's event has its own error)
        attempt = rows.attempts.get((row["id"], _int(attempts)))
        if (
            attempt is not None
            and attempt["outcome"] != Status.SUCCEEDED.value
            and (attempt["error_type"] in (None, failure.type))
        ):
            attempt["error_type"] = failure.type
            attempt["error_message"] = failure.message
            attempt["traceback"] = failure.traceback


# epoch ms a time column takes (years 1970 to 9999): a record's garbage is left out
_LATEST_MS = 253_402_300_799_999


def _ms(raw: str) -> int | None:
    try:
        ms = int(raw)
    except ValueError:
        return None
    return ms if 0 < ms <= _LATEST_MS else None


def _int(raw: str | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def _seq(stream_id: str) -> int:
    return int(stream_id.partition("-")[2] or 0)
