"""`jobkit workers`: the live worker registry, each supervisor with its children; `jobkit
workers prune` drops workers that stopped beating."""

from __future__ import annotations

from datetime import datetime

import typer

from jobkit.backend.workers import CurrentJob, WorkerInfo, WorkerRegistry
from jobkit.cli.common import (
    AsJson,
    Prefix,
    RedisUrl,
    Table,
    connect,
    console,
    id_column,
    print_json,
)
from jobkit.connection import get_settings, get_store

app = typer.Typer(
    help="Live workers: where they run, what they run now, what they have done.",
    invoke_without_command=True,
)


def _time(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds")


def _jobs(jobs: list[CurrentJob]) -> tuple[str, str, str]:
    """The id, class and start columns of the jobs running now: one job a line."""
    if not jobs:
        return "-", "", ""
    return (
        "\n".join(j.id for j in jobs),
        "\n".join(j.name for j in jobs),
        "\n".join(_time(j.since) for j in jobs),
    )


def _rss(mb: float | None) -> str:
    return "" if mb is None else f"{mb:.1f}"


def _table(rows: list[WorkerInfo]) -> object:
    table = Table(
        "worker",
        "host",
        "pid",
        "queues",
        "tags",
        "started",
        id_column("running now"),
        "class",
        "since",
        "done",
        "failed",
        "RSS MB",
    )
    for w in rows:
        table.add_row(
            f"{w.name} ({w.state})",
            w.host,
            str(w.pid or ""),
            ",".join(w.queues),
            ",".join(w.tags),
            _time(w.started_at),
            *_jobs(w.jobs if not w.children else []),
            str(w.done),
            str(w.failed),
            _rss(w.rss_mb),
        )
        for c in w.children:
            table.add_row(
                "  child",
                w.host,
                str(c.pid),
                ",".join(w.queues),
                ",".join(w.tags),
                _time(c.started_at),
                *_jobs(c.jobs),
                "",
                "",
                _rss(c.rss_mb),
            )
    return table


@app.callback()
def workers(
    ctx: typer.Context, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False
) -> None:
    """Live workers and their children: where they run, what they run now (id, class,
    since when), what they have done, their memory."""
    if ctx.invoked_subcommand is not None:
        return
    connect(redis_url, prefix)
    rows = WorkerRegistry(get_store()).live()
    if as_json:
        print_json([w.as_dict() for w in rows])
        return
    console.print(_table(rows))


@app.command()
def prune(redis_url: RedisUrl = None, prefix: Prefix = None) -> None:
    """Remove workers that missed two heartbeats now, rather than when their entries
    expire (their jobs are requeued as any dead worker's, when the leases lapse)."""
    connect(redis_url, prefix)
    pruned = WorkerRegistry(get_store()).prune(get_settings().heartbeat)
    console.print(f"pruned {len(pruned)} stale worker(s)" + (": " if pruned else ""))
    for name in pruned:
        console.print(f"  {name}")
