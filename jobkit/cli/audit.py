"""`jobkit audit`: the log of every write made through the HTTP API, newest first."""

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
    typer_app,
)
from jobkit.connection import get_store
from jobkit.ops.audit import audit_entries, audit_page

app = typer_app()


@app.command()
def audit(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 50,
    before: Annotated[
        str | None, typer.Option("--before", help="older than this entry id (next page)")
    ] = None,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    as_json: AsJson = False,
) -> None:
    """Every write made through the HTTP API (retry, cancel, pause, purge, run now, bulk
    actions), newest first: when, which role, what, on what, how many jobs."""
    connect(redis_url, prefix)
    if as_json:
        print_json(audit_page(get_store(), limit, before))
        return
    entries = audit_entries(get_store(), limit, before)
    if not entries:
        console.print("no writes recorded")
        return
    table = Table("when", "role", "action", "target", "jobs", "detail", "client",
                  title="audit log, newest first")  # fmt: skip
    for e in entries:
        when = e.at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(when, e.role, e.action, e.target, str(e.count), e.detail, e.client)
    console.print(table)
    if len(entries) == limit:
        console.print(f"older: --before {entries[-1].id}")
