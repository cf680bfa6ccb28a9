"""The `jobkit` command line: worker, introspection, dead letters, embedded Redis."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import orjson
import redis
import typer

from jobkit import names, registry
from jobkit.backend.embedded import embedded_running, ensure_embedded, stop_embedded
from jobkit.backend.workers import WorkerRegistry
from jobkit.connection import configure, describe_failure, get_settings, get_store
from jobkit.errors import ConfigurationError, InvalidName, JobkitError
from jobkit.models import JobRecord

app = typer.Typer(
    help="jobkit: typed, reliable background jobs on Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
dead_app = typer.Typer(help="Inspect, retry and purge dead-lettered jobs.", no_args_is_help=True)
redis_app = typer.Typer(help="The embedded Redis of this project folder.", no_args_is_help=True)
app.add_typer(dead_app, name="dead")
app.add_typer(redis_app, name="redis")


def _register_extensions() -> None:
    """Commands that live in their own modules."""
    from jobkit import cli_scheduler

    cli_scheduler.register(app)


class _Console:
    """rich's console, imported on first use: a worker starting up never prints a table,
    and rich takes a noticeable share of the start-up time."""

    def __init__(self) -> None:
        self._console: Any = None

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if self._console is None:
            from rich.console import Console

            # job names, ids, errors are data: never read as markup ("[/]" would raise)
            # or emoji codes (an id with ":running:" in it)
            self._console = Console(markup=False, emoji=False, highlight=False)
        self._console.print(*objects, **kwargs)


def Table(*args: Any, **kwargs: Any) -> Any:
    from rich.table import Table as RichTable

    return RichTable(*args, **kwargs)


console = _Console()

RedisUrl = Annotated[str | None, typer.Option("--redis-url", help="overrides JOBKIT_REDIS_URL")]
Prefix = Annotated[str | None, typer.Option("--prefix", help="key prefix (JOBKIT_PREFIX)")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
JobIds = Annotated[list[str] | None, typer.Argument()]
AllDead = Annotated[bool, typer.Option("--all", help="every dead job")]


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def setup_logging(level: str) -> None:
    """Log to stderr at ``level`` (a name of :data:`LOG_LEVELS`, any case)."""
    name = level.strip().upper()
    if name not in LOG_LEVELS:
        raise ConfigurationError(
            f"unknown log level {level!r} (--log-level or JOBKIT_LOG_LEVEL); "
            f"use one of {', '.join(LOG_LEVELS)}"
        )
    logging.basicConfig(
        level=name,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s",
    )


def _queue_list(raw: str) -> list[str]:
    """``-q``: comma-separated queue names, each checked (see :mod:`jobkit.names`)."""
    queues = [q.strip() for q in raw.split(",") if q.strip()]
    if not queues:
        raise typer.BadParameter("give at least one queue", param_hint="'-q' / '--queues'")
    for queue in queues:
        name, colon, weight = queue.rpartition(":")
        if colon and name and weight.replace(".", "", 1).isdigit():
            raise typer.BadParameter(
                f"{queue!r}: weighted queues are not supported yet; list queues in the "
                "order they are checked (-q high,default,low)",
                param_hint="'-q' / '--queues'",
            )
        try:
            names.queue(queue)
        except InvalidName as exc:
            raise typer.BadParameter(str(exc), param_hint="'-q' / '--queues'") from None
    return queues


def _tag_list(raw: str) -> list[str]:
    """``--tags``: comma-separated tag names, or ``*`` for every tag."""
    tags = [t.strip() for t in raw.split(",") if t.strip()]
    try:
        names.tags(t for t in tags if t != "*")
    except InvalidName as exc:
        raise typer.BadParameter(str(exc), param_hint="'--tags'") from None
    return tags


def _connect(redis_url: str | None, prefix: str | None, **extra: Any) -> None:
    configure(redis_url=redis_url or get_settings().redis_url, prefix=prefix, **extra)


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


@app.command()
def worker(
    app_modules: Annotated[
        list[str], typer.Option("-A", "--app", help="module(s) defining your jobs")
    ],
    queues: Annotated[
        str, typer.Option("-q", "--queues", help="comma-separated, checked in this order")
    ] = "default",
    concurrency: Annotated[int, typer.Option("-c", "--concurrency", min=1)] = 1,
    tags: Annotated[str, typer.Option("--tags", help="comma-separated tags carried")] = "",
    grace: Annotated[float, typer.Option(help="seconds to finish jobs on SIGTERM")] = 30.0,
    threads: Annotated[int, typer.Option(min=1, help="threads running jobs per child")] = 1,
    prefetch: Annotated[
        int, typer.Option(min=1, max=1000, help="jobs claimed per round trip")
    ] = 16,
    log_jobs: Annotated[
        bool, typer.Option("--log-jobs/--no-log-jobs", help="an INFO line per job")
    ] = True,
    lease: Annotated[float | None, typer.Option(help="lease seconds (JOBKIT_LEASE)")] = None,
    heartbeat: Annotated[float | None, typer.Option(help="renewal every N s")] = None,
    max_memory: Annotated[float, typer.Option(help="MB per child before it is replaced")] = 0,
    job_timeout: Annotated[float, typer.Option(help="default hard limit per job, s")] = 0,
    name: Annotated[str, typer.Option(help="worker name (default host.pid)")] = "",
    log_level: Annotated[
        str | None, typer.Option(help="DEBUG, INFO, WARNING ... (JOBKIT_LOG_LEVEL, or INFO)")
    ] = None,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
) -> None:
    """Run a worker: a supervisor with N child processes taking jobs off Redis."""
    from jobkit.worker.supervisor import Supervisor, WorkerOptions

    queue_list, tag_list = _queue_list(queues), _tag_list(tags)  # before anything starts
    settings = configure(
        redis_url=redis_url or get_settings().redis_url,
        prefix=prefix,
        lease=lease,
        heartbeat=heartbeat,
    )
    setup_logging(log_level or settings.log_level)
    registry.import_apps(app_modules)
    options = WorkerOptions(
        queues=queue_list,
        tags=tag_list,
        concurrency=concurrency,
        grace=grace,
        prefetch=prefetch,
        threads=threads,
        log_jobs=log_jobs,
        max_memory_mb=max_memory,
        job_timeout=job_timeout,
        name=name,
    )
    logging.getLogger("jobkit").info("jobs registered: %s", ", ".join(registry.registered()))
    raise typer.Exit(Supervisor(settings, options).run())


@app.command()
def info(redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False) -> None:
    """Queue sizes, running / scheduled / dead counts and lifetime totals."""
    _connect(redis_url, prefix)
    store = get_store()
    queues = store.queue_sizes(store.known_lanes())
    counts = store.counts()
    if as_json:
        _print_json({"queues": queues, **counts.as_dict()})
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


def _show_record(rec: JobRecord, as_json: bool) -> None:
    data = rec.as_dict()
    if as_json:
        _print_json(data)
        return
    error = data.pop("error")
    table = Table(show_header=False, title=f"job {rec.id}")
    for key, value in data.items():
        table.add_row(key, "" if value is None else str(value))
    console.print(table)
    if error:
        console.print(f"{error['type']}: {error['message']}", style="red")
        if error["traceback"]:
            console.print(error["traceback"])


@app.command()
def job(
    job_id: str, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False
) -> None:
    """Show one job: status, attempts, result or last error."""
    _connect(redis_url, prefix)
    rec = get_store().get(job_id)
    if rec is None:
        if as_json:
            _print_json({"id": job_id, "status": "unknown"})
        else:
            console.print(f"job {job_id}: unknown")
        raise typer.Exit(1)
    _show_record(rec, as_json)


@app.command()
def workers(redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False) -> None:
    """Live workers: where they run, what they run now, what they have done."""
    _connect(redis_url, prefix)
    rows = WorkerRegistry(get_store()).all()
    if as_json:
        _print_json(rows)
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


@app.command()
def cancel(job_ids: list[str], redis_url: RedisUrl = None, prefix: Prefix = None) -> None:
    """Withdraw jobs that have not started (queued, scheduled or waiting to retry)."""
    _connect(redis_url, prefix)
    store = get_store()
    cancelled = sum(store.cancel(i, get_settings().result_ttl) for i in job_ids)
    console.print(f"cancelled {cancelled} of {len(job_ids)} job(s)")
    if cancelled < len(job_ids):
        raise typer.Exit(1)


@dead_app.command("list")
def dead_list(
    limit: int = 50, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False
) -> None:
    """Dead-lettered jobs, newest first."""
    _connect(redis_url, prefix)
    store = get_store()
    records = [r for r in store.get_many(store.dead_ids(limit)) if r is not None]
    if as_json:
        _print_json([r.as_dict() for r in records])
        return
    table = Table("id", "job", "reason", "attempts", "died at", "error", title="dead jobs")
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


@dead_app.command("show")
def dead_show(
    job_id: str, redis_url: RedisUrl = None, prefix: Prefix = None, as_json: AsJson = False
) -> None:
    """One dead job with its last traceback."""
    job(job_id, redis_url, prefix, as_json)


@dead_app.command("retry")
def dead_retry(
    job_ids: JobIds = None,
    all_: AllDead = False,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
) -> None:
    """Send dead jobs back to their queues with a fresh attempt budget."""
    _connect(redis_url, prefix)
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


@dead_app.command("purge")
def dead_purge(
    job_ids: JobIds = None,
    all_: AllDead = False,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
) -> None:
    """Delete dead jobs for good."""
    _connect(redis_url, prefix)
    if not job_ids and not all_:
        raise typer.BadParameter("give job ids or --all")
    purged = get_store().purge([] if all_ else list(job_ids or []))
    console.print(f"purged {purged} dead job(s)")


@redis_app.command("start")
def redis_start() -> None:
    """Start (or find) this folder's embedded Redis and print its URL."""
    setup_logging("WARNING")
    console.print(ensure_embedded(get_settings().data_dir))


@redis_app.command("stop")
def redis_stop() -> None:
    """Stop this folder's embedded Redis (its AOF keeps the data)."""
    stopped = stop_embedded(get_settings().data_dir)
    console.print("stopped" if stopped else "no embedded Redis was running")


@redis_app.command("status")
def redis_status() -> None:
    """Whether this folder's embedded Redis runs."""
    running = embedded_running(get_settings().data_dir)
    console.print("running" if running else "not running")


_register_extensions()


def main() -> None:
    """Console-script entry point: jobkit errors and Redis failures print plainly, exit 2."""
    try:
        app()
    except (JobkitError, redis.RedisError) as exc:
        # markup off: messages quote text such as "[SSL: CERTIFICATE_VERIFY_FAILED]"; no
        # wrapping: a URL in it stays whole
        message = describe_failure(exc) if isinstance(exc, redis.RedisError) else str(exc)
        console.print(
            f"error: {message}", style="red", markup=False, highlight=False, soft_wrap=True
        )
        sys.exit(2)
