"""`jobkit archiver`: the history archive's writer process, its schema upgrade and its
pruning (see :mod:`jobkit.archive`)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobkit.cli.common import (
    LogFormatOption,
    LogLevel,
    Prefix,
    RedisUrl,
    console,
    setup_logging,
    typer_app,
)

app = typer_app()


@app.command()
def archiver(
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    history_url: Annotated[
        str | None, typer.Option("--history-url", help="overrides JOBKIT_HISTORY_URL")
    ] = None,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune", help="delete what is older than JOBKIT_HISTORY_RETENTION days, and exit"
        ),
    ] = False,
    upgrade: Annotated[
        bool, typer.Option("--upgrade", help="create or upgrade the archive's tables, and exit")
    ] = False,
    log_level: LogLevel = None,
    log_format: LogFormatOption = None,
) -> None:
    """Archive every job's history into SQL (JOBKIT_HISTORY_URL; unset: SQLite under
    JOBKIT_DATA_DIR). Run as many as you like. Stops cleanly on SIGTERM / Ctrl-C."""
    from jobkit import connection
    from jobkit.archive import require

    require("jobkit archiver")
    from jobkit.archive.archiver import Archiver, prepare
    from jobkit.archive.writer import Writer, database_url, make_engine, shown

    settings = connection.configure(
        redis_url=redis_url or connection.get_settings().redis_url,
        prefix=prefix,
        log_format=log_format,
        history_url=history_url,
    )
    setup_logging(log_level or settings.log_level, settings.log_format)
    writer = Writer(make_engine(database_url(settings.history_url, settings.data_dir)))
    if upgrade:
        console.print(f"{shown(writer.engine)}: schema version {prepare(writer)}")
        return
    if prune:
        prepare(writer)
        if not settings.history_retention:
            console.print("JOBKIT_HISTORY_RETENTION is 0: the archive keeps everything")
            return
        gone_jobs, gone_attempts = writer.prune(settings.history_retention)
        console.print(f"pruned {gone_jobs} jobs and {gone_attempts} attempts")
        return
    # the archiver makes the schema itself, waiting for a database that is not up yet
    raise typer.Exit(Archiver(connection.connect(settings), writer, settings).run())
