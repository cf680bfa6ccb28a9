"""`jobkit job` (one job's state) and `jobkit cancel`."""

from __future__ import annotations

import typer

from jobkit.cli.common import (
    AsJson,
    Prefix,
    RedisUrl,
    Table,
    connect,
    console,
    print_json,
    typer_app,
)
from jobkit.connection import get_store
from jobkit.models import CancelOutcome, JobRecord, Source
from jobkit.ops.jobs import (
    ArchivedAttempt,
    Event,
    attempts_of,
    cancel_job,
    events_of,
    find_job,
    job_document,
    waited_by,
)

app = typer_app()


def show_record(rec: JobRecord, as_json: bool, *, header: bool = True) -> None:
    """One job's record as a two-column table (its error and traceback below), or JSON;
    ``header``: its id on a line above (else the caller printed it)."""
    data = rec.as_dict()
    if as_json:
        print_json(data)
        return
    error = data.pop("error")
    data.pop("id", None)
    if header:
        console.print(f"job {rec.id}", soft_wrap=True)  # an id is never cut, however long
    table = Table(show_header=False)
    for key, value in data.items():
        table.add_row(key, "" if value is None else str(value))
    if rec.progress is not None:
        at = rec.progress.at.strftime("%Y-%m-%d %H:%M:%S") if rec.progress.at else ""
        table.add_row("progress", f"{rec.progress} at {at}")
    console.print(table)
    if error:
        console.print(f"{error['type']}: {error['message']}", style="red")
        if error["traceback"]:
            console.print(error["traceback"])


@app.command()
def job(
    job_id: str, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False
) -> None:
    """Show one job: status, attempts, result or last error, and its history: every
    state change, which worker ran each attempt, how it ended and how long it took.

    A job Redis no longer holds is shown from the history archive, if it has it (said
    above the table; "source": "archive" in --json), with its archived attempts."""
    connect(redis_url, prefix)
    store = get_store()
    rec = find_job(store, job_id)
    if rec is None:
        if as_json:
            print_json({"id": job_id, "status": "unknown"})
        else:
            console.print(f"job {job_id}: unknown")
        raise typer.Exit(1)
    if as_json:  # one shape with GET /jobs/{id}?history=1
        print_json(job_document(store, rec, history=True))
        return
    if rec.source is Source.ARCHIVE:
        _show_archived(rec, attempts_of(rec))
        return
    show_record(rec, False)
    for label, ids in (("waits for", rec.waits_for), ("waited for by", waited_by(store, rec))):
        if ids:
            console.print(f"{label}: {', '.join(ids)}", soft_wrap=True)
    show_history(events_of(store, rec))


def _show_archived(rec: JobRecord, attempts: list[ArchivedAttempt]) -> None:
    """A job read from the history archive, and its archived attempts."""
    console.print(
        f"job {rec.id}: from the history archive (Redis no longer holds it)", soft_wrap=True
    )
    show_record(rec, False, header=False)
    table = Table("attempt", "worker", "outcome", "reason", "started", "ran", "error",
                  title="attempts (from the history archive)")  # fmt: skip
    for a in attempts:
        ran = "" if a.duration_ms is None else f"{a.duration_ms / 1000:.3f}s"
        started = a.started_at.strftime("%Y-%m-%d %H:%M:%S") if a.started_at else ""
        table.add_row(str(a.attempt), a.worker or "", a.outcome, a.reason or "", started, ran,
                      str(a.error) if a.error else "")  # fmt: skip
    console.print(table if attempts else "attempts: none archived")


def show_history(history: list[Event]) -> None:
    """A job's events as a table, oldest first."""
    if not history:
        console.print("history: no events (older than the events kept, or none recorded)")
        return
    table = Table("when", "change", "attempt", "worker", "ran", "reason", "error",
                  title="history")  # fmt: skip
    for e in history:
        ran = "" if e.duration_ms is None else f"{e.duration_ms / 1000:.3f}s"
        change = f"{e.from_status or 'new'} -> {e.to_status}"
        error = f"{e.error_type}: {e.error_message}" if e.error_type else ""
        table.add_row(e.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], change, str(e.attempt),
                      e.worker, ran, e.reason, error)  # fmt: skip
    console.print(table)


@app.command()
def cancel(job_ids: list[str], redis_url: RedisUrl = None, prefix: Prefix = None) -> None:
    """Cancel jobs: one that has not started is withdrawn; a running one is stopped by its
    worker within about a second (it ends cancelled, not retried). Exit code 1 if any was
    refused (it has finished, or no such job)."""
    connect(redis_url, prefix)
    store = get_store()
    refused = 0
    for job_id in job_ids:
        outcome = cancel_job(store, job_id)
        refused += not outcome
        console.print(f"job {job_id}: {_said(outcome, job_id)}")
    if refused:
        raise typer.Exit(1)


def _said(outcome: CancelOutcome, job_id: str) -> str:
    if outcome is CancelOutcome.CANCELLED:
        return "cancelled (it had not started)"
    if outcome is CancelOutcome.REQUESTED:
        return "cancel requested: it is running; its worker stops it within about a second"
    if outcome is CancelOutcome.FINISHED:
        rec = get_store().reads.get(job_id)
        status = rec.status.value if rec else "finished"
        return f"refused: it has finished ({status})"
    return "refused: unknown job (no such id, or its record expired)"
