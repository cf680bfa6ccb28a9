"""`jobkit worker`: the supervisor and its children, and the parsing of their options."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

import typer

from jobkit import names, registry, units
from jobkit.cli.common import LogFormatOption, Prefix, RedisUrl, setup_logging, typer_app
from jobkit.connection import configure, get_settings
from jobkit.errors import InvalidName

app = typer_app()


QUEUES_HINT = "'-q' / '--queues'"


def _queue_list(raw: str) -> tuple[list[str], dict[str, float]]:
    """``-q``: comma-separated queue names, each checked (see :mod:`jobkit.names`), in
    strict order (``high,default,low``) or each with a weight (``high:5,default:3,low:1``,
    see :mod:`jobkit.worker.order`); the names, and their weights (empty: strict)."""
    entries = [q.strip() for q in raw.split(",") if q.strip()]
    if not entries:
        raise typer.BadParameter("give at least one queue", param_hint=QUEUES_HINT)
    queues: list[str] = []
    weights: dict[str, float] = {}
    for entry in entries:
        queue, colon, weight = entry.partition(":")
        try:
            names.queue(queue)
        except InvalidName as exc:
            raise typer.BadParameter(str(exc), param_hint=QUEUES_HINT) from None
        if queue in queues:
            raise typer.BadParameter(f"queue {queue!r} is listed twice", param_hint=QUEUES_HINT)
        queues.append(queue)
        if colon:
            weights[queue] = _weight(entry, weight)
    if weights and len(weights) != len(queues):
        raise typer.BadParameter(
            f"{raw!r}: give every queue a weight (high:5,default:3,low:1) or none "
            "(high,default,low: checked in this order)",
            param_hint=QUEUES_HINT,
        )
    return queues, weights


def _weight(entry: str, raw: str) -> float:
    """The weight of a ``queue:weight`` entry: a whole number from 1 up."""
    if not raw.isdigit() or int(raw) < 1:
        raise typer.BadParameter(
            f"{entry!r}: a weight is a whole number from 1 up (high:5,default:3,low:1)",
            param_hint=QUEUES_HINT,
        )
    return float(raw)


def _tag_list(raw: str) -> list[str]:
    """``--tags``: comma-separated tag names, or ``*`` for every tag."""
    tags = [t.strip() for t in raw.split(",") if t.strip()]
    try:
        names.tags(t for t in tags if t != "*")
    except InvalidName as exc:
        raise typer.BadParameter(str(exc), param_hint="'--tags'") from None
    return tags


def _parsed(parse: Callable[[str], float], raw: str | None, option: str) -> float | None:
    """An option's value through ``parse``; its ValueError as a usage error."""
    if raw is None:
        return None
    try:
        return parse(raw)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{option}'") from None


@app.command()
def worker(
    app_modules: Annotated[
        list[str], typer.Option("-A", "--app", help="module(s) defining your jobs")
    ],
    queues: Annotated[
        str,
        typer.Option(
            "-q",
            "--queues",
            help="comma-separated, checked in this order; or weighted: high:5,default:3,low:1",
        ),
    ] = "default",
    concurrency: Annotated[int, typer.Option("-c", "--concurrency", min=1)] = 1,
    tags: Annotated[str, typer.Option("--tags", help="comma-separated tags carried")] = "",
    grace: Annotated[float, typer.Option(help="seconds to finish jobs on SIGTERM")] = 30.0,
    threads: Annotated[int, typer.Option(min=1, help="threads running jobs per child")] = 1,
    prefetch: Annotated[
        int, typer.Option(min=1, max=1000, help="jobs claimed per round trip")
    ] = 32,
    log_jobs: Annotated[
        bool, typer.Option("--log-jobs/--no-log-jobs", help="an INFO line per job")
    ] = True,
    lease: Annotated[float | None, typer.Option(help="lease seconds (JOBKIT_LEASE)")] = None,
    heartbeat: Annotated[float | None, typer.Option(help="renewal every N s")] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(
            help="per child: 512MB, 1GB, 300 (MB); over it mid-job: killed (JOBKIT_MAX_MEMORY)"
        ),
    ] = None,
    max_jobs_per_child: Annotated[
        int | None,
        typer.Option(min=0, help="replace a child after N jobs (JOBKIT_MAX_JOBS_PER_CHILD)"),
    ] = None,
    max_child_age: Annotated[
        str | None,
        typer.Option(
            help="replace a child after its job once this old: 3600, 30m, 2h (JOBKIT_MAX_CHILD_AGE)"
        ),
    ] = None,
    job_timeout: Annotated[float, typer.Option(help="default hard limit per job, s")] = 0,
    name: Annotated[str, typer.Option(help="worker name (default host.pid)")] = "",
    log_level: Annotated[
        str | None, typer.Option(help="DEBUG, INFO, WARNING ... (JOBKIT_LOG_LEVEL, or INFO)")
    ] = None,
    log_format: LogFormatOption = None,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
) -> None:
    """Run a worker: a supervisor with N child processes taking jobs off Redis."""
    from jobkit.app import adopt_queue_redis
    from jobkit.worker.supervisor import Supervisor, WorkerOptions

    (queue_list, weights), tag_list = _queue_list(queues), _tag_list(tags)  # before starting
    settings = configure(
        redis_url=redis_url or get_settings().redis_url,
        prefix=prefix,
        lease=lease,
        heartbeat=heartbeat,
        log_format=log_format,
        max_memory=_parsed(units.megabytes, max_memory, "--max-memory"),
        max_jobs_per_child=max_jobs_per_child,
        max_child_age=_parsed(units.seconds, max_child_age, "--max-child-age"),
    )
    setup_logging(log_level or settings.log_level, settings.log_format)
    registry.import_apps(app_modules)
    settings = adopt_queue_redis(settings)  # no Redis named: the app's Queue's, if any
    options = WorkerOptions(
        queues=queue_list,
        weights=weights,
        tags=tag_list,
        concurrency=concurrency,
        grace=grace,
        prefetch=prefetch,
        threads=threads,
        log_jobs=log_jobs,
        max_memory_mb=settings.max_memory,
        max_jobs_per_child=settings.max_jobs_per_child,
        max_child_age=settings.max_child_age,
        job_timeout=job_timeout,
        name=name,
    )
    logging.getLogger("jobkit").info("jobs registered: %s", ", ".join(registry.registered()))
    raise typer.Exit(Supervisor(settings, options).run())
