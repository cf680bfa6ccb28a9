"""What the dashboard's pages show, built from :mod:`jobkit.ops` (the layer the CLI and
the API use): each function returns a template's context, so a page and its live
fragments render from the same data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from jobkit.models import JobRecord, Status
from jobkit.ops import Store
from jobkit.ops.jobs import Event, attempts_of, events_of
from jobkit.ops.listing import JobPage
from jobkit.web.dashboard.live import Snapshot

NAV = [
    ("overview", "Overview", "/"),
    ("workers", "Workers", "/workers"),
    ("jobs", "Jobs", "/jobs"),
    ("scheduled", "Scheduled", "/scheduled"),
    ("dead", "Dead", "/dead"),
    ("search", "Search", "/search"),
    ("history", "History", "/history"),
    ("activity", "Activity", "/activity"),
]
AGES = [("", "any age"), ("10m", "last 10 minutes"), ("1h", "last hour"), ("1d", "last day"),
        ("7d", "last 7 days")]  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One job of a table: its record and the time it is listed by (epoch s)."""

    record: JobRecord
    at: float | None


def rows(page: JobPage | None) -> list[Row]:
    if page is None:
        return []
    return [Row(item.record, item.at_ms / 1000 if item.at_ms else None) for item in page.jobs]


def record_rows(records: list[JobRecord]) -> list[Row]:
    def at(r: JobRecord) -> float | None:
        when = r.finished_at or r.started_at or r.created_at
        return when.timestamp() if when else None

    return [Row(r, at(r)) for r in records]


ASIDES_SHOWN = 3  # keys set aside the overview's banner names; the rest are counted


def overview_context(snapshot: Snapshot) -> dict[str, Any]:
    """The overview's figures: every queue, the fleet's totals, the chart's series, and
    the keys set aside (newest first: the banner names a few and counts the rest)."""
    seen = snapshot.overview
    asides = list(reversed(seen.asides)) if seen else []
    return {
        "queues": seen.queues if seen else [],
        "fleet": seen.fleet if seen else _EMPTY_FLEET,
        "chart": snapshot.chart or {"minutes": [], "queues": {}},
        "error": snapshot.error,
        "asides": asides[:ASIDES_SHOWN],
        "asides_more": max(0, len(asides) - ASIDES_SHOWN),
    }


_EMPTY_FLEET: dict[str, Any] = {
    "ready": None, "running": None, "scheduled": None, "retrying": None, "dead": None,
    "workers": None, "per_minute": {},
}  # fmt: skip


@cache
def cron_words(expr: str) -> str:
    """A cron expression in plain words ("At 02:00 AM, Monday through Friday"); jobkit's
    six-field form has its seconds last, cron-descriptor's first."""
    try:
        from cron_descriptor import Options, get_description
    except ImportError:  # the http extra brings it; without it, the expression says it
        return expr
    fields = expr.split()
    if len(fields) == 6:
        fields = [fields[5], *fields[:5]]
    options = Options()
    options.use_24hour_time_format = True
    try:
        return str(get_description(" ".join(fields), options))
    except Exception:  # an expression croniter takes and the describer does not
        return expr


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job, for the timeline."""

    attempt: int
    started: datetime | None
    duration_ms: int | None
    outcome: str
    worker: str
    reason: str
    error: str
    width: float  # percent of the longest attempt's duration


def timeline(store: Store, record: JobRecord) -> dict[str, Any]:
    """Every attempt of a job (worker, start, duration, outcome) and every state change:
    from the events for a job Redis holds, from the archive's attempts for one it does not."""
    attempts: list[Attempt] = []
    changes: list[Event] = []
    note = ""
    if record.source.value == "archive":
        for a in attempts_of(record):
            attempts.append(Attempt(a.attempt, a.started_at, a.duration_ms, a.outcome,
                                    a.worker or "", a.reason or "",
                                    str(a.error) if a.error else "", 0.0))  # fmt: skip
        note = "from the history archive"
    else:
        changes = events_of(store, record)
        attempts = _from_events(changes)
        note = "from the events kept" if changes else "no events kept for it"
    longest = max([a.duration_ms or 0 for a in attempts] + [1])
    attempts = [
        Attempt(**{**a.__dict__, "width": max(1.0, 100.0 * (a.duration_ms or 0) / longest)})
        for a in attempts
    ]
    return {"attempts": attempts, "changes": changes, "timeline_note": note, "note": note}


def _from_events(events: list[Event]) -> list[Attempt]:
    out: list[Attempt] = []
    open_: dict[int, Event] = {}
    for e in events:
        if e.to_status == Status.RUNNING.value:
            open_[e.attempt] = e
        elif e.ended_attempt:
            start = open_.pop(e.attempt, None)
            error = f"{e.error_type}: {e.error_message}" if e.error_type else ""
            out.append(Attempt(e.attempt, start.at if start else None, e.duration_ms,
                               e.to_status, e.worker, e.reason, error, 0.0))  # fmt: skip
    for e in open_.values():  # running now
        out.append(Attempt(e.attempt, e.at, None, "running", e.worker, "", "", 0.0))
    return out
