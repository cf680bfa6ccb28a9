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
)
from jobkit.cli.jobs import job
from jobkit.connection import get_store
from jobkit.errors import JobkitError

app = typer.Typer(help="Inspect, retry and purge dead-lettered jobs.", no_args_is_help=True)

JobIds = Annotated[list[str] | None, typer.Argument()]
AllDead = Annotated[bool, typer.Option("--all", help="every dead job")]


@app.command("list")
def dead_list(
    limit: int = 50, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False
) -> None:
    """Dead-lettered jobs, newest first."""
    connect(redis_url, prefix)
    store = get_store()
    records = [r for r in store.get_many(store.dead_ids(limit)) if r is not None]
    if as_json:
        print_json([r.as_dict() for r in records])
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
    """Send dead jobs back to their queues with a fresh attempt budget."""
    connect(redis_url, prefix)
    store = get_store()
    ids = store.dead_ids(limit=10**9) if all_ else list(job_ids or [])
    if not ids:
        raise typer.BadParameter("give job ids or --all")
    revived = 0
    for job_id in ids:
        try:
            revived += store.revive(job_id)
        except JobkitError as exc:
            console.print(f"error: {exc}", style="red")
    console.print(f"requeued {revived} of {len(ids)} job(s)")
    if revived < len(ids):
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
    purged = get_store().purge([] if all_ else list(job_ids or []))
    console.print(f"purged {purged} dead job(s)")
