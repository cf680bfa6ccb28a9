"""`jobkit info`: queue sizes, counts of jobs by state, lifetime totals."""

from __future__ import annotations

import typer

from jobkit.cli.common import AsJson, Prefix, RedisUrl, Table, connect, console, print_json
from jobkit.connection import get_store

app = typer.Typer()


@app.command()
def info(redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False) -> None:
    """Queue sizes, running / scheduled / dead counts and lifetime totals."""
    connect(redis_url, prefix)
    store = get_store()
    queues = store.queue_sizes(store.known_lanes())
    counts = store.counts()
    if as_json:
        print_json({"queues": queues, **counts.as_dict()})
        return
    table = Table("queue", "ready", title="jobkit")
    for lane, size in queues.items():
        table.add_row(lane, "unreadable" if size is None else str(size))
    console.print(table)
    now = {"running": counts.running, "scheduled": counts.scheduled, "dead": counts.dead}
    console.print("  ".join(f"{k}: {'?' if v is None else v}" for k, v in now.items()))
    totals = ", ".join(f"{k} {v}" for k, v in sorted(counts.totals.items()))
    console.print(f"since the start: {totals or 'nothing yet'}")
    for problem in counts.problems:
        console.print(f"unreadable key {problem}", style="red")
