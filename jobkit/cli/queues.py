"""`jobkit queues`: sizes and state of every queue; pause, resume and purge one."""

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
    print_json,
    skipped,
    typer_app,
)
from jobkit.connection import get_store
from jobkit.ops.overview import queue_rows
from jobkit.ops.queues import Queues

app = typer_app(help="Queues: sizes and state; pause, resume, purge.", invoke_without_command=True)

Queue = Annotated[str, typer.Argument(help="the queue's name")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


@app.callback()
def queues(
    ctx: typer.Context, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False
) -> None:
    """Every queue: ready, running, scheduled and dead jobs, and whether it is paused ("?"
    where a key could not be read: it is named on stderr, and the exit code is 1)."""
    if ctx.invoked_subcommand is not None:
        return
    connect(redis_url, prefix)
    found = queue_rows(get_store())
    if as_json:  # one shape with GET /queues
        print_json(found.items)
        skipped(found.problems, as_json=True)
        return
    table = Table("queue", "state", "ready", "running", "scheduled", "dead", title="queues")
    for s in found.items:
        table.add_row(
            s["queue"],
            "paused" if s["paused"] else "active",
            _n(s["ready"]),
            _n(s["running"]),
            _n(s["scheduled"]),
            _n(s["dead"]),
        )
    console.print(table)
    skipped(found.problems)


@app.command()
def pause(queue: Queue, redis_url: RedisUrl = None, prefix: Prefix = None) -> None:
    """Stop workers claiming from a queue (within a second); dispatch still works."""
    connect(redis_url, prefix)
    changed = Queues(get_store()).pause(queue)
    console.print(f"queue {queue} paused" if changed else f"queue {queue} was paused already")


@app.command()
def resume(queue: Queue, redis_url: RedisUrl = None, prefix: Prefix = None) -> None:
    """Let workers claim from a paused queue again."""
    connect(redis_url, prefix)
    changed = Queues(get_store()).resume(queue)
    console.print(f"queue {queue} resumed" if changed else f"queue {queue} was not paused")


@app.command()
def purge(
    queue: Queue, yes: Yes = False, redis_url: RedisUrl = None, prefix: Prefix = None
) -> None:
    """Delete every ready job of a queue (running, scheduled and dead jobs stay)."""
    connect(redis_url, prefix)
    store = Queues(get_store())
    if not yes:
        ready = next((s.ready for s in store.states() if s.queue == queue), None)
        what = "its" if ready is None else f"its {ready}"
        if not typer.confirm(f"delete {what} ready job(s) of queue {queue}?"):
            console.print("nothing purged")
            raise typer.Exit(1)
    console.print(f"purged {store.purge(queue)} ready job(s) from queue {queue}")
