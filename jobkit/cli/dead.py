"""`jobkit dead ...`: inspect, retry and purge dead-lettered jobs."""

from __future__ import annotations

from typing import Annotated

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
from jobkit.cli.jobs import job
from jobkit.connection import get_store
from jobkit.ops.dead import dead_jobs, purge_dead, retry_dead

app = typer_app(help="Inspect, retry and purge dead-lettered jobs.", no_args_is_help=True)

JobIds = Annotated[list[str] | None, typer.Argument()]
AllDead = Annotated[bool, typer.Option("--all", help="every dead job")]


@app.command("list")
def dead_list(
    limit: int = 50, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False
) -> None:
    """Dead-lettered jobs, newest first (exit code 1 if a queue's dead set could not be
    read: its key is named on stderr)."""
    connect(redis_url, prefix)
    found = dead_jobs(get_store(), limit)
    records = found.items
    if as_json:
        print_json([r.as_dict() for r in records])
        skipped(found.problems, as_json=True)
        return
    table = Table(
        id_column("id"), "job", "reason", "attempts", "died at", "error", title="dead jobs"
    )
    for r in records:
        table.add_row(
            r.id,
            r.name,
            r.reason or "",
            str(r.attempts),
            r.finished_at.isoformat(timespec="seconds") if r.finished_at else "",
            str(r.error or "")[:80],
        )
    console.print(table)
    skipped(found.problems)


@app.command("show")
def dead_show(
    job_id: str, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False
) -> None:
    """One dead job with its last traceback."""
    job(job_id, redis_url, prefix, as_json)


@app.command("retry")
def dead_retry(
    job_ids: JobIds = None,
    all_: AllDead = False,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
) -> None:
    """Send dead jobs back to their queues with a fresh attempt budget (exit code 1 if
    any could not be: not dead, unknown, or its record cannot be queued)."""
    connect(redis_url, prefix)
    if not job_ids and not all_:
        raise typer.BadParameter("give job ids or --all")
    revived, asked = retry_dead(get_store(), None if all_ else list(job_ids or []))
    console.print(f"requeued {revived} of {asked} job(s)")
    if revived < asked:
        raise typer.Exit(1)


@app.command("purge")
def dead_purge(
    job_ids: JobIds = None,
    all_: AllDead = False,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
) -> None:
    """Delete dead jobs for good."""
    connect(redis_url, prefix)
    if not job_ids and not all_:
        raise typer.BadParameter("give job ids or --all")
    purged = purge_dead(get_store(), None if all_ else list(job_ids or []))
    console.print(f"purged {purged} dead job(s)")
