"""`jobkit info`: per queue the jobs ready, running, scheduled, retrying and dead, how long
the next job has waited, rates over 1/5/15 minutes, the workers serving it and the history
archive's lag; totals."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from jobkit.cli.common import (
    AsJson,
    Prefix,
    RedisUrl,
    Table,
    connect,
    console,
    print_json,
    skipped,
    typer_app,
)
from jobkit.connection import get_store
from jobkit.ops.overview import QueueView, overview

app = typer_app()

# shared with jobkit top, which is this overview redrawn
Interval = Annotated[
    float,
    typer.Option("--interval", "-d", min=0.5, help="seconds between two reads (0.5 at least)"),
]
Iterations = Annotated[
    int | None,
    typer.Option("--iterations", "-n", min=1, help="draw this many frames, then exit"),
]


def number(value: int | None) -> str:
    """A count as a table shows it: "?" where its key was unreadable."""
    return "?" if value is None else str(value)


def _rate(rates: dict[str, float]) -> str:
    return " / ".join(f"{rates[w]:g}" for w in ("1m", "5m", "15m"))


def lag(events: int | None, lost: bool) -> str:
    """The archive's lag as a table shows it: "-" where no archiver reads the queue."""
    if events is None:
        return "-"
    return f"{events} (some lost)" if lost else str(events)


def waited(seconds: float | None) -> str:
    """How long the next job waited, in the unit that reads best."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.1f}h"


@app.command()
def info(
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    as_json: AsJson = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="redraw every --interval seconds, as jobkit top")
    ] = False,
    interval: Interval = 2.0,
    iterations: Iterations = None,
) -> None:
    """Per queue: ready, running, scheduled, retrying and dead jobs, how long the job next
    in line has waited, jobs done and failed per minute over the last 1/5/15 minutes
    (from the events kept), the workers serving it, and the history archive's lag (events
    jobkit archiver has not archived yet; "-" where no archiver reads the queue); then
    totals for the fleet. A key that could not be read is named on stderr ("problems"
    with --json) and the exit code is 1. With --watch: jobkit top, redrawn until Ctrl-C
    or q."""
    if watch:
        if as_json:
            raise typer.BadParameter("prints once: leave out --watch", param_hint="--json")
        # imported here: jobkit top builds on this module's formatting
        from jobkit.cli.top import watch as watch_view

        watch_view(redis_url, prefix, interval, iterations)
        return
    if iterations is not None:
        raise typer.BadParameter("draws frames with --watch only", param_hint="--iterations")
    connect(redis_url, prefix)
    store = get_store()
    seen = overview(store)
    views, fleet = seen.queues, seen.fleet
    if as_json:
        print_json(seen.as_dict())  # one shape with GET /stats; "problems" names the keys
        if fleet["problems"]:
            raise typer.Exit(1)
        return
    console.print(_table(views, fleet))
    totals = ", ".join(f"{k} {v}" for k, v in sorted(fleet["totals"].items()))
    console.print(f"since the start: {totals or 'nothing yet'}")
    skipped(fleet["problems"])  # on stderr, exit 1


def _table(views: list[QueueView], fleet: dict[str, Any]) -> object:
    table = Table("queue", "ready", "running", "scheduled", "retrying", "dead", "next waited",
                  "done/min 1/5/15m", "failed/min", "workers", "archive lag",
                  title="jobkit")  # fmt: skip
    for v in views:
        table.add_row(
            v.queue + (" (paused)" if v.paused else ""),
            number(v.ready), number(v.running), number(v.scheduled), number(v.retrying),
            number(v.dead),
            waited(v.next_waited_s), _rate(v.per_minute["done"]),
            _rate(v.per_minute["failed"]), str(len(v.workers)), lag(v.archive_lag, v.archive_lost),
        )  # fmt: skip
    rates = fleet["per_minute"] or {"done": {}, "failed": {}}
    table.add_row(
        "all", str(fleet["ready"]), number(fleet["running"]), str(fleet["scheduled"]),
        str(fleet["retrying"]), number(fleet["dead"]), "",
        _rate(rates["done"]) if rates.get("done") else "",
        _rate(rates["failed"]) if rates.get("failed") else "", str(fleet["workers"]),
        lag(fleet["archive_lag"], False), style="bold",
    )  # fmt: skip
    return table
