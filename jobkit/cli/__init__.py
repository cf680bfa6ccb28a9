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
``app``; this one lists which module defines each command (:data:`COMMANDS`) and
imports a module only when one of its commands runs, or when the help lists them all:
``jobkit worker`` imports none of the other areas (the ops listings, the archive, the
doctor) and typer builds no other command (together about 30 ms of its start, measured).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any

from jobkit.imports import no_collection

with no_collection():  # see jobkit/imports.py
    import typer
    import typer.main
    from typer.core import TyperGroup

    from jobkit.cli import common
    from jobkit.cli.common import typer_app

# Every command, in the order `jobkit --help` lists them, and the module of jobkit.cli
# that defines it (tests/unit/test_cli_commands.py holds the two in step).
COMMANDS: dict[str, str] = {
    "worker": "worker",
    "info": "info",
    "top": "top",
    "job": "jobs",
    "cancel": "jobs",
    "jobs": "listing",
    "scheduler": "scheduler",
    "schedules": "scheduler",
    "archiver": "archiver",
    "serve": "serve",
    "audit": "audit",
    "doctor": "doctor",
    "repair": "doctor",
    "workers": "workers",
    "queues": "queues",
    "dead": "dead",
    "redis": "embedded",
}
# Areas added under a name of their own, their commands under it (`jobkit workers prune`);
# every other area's commands are the jobkit command's own.
GROUPS = {"workers": "workers", "queues": "queues", "dead": "dead", "embedded": "redis"}


def area_commands(module: str) -> dict[str, Any]:
    """The click commands that the area ``module`` of jobkit.cli adds to ``jobkit``,
    by name, built as ``app.add_typer`` would build them."""
    with no_collection():
        area = importlib.import_module(f"jobkit.cli.{module}")
    holder = typer_app()
    if module in GROUPS:
        holder.add_typer(area.app, name=GROUPS[module])
    else:
        holder.add_typer(area.app)
    return dict(typer.main.get_group(holder).commands)


class _Commands(MutableMapping[str, Any]):
    """The jobkit command's subcommands, each built from its module on first use: click
    and typer look commands up (to run one, list them, suggest a near miss) only here."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in COMMANDS:
                raise KeyError(name)
            self._built.update(area_commands(COMMANDS[name]))
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("jobkit's commands are fixed")

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class _Jobkit(TyperGroup):
    """The ``jobkit`` group, with its commands loaded as they are needed."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands()


app = typer_app(
    cls=_Jobkit,
    help="jobkit: typed, reliable background jobs on Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _jobkit() -> None:
    # typer makes a group of an app with a callback (this one has no commands of its own
    # to make it one): the commands come from _Commands
    pass


def main() -> None:
    """Console-script entry point: jobkit errors and Redis failures print plainly, exit 2."""
    common.run(app)
