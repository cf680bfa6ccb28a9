"""`jobkit scheduler` (the process) and `jobkit schedules` (what it does, and did)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer

from jobkit import registry
from jobkit.cli.common import (
    AppModules,
    AsJson,
    LogFormatOption,
    LogLevel,
    Prefix,
    RedisUrl,
    Table,
    connect,
    console,
    print_json,
    setup_logging,
)
from jobkit.schedule import BoundSchedule, collect

app = typer.Typer()


def _load(app_modules: list[str]) -> list[BoundSchedule]:
    registry.import_apps(app_modules)
    return collect(list(registry.registered().values()))


@app.command()
def scheduler(
    app_modules: AppModules,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    log_level: LogLevel = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run a scheduler: enqueue cron slots (each once, however many schedulers run) and
    promote delayed jobs when they fall due. Stops cleanly on SIGTERM / Ctrl-C."""
    from jobkit import connection
    from jobkit.scheduler import Scheduler

    settings = connection.configure(
        redis_url=redis_url or connection.get_settings().redis_url,
        prefix=prefix,
        log_format=log_format,
    )
    setup_logging(log_level or settings.log_level, settings.log_format)
    schedules = _load(app_modules)
    raise typer.Exit(Scheduler(connection.connect(settings), schedules).run())


def _iso(t: float | None, b: BoundSchedule) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, b.cron.zone).isoformat()


def _rows(schedules: list[BoundSchedule]) -> list[dict[str, Any]]:
    from jobkit.backend.schedules import ScheduleStore
    from jobkit.connection import get_store

    sched = ScheduleStore(get_store())
    now = sched.now()
    states = sched.states(schedules)
    statuses = sched.job_statuses([s.last_job or "" for s in states])
    rows = []
    for b, st, status in zip(schedules, states, statuses, strict=True):
        after = max(now, st.cursor or 0)
        rows.append(
            {
                "schedule": b.key,
                "job": b.job.name,
                "expr": b.cron.expr,
                "tz": b.cron.tz,
                "misfire": b.cron.misfire,
                "grace": b.cron.grace,
                "params": dict(b.cron.params),
                "next_runs": [d.isoformat() for d in b.cron.next_runs(3, after=after)],
                "last_run": _iso(st.last_slot, b),
                "last_fired_at": _iso(st.last_fired_at, b),
                "last_job": st.last_job,
                # a finished job's hash expires after its result_ttl
                "last_status": status or ("expired" if st.last_job else None),
                "fired": st.fired,
                "skipped": st.skipped,
            }
        )
    return rows


@app.command()
def schedules(
    app_modules: AppModules,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    as_json: AsJson = False,
) -> None:
    """Every cron schedule of the given modules: next runs, last run and its status."""
    connect(redis_url, prefix)
    rows = _rows(_load(app_modules))
    if as_json:
        print_json(rows)
        return
    table = Table(
        "schedule",
        "cron",
        "tz",
        "misfire",
        "next runs",
        "last run",
        "status",
        "fired",
        "skipped",
        title="schedules",
    )
    for r in rows:
        table.add_row(
            r["schedule"],
            r["expr"],
            r["tz"],
            r["misfire"],
            "\n".join(r["next_runs"]),
            r["last_run"] or "never",
            r["last_status"] or "-",
            str(r["fired"]),
            str(r["skipped"]),
        )
    console.print(table)
    if not rows:
        console.print("no schedules declared in " + ", ".join(app_modules))
