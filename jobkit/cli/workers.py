"""`jobkit workers`: the live worker registry, each supervisor with its children; `jobkit
workers prune` drops workers that stopped beating."""

from __future__ import annotations

from datetime import datetime

import typer

from jobkit.cli.common import (
    AsJson,
    Prefix,
    RedisUrl,
    Table,
    connect,
    console,
    id_column,
    print_json,
    skipped,
    typer_app,
)
from jobkit.connection import get_settings, get_store
from jobkit.ops.workers import (
    CurrentJob,
    WorkerInfo,
    prune_workers,
    read_workers,
    worker_jobs,
    worker_view,
)

app = typer_app(
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
                str(c.done),
                str(c.failed),
                _rss(c.rss_mb),
            )
    return table


@app.callback()
def workers(
    ctx: typer.Context, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False
) -> None:
    """Live workers and their children: where they run, what they run now (id, class,
    since when), what they have done, their memory (exit code 1 if a worker's entry
    could not be read: its key is named on stderr)."""
    if ctx.invoked_subcommand is not None:
        return
    connect(redis_url, prefix)
    found = read_workers(get_store())
    if as_json:
        print_json([w.as_dict() for w in found.items])
        skipped(found.problems, as_json=True)
        return
    console.print(_table(found.items))
    skipped(found.problems)


@app.command()
def prune(redis_url: RedisUrl = None, prefix: Prefix = None) -> None:
    """Remove workers that missed two heartbeats now, rather than when their entries
    expire (their jobs are requeued as any dead worker's, when the leases lapse)."""
    connect(redis_url, prefix)
    pruned = prune_workers(get_store(), get_settings().heartbeat)
    console.print(f"pruned {len(pruned)} stale worker(s)" + (": " if pruned else ""))
    for name in pruned:
        console.print(f"  {name}")


@app.command()
def show(
    name: str,
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="how many jobs"),
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    as_json: AsJson = False,
) -> None:
    """The last jobs worker NAME ran (id, class, outcome, duration, when), newest first;
    also after it stopped, for as long as the events are kept (JOBKIT_EVENTS_MAX_AGE)."""
    connect(redis_url, prefix)
    if as_json:  # one shape with GET /workers/{name}
        view = worker_view(get_store(), name, limit)
        print_json(view or {"name": name, "live": None, "jobs": []})
        if view is None:
            raise typer.Exit(1)
        return
    done = worker_jobs(get_store(), name, limit)
    if not done:
        console.print(f"worker {name}: no jobs in the events kept")
        raise typer.Exit(1)
    table = Table(id_column("job"), "class", "outcome", "attempt", "ran", "when",
                  title=f"worker {name}: last {len(done)} jobs")  # fmt: skip
    for e in done:
        outcome = e.to_status + (f" ({e.reason})" if e.reason else "")
        ran = "" if e.duration_ms is None else f"{e.duration_ms / 1000:.3f}s"
        when = e.at.astimezone().isoformat(sep=" ", timespec="seconds")
        table.add_row(e.id, e.job_class, outcome, str(e.attempt), ran, when)
    console.print(table)
