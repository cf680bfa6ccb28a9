"""Events (and the job records read beside them) folded into archive rows.

One batch of events becomes at most one job row per job (its state after the batch's
last event of it) and one attempt row per attempt that ended. Events carry no params,
result or error: for a job whose batch ends an attempt or reaches a final state, the
archiver reads the job's record from Redis in the same batch, and its details fill the
rows. A job whose record has expired keeps what the events tell (details None: the
upsert keeps what an earlier batch wrote).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jobkit.backend.events import Event
from jobkit.models import JobRecord, Status

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


def needs_record(event: Event) -> bool:
    """Whether this event calls for the job's record (params, result, error)."""
    return event.ended_attempt or event.to_status in FINAL


@dataclass
class Rows:
    """One batch's rows: job rows by id, attempt rows by (id, attempt)."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)


def fold(events: Iterable[Event], records: Mapping[str, JobRecord | None]) -> Rows:
    """The rows ``events`` make (any order: each job's are applied oldest first), with
    details from ``records`` (by job id; missing or None: expired)."""
    rows = Rows()
    for event in sorted(events, key=lambda e: (e.at_ms, _seq(e.seq))):
        _apply(rows, event)
    for job_id, row in rows.jobs.items():
        record = records.get(job_id)
        if record is not None:
            _fill(row, record, rows)
    return rows


def _apply(rows: Rows, e: Event) -> None:
    row = rows.jobs.get(e.id)
    if row is None:
        row = rows.jobs[e.id] = dict.fromkeys(DETAILS)
        row.update(id=e.id, queue=e.queue, job_class=e.job_class)
    row.update(
        status=e.to_status,
        attempts=e.attempt,
        changed_at=e.at,
        event_ms=e.at_ms,
        event_seq=_seq(e.seq),
    )
    if e.job_class:
        row["job_class"] = e.job_class
    if e.worker:
        row["worker"] = e.worker
    if e.reason:
        row["reason"] = e.reason
    if not e.from_status:
        row["created_at"] = e.at
    if e.to_status == Status.RUNNING.value:
        row["started_at"] = e.at
    if e.to_status in FINAL:
        row["finished_at"] = e.at
    if e.ended_attempt:
        row["duration_ms"] = e.duration_ms
        started = None if e.duration_ms is None else e.at - timedelta(milliseconds=e.duration_ms)
        rows.attempts[(e.id, e.attempt)] = {
            "job_id": e.id,
            "attempt": e.attempt,
            "queue": e.queue,
            "job_class": row["job_class"],
            "worker": e.worker or None,
            "outcome": e.to_status,
            "reason": e.reason or None,
            "error_type": None,
            "error_message": None,
            "traceback": None,
            "started_at": started,
            "finished_at": e.at,
            "duration_ms": e.duration_ms,
        }


def _fill(row: dict[str, Any], record: JobRecord, rows: Rows) -> None:
    """What the job's record adds to its row, and to the row of its last attempt."""
    row["params"] = record.params_json or row["params"]
    if record.name:
        row["job_class"] = record.name
    if record.result_json is not None and row["status"] == Status.SUCCEEDED.value:
        row["result"] = record.result_json
    for name in ("created_at", "started_at", "finished_at"):
        ours: datetime | None = getattr(record, name)
        row[name] = ours or row[name]
    if record.error is not None:
        row["error_type"] = record.error.type
        row["error_message"] = record.error.message
        row["traceback"] = record.error.traceback
        attempt = rows.attempts.get((row["id"], record.attempts))
        if attempt is not None and attempt["outcome"] != Status.SUCCEEDED.value:
            attempt["error_type"] = record.error.type
            attempt["error_message"] = record.error.message
            attempt["traceback"] = record.error.traceback


def _seq(stream_id: str) -> int:
    return int(stream_id.partition("-")[2] or 0)
