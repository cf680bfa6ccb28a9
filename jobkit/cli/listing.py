"""`jobkit jobs`: jobs in any state, newest first, a page at a time (the query itself is
:mod:`jobkit.backend.listing`)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import typer

from jobkit import units
from jobkit.backend.listing import (
    DEFAULT_LIMIT,
    LISTABLE,
    MAX_LIMIT,
    ORDER_TIME,
    JobPage,
    JobQuery,
    list_jobs,
)
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
from jobkit.connection import get_store
from jobkit.models import Status

app = typer.Typer()

_ORDER = "; ".join(
    f"{' / '.join(s.value for s in LISTABLE if ORDER_TIME[s] == t)} by {t}"
    for t in dict.fromkeys(ORDER_TIME.values())
)

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


@app.command("jobs")
def jobs(
    status: Statuses = None,
    queue: QueueNames = None,
    name: Name = None,
    since: Since = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    as_json: AsJson = False,
) -> None:
    """Jobs in any state, newest first, from per-status indexes (never a scan of Redis).

    Pass the printed cursor as --cursor for the next page: it stays valid while jobs move
    (a job that stays put is never skipped or shown twice; one that moved may show again
    in its new state).

    Each status is ordered by its own time: {order}."""
    if not 1 <= limit <= MAX_LIMIT:
        raise typer.BadParameter(f"from 1 to {MAX_LIMIT}, not {limit}", param_hint="--limit")
    statuses = _statuses(status)
    queues = tuple(q for item in queue or [] for q in item.split(",") if q)
    connect(redis_url, prefix)
    store = get_store()
    since_ms = _since(since, store) if since and not cursor else None
    query = JobQuery(statuses, queues, name, since_ms, limit, cursor)
    page = list_jobs(store, query)
    if as_json:
        print_json(_as_json(page))
        return
    _table(page)


jobs.__doc__ = (jobs.__doc__ or "").replace("{order}", _ORDER)


def _statuses(raw: str | None) -> frozenset[Status]:
    if not raw:
        return frozenset()
    names = [s.strip() for s in raw.split(",") if s.strip()]
    known = {s.value: s for s in LISTABLE}
    wrong = [n for n in names if n not in known]
    if wrong or not names:
        raise typer.BadParameter(
            f"{', '.join(wrong) or raw!r} is not a status: use {', '.join(known)}",
            param_hint="--status",
        )
    return frozenset(known[n] for n in names)


def _since(raw: str, store: Any) -> int:
    """Epoch ms of ``raw``: an ISO time (UTC unless it says otherwise), or a duration
    counted back from Redis's clock (the one every job time comes from)."""
    try:
        ago = units.seconds(raw)
    except ValueError:
        pass
    else:
        sec, usec = store.redis.time()
        return int(sec) * 1000 + int(usec) // 1000 - int(ago * 1000)
    try:
        at = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{raw!r} is neither an ISO time (2024-05-01T12:00) nor a duration (10m, 2h)",
            param_hint="--since",
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return int(at.timestamp() * 1000)


def _at(ms: int) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms > 0 else None


def _as_json(page: JobPage) -> dict[str, Any]:
    listed = []
    for item in page.jobs:
        at = _at(item.at_ms)
        listed.append({**item.record.as_dict(), "at": at.isoformat() if at else None})
    return {"jobs": listed, "next_cursor": page.next_cursor}


def _table(page: JobPage) -> None:
    table = Table(id_column("id"), "status", "job", "queue", "at", "attempts", "reason",
                  title="jobs, newest first")  # fmt: skip
    for item in page.jobs:
        r = item.record
        at = _at(item.at_ms)
        table.add_row(r.id, r.status.value, r.name, r.queue,
                      at.strftime("%Y-%m-%d %H:%M:%S") if at else "", str(r.attempts),
                      r.reason or "")  # fmt: skip
    console.print(table)
    if page.next_cursor:
        console.print(f"next page: --cursor {page.next_cursor}", soft_wrap=True)  # kept whole
    elif not page.jobs:
        console.print("no jobs")
