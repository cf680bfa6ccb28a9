"""`jobkit redis ...`: the embedded Redis of this project folder."""

from __future__ import annotations

from jobkit.cli.common import console, setup_logging, typer_app
from jobkit.connection import get_settings
from jobkit.ops.embedded import embedded_running, ensure_embedded, stop_embedded

app = typer_app(help="The embedded Redis of this project folder.", no_args_is_help=True)


@app.command("start")
def redis_start() -> None:
    """Start (or find) this folder's embedded Redis and print its URL."""
    setup_logging("WARNING")
    console.print(ensure_embedded(get_settings().data_dir))


@app.command("stop")
def redis_stop() -> None:
    """Stop this folder's embedded Redis (its AOF keeps the data)."""
    stopped = stop_embedded(get_settings().data_dir)
    console.print("stopped" if stopped else "no embedded Redis was running")


@app.command("status")
def redis_status() -> None:
    """Whether this folder's embedded Redis runs."""
    running = embedded_running(get_settings().data_dir)
    console.print("running" if running else "not running")
