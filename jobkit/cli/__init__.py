"""The `jobkit` command line, one module per area:

- :mod:`~jobkit.cli.worker`: ``worker``
- :mod:`~jobkit.cli.jobs`: ``job``, ``cancel``
- :mod:`~jobkit.cli.listing`: ``jobs`` (any state, paged)
- :mod:`~jobkit.cli.info`: ``info``
- :mod:`~jobkit.cli.top`: ``top`` (``info`` redrawn in place, with the workers)
- :mod:`~jobkit.cli.workers`: ``workers``, ``workers prune``
- :mod:`~jobkit.cli.queues`: ``queues``, ``queues pause / resume / purge``
- :mod:`~jobkit.cli.dead`: ``dead list / show / retry / purge``
- :mod:`~jobkit.cli.scheduler`: ``scheduler``, ``schedules``
- :mod:`~jobkit.cli.archiver`: ``archiver`` (the history archive)
- :mod:`~jobkit.cli.serve`: ``serve`` (the HTTP API)
- :mod:`~jobkit.cli.audit`: ``audit`` (the log of writes through the API)
- :mod:`~jobkit.cli.doctor`: ``doctor``, ``repair`` (each queue's keys checked, its
  indexes rebuilt)
- :mod:`~jobkit.cli.embedded`: ``redis start / stop / status``

:mod:`~jobkit.cli.common` holds what they share. A module adds commands to its own
``app``; this one merges them into the ``jobkit`` app.
"""

from __future__ import annotations

from jobkit.cli import (
    archiver,
    audit,
    common,
    dead,
    doctor,
    embedded,
    info,
    jobs,
    listing,
    queues,
    scheduler,
    serve,
    top,
    worker,
    workers,
)
from jobkit.cli.common import typer_app

app = typer_app(
    help="jobkit: typed, reliable background jobs on Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
for _area in (worker, info, top, jobs, listing, scheduler, archiver, serve, audit, doctor):
    app.add_typer(_area.app)
app.add_typer(workers.app, name="workers")
app.add_typer(queues.app, name="queues")
app.add_typer(dead.app, name="dead")
app.add_typer(embedded.app, name="redis")


def main() -> None:
    """Console-script entry point: jobkit errors and Redis failures print plainly, exit 2."""
    common.run(app)
