"""What every command shares: option types, the console, tables, JSON output, connecting,
logging set-up, and how a failure reaches the user."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import orjson
import redis
import typer

from jobkit.connection import configure, describe_failure, get_settings
from jobkit.errors import JobkitError
from jobkit.logs import LogFormat
from jobkit.logs import setup_logging as setup_logging  # every command logs the same way

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
    """A rich table, rich imported on first use."""
    from rich.table import Table as RichTable

    return RichTable(*args, **kwargs)


console = _Console()


def connect(redis_url: str | None, prefix: str | None, **extra: Any) -> None:
    """Configure jobkit for a command from its ``--redis-url`` / ``--prefix``."""
    configure(redis_url=redis_url or get_settings().redis_url, prefix=prefix, **extra)


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def run(app: typer.Typer) -> None:
    """Run ``app``: jobkit errors and Redis failures print plainly and exit 2."""
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
