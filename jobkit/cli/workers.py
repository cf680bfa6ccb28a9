"""`jobkit workers`: the live worker registry."""

from __future__ import annotations

import orjson
import typer

from jobkit.backend.workers import WorkerRegistry
from jobkit.cli.common import AsJson, Prefix, RedisUrl, Table, connect, console, print_json
from jobkit.connection import get_store

app = typer.Typer()


@app.command()
def workers(redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False) -> None:
    """Live workers: where they run, what they run now, what they have done."""
    connect(redis_url, prefix)
    rows = WorkerRegistry(get_store()).all()
    if as_json:
        print_json(rows)
        return
    table = Table(
        "name", "queues", "tags", "c", "state", "running now", "ok", "retried", "dead", "RSS MB"
    )
    for w in rows:
        running = ", ".join(j["name"] + " " + j["id"] for j in orjson.loads(w.get("jobs", "[]")))
        table.add_row(
            w["name"],
            w.get("queues", ""),
            w.get("tags", ""),
            w.get("concurrency", ""),
            w.get("state", ""),
            running or "-",
            w.get("succeeded", "0"),
            w.get("retrying", "0"),
            w.get("dead", "0"),
            w.get("rss_mb", ""),
        )
    console.print(table)
