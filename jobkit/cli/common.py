"""What every command shares: option types, the console, tables, JSON output, connecting,
logging set-up, and how a failure reaches the user."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import typer

from jobkit.connection import configure, describe_failure, get_settings
from jobkit.errors import JobkitError
from jobkit.logs import LogFormat
from jobkit.logs import setup_logging as setup_logging  # every command logs the same way
from jobkit.ops import RedisError


def typer_app(**options: Any) -> typer.Typer:
    """A command group as every jobkit command is made: help text is plain (no markup: it
    quotes names and ids), and a docstring's lines are joined and wrapped to the terminal."""
    return typer.Typer(rich_markup_mode=None, **options)


RedisUrl = Annotated[str | None, typer.Option("--redis-url", help="overrides JOBKIT_REDIS_URL")]
Prefix = Annotated[str | None, typer.Option("--prefix", help="key prefix (JOBKIT_PREFIX)")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
AppModules = Annotated[list[str], typer.Option("-A", "--app", help="module(s) defining your jobs")]
LogLevel = Annotated[
    str | None,
    typer.Option("--log-level", help="DEBUG, INFO, WARNING ... (JOBKIT_LOG_LEVEL, or INFO)"),
]
LogFormatOption = Annotated[
    LogFormat | None,
    typer.Option("--log-format", help="text, or json: a JSON object per line (JOBKIT_LOG_FORMAT)"),
]


def _rich_console(width: int | None = None, stderr: bool = False) -> Any:
    from rich.console import Console

    # job names, ids, errors are data: never read as markup ("[/]" would raise) or emoji
    # codes (an id with ":running:" in it)
    return Console(markup=False, emoji=False, highlight=False, width=width, stderr=stderr)


class _Console:
    """rich's console, imported on first use: a worker starting up never prints a table,
    and rich takes a noticeable share of the start-up time.

    A table is printed so that no cell of an :func:`id_column` is ever cut: such a column
    is kept as wide as its longest line while the others wrap or shrink, and when even
    that does not fit the terminal, the table is printed wider than the terminal."""

    def __init__(self, stderr: bool = False) -> None:
        self._console: Any = None
        self._stderr = stderr

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if self._console is None:
            self._console = _rich_console(stderr=self._stderr)
        for obj in objects:
            needed = _keep_ids_whole(self._console, obj)
            if needed > self._console.width:
                _rich_console(needed, self._stderr).print(obj, **kwargs)
            else:
                self._console.print(obj, **kwargs)
        if not objects:
            self._console.print(**kwargs)


def _keep_ids_whole(console: Any, obj: Any) -> int:
    """For a table: give each id column the width of its longest line; the width the
    table needs at least (0 for anything else)."""
    from rich.cells import cell_len
    from rich.measure import Measurement
    from rich.table import Table as RichTable

    if not isinstance(obj, RichTable):
        return 0
    for column in obj.columns:
        if column.no_wrap:
            lines = [line for cell in column.cells for line in str(cell).splitlines()]
            longest = max([cell_len(str(column.header)), *map(cell_len, lines)])
            column.min_width = max(column.min_width or 0, longest)
    # measured unconstrained: within the terminal's width rich reports what it would cut to
    return int(Measurement.get(console, console.options.update_width(10**6), obj).minimum)


def Table(*args: Any, **kwargs: Any) -> Any:
    """A rich table, rich imported on first use (headers: names or :func:`id_column`)."""
    from rich.table import Table as RichTable

    return RichTable(*args, **kwargs)


def id_column(header: str, **kwargs: Any) -> Any:
    """A table column of job ids: never cut, never wrapped inside an id (several ids in a
    cell go one a line). Other columns wrap or shrink first."""
    from rich.table import Column

    return Column(header, no_wrap=True, **kwargs)


console = _Console()
errors = _Console(stderr=True)  # what a command could not read, beside its output


def connect(redis_url: str | None, prefix: str | None, **extra: Any) -> None:
    """Configure jobkit for a command from its ``--redis-url`` / ``--prefix``."""
    configure(redis_url=redis_url or get_settings().redis_url, prefix=prefix, **extra)


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def skipped(problems: list[str], as_json: bool = False) -> None:
    """After a listing's output: name each key it had to skip (keys of another type) on
    stderr, as JSON ``{"problems": [...]}`` with ``--json``, and exit 1 if there was any
    (exit 2 stays for Redis out of reach)."""
    if not problems:
        return
    if as_json:
        sys.stderr.write(orjson.dumps({"problems": problems}).decode() + "\n")
    else:
        for problem in problems:
            errors.print(f"unreadable key {problem}", style="red", soft_wrap=True)
    raise typer.Exit(1)


def run(app: typer.Typer) -> None:
    """Run ``app``: jobkit errors and Redis failures print plainly and exit 2."""
    try:
        app()
    except (JobkitError, RedisError) as exc:
        # markup off: messages quote text such as "[SSL: CERTIFICATE_VERIFY_FAILED]"; no
        # wrapping: a URL in it stays whole
        message = describe_failure(exc) if isinstance(exc, RedisError) else str(exc)
        console.print(
            f"error: {message}", style="red", markup=False, highlight=False, soft_wrap=True
        )
        sys.exit(2)
