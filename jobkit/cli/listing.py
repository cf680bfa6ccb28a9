"""`jobkit jobs`: jobs in any state, newest first, a page at a time, from Redis or with
``--archived`` from the history archive (the queries: :mod:`jobkit.ops.jobs`)."""

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
from jobkit.connection import get_store
from jobkit.ops.jobs import (
    list_page,
    listed_at,
    local_ms,
    page_as_dict,
    parse_since,
    parse_statuses,
)
from jobkit.ops.listing import DEFAULT_LIMIT, LISTABLE, MAX_LIMIT, JobPage, JobQuery

app = typer_app()

Statuses = Annotated[
    str | None,
    typer.Option("--status", help=f"one or several, comma-separated: {', '.join(LISTABLE)}"),
]
QueueNames = Annotated[
    list[str] | None, typer.Option("--queue", help="one or several (repeat, or comma-separated)")
]
Name = Annotated[str | None, typer.Option("--name", help="job class name, exact")]
Since = Annotated[
    str | None,
    typer.Option("--since", help="an ISO time, or how long ago: 90s, 10m, 2h, 1d"),
]
Limit = Annotated[int, typer.Option("--limit", help=f"jobs per page, 1 to {MAX_LIMIT}")]
Cursor = Annotated[str | None, typer.Option("--cursor", help="next_cursor of the page before")]
Archived = Annotated[
    bool,
    typer.Option(
        "--archived",
        help="from the history archive (jobkit archiver), newest change first; "
        "--since counts back from this host's clock",
    ),
]


@app.command("jobs")
def jobs(
    status: Statuses = None,
    queue: QueueNames = None,
    name: Name = None,
    since: Since = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    archived: Archived = False,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    as_json: AsJson = False,
) -> None:
    """Jobs in any state, newest first, from indexes (never a scan of Redis).

    Pass the printed cursor as --cursor for the next page. Every job that existed when
    the first page was read is listed exactly once, however it moves between pages (as
    long as it still matches the filters): the order is one that a job keeps.

    One status group (dead; succeeded and cancelled; scheduled and retrying; running) is
    ordered by its own time: when they died, ended, are due, started. Anything else
    (queued, several groups, every status) by when the jobs were created. --since counts
    by that same time.

    An index of another type in Redis is passed over: its key is named on stderr, the
    rest listed, and the exit code is 1.

    With --archived, the jobs the history archive holds (also those Redis has forgotten),
    with the same filters and cursor, ordered by their last archived change."""
    if not 1 <= limit <= MAX_LIMIT:
        raise typer.BadParameter(f"from 1 to {MAX_LIMIT}, not {limit}", param_hint="--limit")
    statuses = parse_statuses(status)
    queues = tuple(q for item in queue or [] for q in item.split(",") if q)
    connect(redis_url, prefix)
    store = None if archived else get_store()
    since_ms = None
    if since and not cursor:
        since_ms = parse_since(since, local_ms if store is None else store.reads.now_ms)
    query = JobQuery(statuses, queues, name, since_ms, limit, cursor)
    page = list_page(query, store, archived=archived)
    if as_json:
        print_json(page_as_dict(page))  # the page names what it skipped: "problems"
        if page.problems:
            raise typer.Exit(1)
        return
    _table(page, archived)
    skipped(page.problems)


def _table(page: JobPage, archived: bool) -> None:
    title = "archived jobs (the history archive), newest first" if archived else None
    table = Table(id_column("id"), "status", "job", "queue", "at", "attempts", "reason",
                  title=title or "jobs, newest first")  # fmt: skip
    for item in page.jobs:
        r = item.record
        at = listed_at(item.at_ms)
        table.add_row(r.id, r.status.value, r.name, r.queue,
                      at.strftime("%Y-%m-%d %H:%M:%S") if at else "", str(r.attempts),
                      r.reason or "")  # fmt: skip
    console.print(table)
    if page.next_cursor:
        console.print(f"next page: --cursor {page.next_cursor}", soft_wrap=True)  # kept whole
    elif not page.jobs:
        console.print("no jobs")
