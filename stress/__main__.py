"""``python -m stress``: run the fault-injection suite and print its verdict.

Exit code 0 when every check passed; 1 when a job was lost, a success duplicated or any
check failed; 2 when the harness itself could not run.
"""

from __future__ import annotations

import logging
import signal
import sys
import types
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from stress.faults import CLUSTER_KINDS, NODE_KINDS, parse_kinds
from stress.run import Config, run, short

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _terminate(signum: int, frame: types.FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through run(), which kills every process


@app.command()
def main(
    jobs: Annotated[
        int | None, typer.Option(help="jobs to dispatch (default 10,000; 1,000 with --short)")
    ] = None,
    faults: Annotated[
        str,
        typer.Option(
            help=f"all, none, or some of {','.join(NODE_KINDS)} "
            f"(with --cluster: of {','.join(CLUSTER_KINDS)})"
        ),
    ] = "all",
    fsync: Annotated[str, typer.Option(help="redis-server appendfsync: always or everysec")] = (
        "always"
    ),
    seed: Annotated[int, typer.Option(help="seeds the plan, the faults and their victims")] = 1,
    short_run: Annotated[bool, typer.Option("--short", help="the CI setting (~1 minute)")] = False,
    on_cluster: Annotated[
        bool,
        typer.Option(
            "--cluster", help="a 3-master Redis Cluster, no proxy: kills only (see README)"
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
    workdir: Annotated[Path | None, typer.Option(help="logs, plans and AOF go here")] = None,
    keep: Annotated[bool, typer.Option(help="keep the workdir even when the run passed")] = False,
    supervisors: Annotated[int | None, typer.Option(min=1)] = None,
    children: Annotated[int | None, typer.Option(min=1, help="per supervisor")] = None,
    fault_seconds: Annotated[float | None, typer.Option(help="how long faults go on")] = None,
    max_crashes: Annotated[int | None, typer.Option(help="JOBKIT_MAX_CRASHES for workers")] = None,
) -> None:
    """Dispatch jobs while killing workers, schedulers and Redis and cutting connections
    (on a cluster: killing masters), then check every job. Prints a summary table (or
    JSON)."""
    if fsync not in ("always", "everysec"):
        raise typer.BadParameter("--fsync must be always or everysec")
    try:
        kinds = parse_kinds(faults, CLUSTER_KINDS if on_cluster else NODE_KINDS)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    count = jobs if jobs is not None else (1_000 if short_run else 10_000)
    config = Config(
        jobs=count,
        faults=kinds,
        fsync=fsync,
        seed=seed,
        workdir=workdir,
        keep=keep,
        cluster=on_cluster,
    )
    if short_run:
        config = short(config)
    topo = replace(
        config.topo,
        supervisors=supervisors or config.topo.supervisors,
        children=children or config.topo.children,
        max_crashes=max_crashes or config.topo.max_crashes,
    )
    config = replace(config, topo=topo, fault_seconds=fault_seconds or config.fault_seconds)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        outcome = run(config)
    except (RuntimeError, OSError) as exc:
        Console(stderr=True).print(f"[red]the stress harness could not run:[/] {exc}")
        raise typer.Exit(2) from exc
    from stress.report import as_json as to_json
    from stress.report import print_tables

    if as_json:
        sys.stdout.write(orjson.dumps(to_json(outcome), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        print_tables(outcome)
    raise typer.Exit(0 if outcome.passed else 1)


if __name__ == "__main__":
    app()
