"""`jobkit top` (and `jobkit info --watch`): the overview of `jobkit info` and the live
workers, redrawn in place every few seconds until Ctrl-C or ``q``.

On a terminal the frame is drawn with rich's ``Live`` on the alternate screen, as top and
htop do, so the shell's scrollback is left as it was; anywhere else (a pipe, a file, a
test) each frame is printed after the last one. A frame is laid out for the width it is
drawn at: columns that do not fit are dropped, least important first.

A failed read does not end the view: the error takes one line under the header, the last
figures read stay below it, dimmed, and the next interval reads again.
"""

from __future__ import annotations

import os
import select
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobkit.cli.common import Prefix, RedisUrl, connect, typer_app
from jobkit.cli.info import Interval, Iterations, lag, number, waited
from jobkit.connection import describe_failure, get_settings, get_store
from jobkit.ops import RedisError
from jobkit.ops.overview import Overview, QueueView, overview
from jobkit.ops.workers import WorkerInfo, live_workers
from jobkit.redact import redacted

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.table import Table

app = typer_app()


@dataclass(frozen=True)
class Reading:
    """What one read of Redis found, and when (epoch s)."""

    at: float
    seen: Overview
    workers: list[WorkerInfo]


@dataclass
class View:
    """What the next frame shows: the last good reading and, while reads fail, why."""

    where: str  # the Redis read, password masked
    interval: float
    reading: Reading | None = None
    error: str | None = None  # why the last read failed
    quit_key: bool = False  # whether q is read (a terminal on stdin)

    def read(self) -> None:
        """Read Redis once; a failure is kept to be shown, not raised."""
        at = time.time()
        try:
            store = get_store()
            seen = overview(store)
            workers = live_workers(store)
        except Exception as exc:
            if not _redis_failure(exc):
                raise
            self.error = _one_line(exc)
            return
        self.reading = Reading(at, seen, workers)
        self.error = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        width = options.max_width
        yield _header(self, width)
        if self.error is not None:
            yield Text(self.error, style="bold red", no_wrap=True, overflow="ellipsis")
        if self.reading is None:
            return
        dim = "dim" if self.error is not None else ""  # figures from before the failure
        seen, fleet = self.reading.seen, self.reading.seen.fleet
        yield _fit(console, options, width, _QUEUE_DROPS, lambda d: _queues(seen, d, dim))
        totals = ", ".join(f"{k} {v}" for k, v in sorted(fleet["totals"].items()))
        yield Text(f"since the start: {totals or 'nothing yet'}", style=dim)
        for problem in fleet["problems"]:
            yield Text(f"unreadable key {problem}", style="red")
        workers = self.reading.workers
        if workers:
            yield Text("")
            yield _fit(console, options, width, _WORKER_DROPS, lambda d: _workers(workers, d, dim))
        else:
            yield Text("no live workers", style=dim)


def _redis_failure(exc: Exception) -> bool:
    """Whether ``exc`` says Redis failed (what the next read may not meet again).

    redis-py's cluster client raises its own RedisClusterException, no RedisError, when no
    node answers; the CLI does not import redis (see tests/unit/test_layers.py), so that one is
    known by the package it comes from."""
    return isinstance(exc, RedisError) or type(exc).__module__.split(".")[0] == "redis"


def _one_line(exc: Exception) -> str:
    """The failure as one line, without the Redis the header already names."""
    text = " ".join(describe_failure(exc).split())
    url = get_settings().redis_url
    # describe_failure opens with "Redis at <url>: "; should that change, the whole is shown
    return text.removeprefix(f"Redis at {redacted(url)}: ") if url else text


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%H:%M:%S")


def _header(view: View, width: int) -> Table:
    """One line: what is read on the left, when and how often on the right (kept whole:
    the address is what gets cut)."""
    from rich.table import Table

    grid = Table.grid(expand=True, padding=(0, 0, 0, 2))
    grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    grid.add_column(no_wrap=True, justify="right")
    read = f"read {_clock(view.reading.at)}" if view.reading else "never read"
    if view.error is None:
        when = f"{read}, every"
    else:  # the figures below are the last read's
        when = f"last {read}, retrying every" if view.reading else f"{read}, retrying every"
    grid.add_row(
        f"jobkit {view.where}",
        f"{when} {view.interval:g}s" + (", q quits" if view.quit_key and width >= 70 else ""),
        style="bold",
    )
    return grid


# The columns a narrow terminal loses, first to last, until the table fits: "rates"
# keeps the last minute's rates only. At 160 columns nothing usually is.
_QUEUE_DROPS = ("lag", "rates", "workers", "scheduled", "waited", "retrying")
_WORKER_DROPS = ("host", "rss")
# A queue or worker name is folded onto more lines before it gets narrower than this.
NAME_MIN = 12


def _fit(
    console: Console,
    options: ConsoleOptions,
    width: int,
    drops: tuple[str, ...],
    build: Callable[[set[str]], Table],
) -> Table:
    """The table ``build`` makes without the fewest of ``drops`` that fits ``width``
    (everything dropped, and let rich fold the names, when nothing does)."""
    dropped: set[str] = set()
    table = build(dropped)
    for name in drops:
        if _narrowest(console, options, table) <= width:
            break
        dropped.add(name)
        table = build(dropped)
    return table


def _narrowest(console: Console, options: ConsoleOptions, table: Table) -> int:
    """How narrow ``table`` can be drawn with every figure whole (rich would cut
    "12/5.6/1.3" to "12/5.6/1.") and every name folded at :data:`NAME_MIN`; the columns
    of figures keep their width from here on."""
    from rich.cells import cell_len
    from rich.measure import Measurement

    for column in table.columns:
        if column.no_wrap:
            lines = [line for cell in column.cells for line in str(cell).splitlines()]
            column.min_width = max(map(cell_len, [*str(column.header).splitlines(), *lines]))
    names = [column for column in table.columns if not column.no_wrap]
    for column in names:
        column.max_width = NAME_MIN
    # measured unconstrained: within the width rich reports what it would cut the table to
    narrowest = Measurement.get(console, options.update_width(10**6), table).minimum
    for column in names:
        column.max_width = None
    return int(narrowest)


def _table(dim: str) -> Table:
    from rich import box
    from rich.table import Table

    # no borders and two spaces between columns: at 80 columns every character spent on
    # them is a column of figures less
    return Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), style=dim
    )


def _rates(rates: dict[str, float], short: bool) -> str:
    if not rates:
        return ""
    return f"{rates['1m']:g}" if short else "/".join(f"{rates[w]:g}" for w in ("1m", "5m", "15m"))


def _queues(seen: Overview, dropped: set[str], dim: str) -> Table:
    """The queue table of ``jobkit info``, without the columns ``dropped``."""
    short = "rates" in dropped
    per = "done\n/min" if short else "done/min\n1/5/15m"
    fleet = seen.fleet
    rates = fleet["per_minute"] or {}
    # key, header, a queue's cell, the fleet's cell
    columns: list[tuple[str, str, Callable[[QueueView], str], str]] = [
        ("queue", "queue", lambda v: v.queue + (" (paused)" if v.paused else ""), "all"),
        ("ready", "ready", lambda v: number(v.ready), str(fleet["ready"])),
        ("running", "running", lambda v: number(v.running), number(fleet["running"])),
        ("scheduled", "scheduled", lambda v: number(v.scheduled), str(fleet["scheduled"])),
        ("retrying", "retrying", lambda v: number(v.retrying), str(fleet["retrying"])),
        ("dead", "dead", lambda v: number(v.dead), number(fleet["dead"])),
        ("waited", "next\nwaited", lambda v: waited(v.next_waited_s), ""),
        ("done", per, lambda v: _rates(v.per_minute["done"], short),
         _rates(rates.get("done", {}), short)),
        ("failed", per.replace("done", "failed"), lambda v: _rates(v.per_minute["failed"], short),
         _rates(rates.get("failed", {}), short)),
        ("workers", "workers", lambda v: str(len(v.workers)), str(fleet["workers"])),
        ("lag", "archive\nlag", lambda v: lag(v.archive_lag, v.archive_lost),
         lag(fleet["archive_lag"], False)),
    ]  # fmt: skip
    shown = [c for c in columns if c[0] not in dropped]
    table = _table(dim)
    for key, header, _, _ in shown:
        # names fold rather than push figures off the screen; figures are never cut
        first = key == "queue"
        table.add_column(header, justify="left" if first else "right",
                         overflow="fold", no_wrap=not first)  # fmt: skip
    for v in seen.queues:
        table.add_row(*(cell(v) for _, _, cell, _ in shown))
    table.add_row(*(total for _, _, _, total in shown), style="bold")
    return table


def _workers(workers: list[WorkerInfo], dropped: set[str], dim: str) -> Table:
    """One row a supervisor: its jobs and memory are its children's added to its own."""
    table = _table(dim)
    table.add_column("worker", overflow="fold")
    if "host" not in dropped:
        table.add_column("host", overflow="fold")
    table.add_column("queues", overflow="fold")
    for header in ("jobs", "done", "failed", *(() if "rss" in dropped else ("RSS MB",))):
        table.add_column(header, justify="right", no_wrap=True)
    for w in workers:
        running = len(w.jobs) + sum(len(c.jobs) for c in w.children)
        rss = [m for m in (w.rss_mb, *(c.rss_mb for c in w.children)) if m is not None]
        table.add_row(
            w.name + ("" if w.state in ("running", "") else f" ({w.state})"),
            *(() if "host" in dropped else (w.host,)),
            ", ".join(w.queues),
            str(running),
            str(w.done),
            str(w.failed),
            *(() if "rss" in dropped else (f"{sum(rss):.0f}" if rss else "",)),
        )
    return table


def _where() -> str:
    settings = get_settings()
    where = redacted(settings.redis_url) if settings.redis_url else "(the embedded Redis)"
    default = type(settings).model_fields["prefix"].default
    return where + ("" if settings.prefix == default else f" prefix {settings.prefix}")


class _Keys:
    """Keys pressed on the terminal, read as they are typed (cbreak mode: Ctrl-C still
    interrupts). Only while the view is drawn live: piped into a pager, the keys are the
    pager's. Otherwise, and without a terminal on stdin, waiting is sleeping."""

    def __init__(self, live: bool) -> None:
        self._live = live
        self._fd: int | None = None
        self._saved: list[Any] | None = None

    def __enter__(self) -> _Keys:
        if self._live and sys.platform != "win32" and sys.stdin.isatty():
            import termios
            import tty

            self._fd = sys.stdin.fileno()
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)
        return self

    @property
    def active(self) -> bool:
        """Whether keys are read (else :meth:`quit_within` only sleeps)."""
        return self._fd is not None

    def __exit__(self, *_: object) -> None:
        if sys.platform != "win32" and self._fd is not None and self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    def quit_within(self, seconds: float) -> bool:
        """Wait ``seconds``; whether ``q`` was pressed meanwhile (it ends the wait)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._fd is None:
                time.sleep(left)
                return False
            ready, _, _ = select.select([self._fd], [], [], left)
            if ready and any(c in os.read(self._fd, 64) for c in b"qQ"):
                return True
        return False


def _frames(view: View, iterations: int | None, keys: _Keys) -> Iterator[View]:
    """Read and yield ``view`` every interval (from the start of one read to the next),
    ``iterations`` times or until ``q``."""
    drawn = 0
    while True:
        started = time.monotonic()
        view.read()
        yield view
        drawn += 1
        if iterations is not None and drawn >= iterations:
            return
        if keys.quit_within(view.interval - (time.monotonic() - started)):
            return


def watch(
    redis_url: str | None, prefix: str | None, interval: float, iterations: int | None
) -> None:
    """Draw the overview and the workers every ``interval`` seconds, ``iterations`` times
    or until Ctrl-C or ``q``."""
    from rich.console import Console
    from rich.live import Live

    connect(redis_url, prefix)
    # job names, queues and errors are data: never read as markup or emoji codes
    console = Console(markup=False, emoji=False, highlight=False)
    view = View(_where(), interval)
    live_view = console.is_terminal and not console.is_dumb_terminal
    try:
        with _Keys(live_view) as keys:
            view.quit_key = keys.active
            if not live_view:
                # no cursor to move: one frame after the other, as `top -b` prints them
                for frame in _frames(view, iterations, keys):
                    console.print(frame)
                    console.print()
                return
            with Live(console=console, screen=True, auto_refresh=False) as live:
                for frame in _frames(view, iterations, keys):
                    live.update(frame, refresh=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a view like this one is left: no traceback, exit 0


@app.command()
def top(
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    interval: Interval = 2.0,
    iterations: Iterations = None,
) -> None:
    """The overview of jobkit info (per queue: ready, running, scheduled, retrying, dead,
    how long the next job waited, done and failed per minute, workers, archive lag) and
    the live workers (queues, jobs running, done, failed, memory), redrawn every
    --interval seconds until Ctrl-C or q. Reads that fail are shown in place and tried
    again each interval. Not on a terminal, each frame is printed after the last."""
    watch(redis_url, prefix, interval, iterations)
