"""`jobkit scheduler` (the process) and `jobkit schedules` (what it does and did; pause,
resume, run now). The rows and operations are :mod:`jobkit.ops.schedules`'."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jobkit import registry
from jobkit.cli.common import (
    AppModules,
    AsJson,
    LogFormatOption,
    LogLevel,
    Prefix,
    RedisUrl,
    Table,
    connect,
    console,
    id_column,
    print_json,
    setup_logging,
    skipped,
    typer_app,
)
from jobkit.cron import BoundSchedule, collect

if TYPE_CHECKING:
    from jobkit.ops import Store

app = typer_app()
schedules_app = typer_app(
    help="Cron schedules: next and last runs; pause, resume, run now.",
    invoke_without_command=True,
)
app.add_typer(schedules_app, name="schedules")

Key = Annotated[str, typer.Argument(help="the schedule's key, as `jobkit schedules` shows it")]
# optional here, so `jobkit schedules pause KEY -A mod` reaches the command; the
# listing asks for it itself
ListModules = Annotated[
    list[str] | None, typer.Option("-A", "--app", help="module(s) defining your jobs")
]


def _load(app_modules: list[str]) -> list[BoundSchedule]:
    registry.import_apps(app_modules)
    return collect(list(registry.registered().values()))


@app.command()
def scheduler(
    app_modules: AppModules,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    log_level: LogLevel = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run a scheduler: enqueue cron slots and promote delayed jobs.

    Each slot is enqueued once, however many schedulers run; delayed jobs
    are promoted when they fall due. Stops cleanly on SIGTERM / Ctrl-C."""
    from jobkit import connection
    from jobkit.app import adopt_queue_redis
    from jobkit.scheduler import Scheduler

    settings = connection.configure(
        redis_url=redis_url or connection.get_settings().redis_url,
        prefix=prefix,
        log_format=log_format,
    )
    setup_logging(log_level or settings.log_level, settings.log_format)
    schedules = _load(app_modules)
    settings = adopt_queue_redis(settings)  # no Redis named: the app's Queue's, if any
    raise typer.Exit(Scheduler(connection.connect(settings), schedules).run())


@schedules_app.callback()
def schedules(
    ctx: typer.Context,
    app_modules: ListModules = None,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    as_json: AsJson = False,
) -> None:
    """Every cron schedule of the given modules: paused or not, next run, last run and
    its job's status, the slots fired and skipped and the runs started by hand."""
    ctx.obj = {"app_modules": app_modules or [], "redis_url": redis_url, "prefix": prefix}
    if ctx.invoked_subcommand is not None:
        return
    if not app_modules:
        raise typer.BadParameter("name the module(s) defining your jobs", param_hint="'-A'")
    from jobkit.connection import get_store
    from jobkit.ops.schedules import schedule_rows

    connect(redis_url, prefix)
    found = schedule_rows(get_store(), _load(app_modules))
    rows = found.items
    if as_json:
        print_json(rows)
        skipped(found.problems, as_json=True)
        return
    console.print(_table(rows))
    if not rows:
        console.print("no schedules declared in " + ", ".join(app_modules))
    skipped(found.problems)


def _when(iso: str | None) -> str:
    """An ISO time as the table shows it: to the second, in the schedule's zone (named
    under its key), without the offset, the date above the time."""
    if iso is None:
        return "never"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d\n%H:%M:%S")


def _next(r: dict[str, Any]) -> str:
    if not r["next_runs"]:
        return "never"
    return _when(r["next_runs"][0]) + ("\n(skipped)" if r["paused"] else "")


def _last(r: dict[str, Any]) -> str:
    if r["last_job"] is None:
        return "never"
    reason = f"\n({r['last_reason']})" if r["last_reason"] else ""
    by_hand = "\n(run now)" if r["last_trigger"] == "run now" else ""
    return f"{_when(r['last_run'])}\n{r['last_status']}{reason}{by_hand}"


def _table(rows: list[dict[str, Any]]) -> object:
    # Narrow enough for 80 columns: the schedule's cron, zone and misfire policy go under
    # its key (which sets the first column's width anyway), its state above its next run,
    # each time on two lines
    table = Table(
        id_column("schedule\ncron\ntime zone, misfire"),  # keys are typed back: never cut
        "state\nnext run",
        "last run\nstatus",
        "fired\nskipped\nrun now",
        title="schedules",
        show_lines=True,
    )
    for r in rows:
        table.add_row(
            f"{r['schedule']}\n{r['expr']}\n{r['tz']}, misfire {r['misfire']}",
            ("paused" if r["paused"] else "active") + "\n" + _next(r),
            _last(r),
            f"{r['fired']}\n{r['skipped']}\n{r['runs_now']}",
        )
    return table


def _bound(
    ctx: typer.Context, key: str, app_modules: list[str] | None, **conn: Any
) -> tuple[Store, BoundSchedule]:
    """Connect (options given to the command, else to ``schedules``) and find the
    schedule ``key``: (the store, the schedule)."""
    from jobkit.connection import get_store
    from jobkit.ops.schedules import find_schedule

    given = ctx.obj or {}
    modules = app_modules or given.get("app_modules")
    if not modules:
        raise typer.BadParameter("name the module(s) defining your jobs", param_hint="'-A'")
    connect(conn["redis_url"] or given.get("redis_url"), conn["prefix"] or given.get("prefix"))
    return get_store(), find_schedule(_load(modules), key)


@schedules_app.command()
def pause(
    ctx: typer.Context,
    key: Key,
    app_modules: ListModules = None,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
) -> None:
    """Pause a schedule: its slots are skipped until it is resumed.

    A slot that falls due while it is paused is counted as skipped and is
    never fired, not even after the resume, whatever its misfire policy.
    Run now still works."""
    from jobkit.ops.schedules import pause_schedule

    store, bound = _bound(ctx, key, app_modules, redis_url=redis_url, prefix=prefix)
    done = pause_schedule(store, bound)
    console.print(
        f"schedule {key} paused" if done else f"schedule {key} was paused already", soft_wrap=True
    )


@schedules_app.command()
def resume(
    ctx: typer.Context,
    key: Key,
    app_modules: ListModules = None,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
) -> None:
    """Resume a paused schedule: its next slot fires.

    The slots that fell due while it was paused stay skipped."""
    from jobkit.ops.schedules import resume_schedule

    store, bound = _bound(ctx, key, app_modules, redis_url=redis_url, prefix=prefix)
    done = resume_schedule(store, bound)
    console.print(
        f"schedule {key} resumed" if done else f"schedule {key} was not paused", soft_wrap=True
    )


@schedules_app.command()
def run(
    ctx: typer.Context,
    key: Key,
    app_modules: ListModules = None,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
) -> None:
    """Run a schedule's job now, with its params, also when it is paused.

    The job gets an id of its own (never a slot's) and shows as the
    schedule's last run; no slot is fired or skipped for it."""
    from jobkit.ops.schedules import run_schedule_now

    store, bound = _bound(ctx, key, app_modules, redis_url=redis_url, prefix=prefix)
    job_id = run_schedule_now(store, bound)
    console.print(f"schedule {key}: {bound.job.name} queued now as {job_id}", soft_wrap=True)
