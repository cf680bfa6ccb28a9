"""`jobkit serve`: the HTTP API, health check, metrics and OpenAPI page (and the
dashboard, at ``/``) in one uvicorn process (see :mod:`jobkit.web.app`)."""

from __future__ import annotations

import ipaddress
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
from jobkit.errors import ConfigurationError

app = typer_app()

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` reaches only this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@app.command()
def serve(
    app_modules: Annotated[
        list[str] | None,
        typer.Option("-A", "--app", help="module(s) defining your jobs (to dispatch, schedules)"),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="bind beyond loopback with no JOBKIT_API_TOKEN / JOBKIT_API_READ_TOKEN set "
            "(anyone who reaches the port may retry, cancel and purge)",
        ),
    ] = False,
    redis_url: RedisUrl = None,
    prefix: Prefix = None,
    log_level: LogLevel = None,
    log_format: LogFormatOption = None,
) -> None:
    """Serve the HTTP API at /api, /healthz, /metrics and the OpenAPI page at /docs.

    Binds 127.0.0.1 unless --host says otherwise. With JOBKIT_API_TOKEN (admin) or
    JOBKIT_API_READ_TOKEN (read only) set, every request needs one as a bearer token;
    with neither, it refuses a non-loopback --host unless told --insecure."""
    import uvicorn

    from jobkit import connection, registry
    from jobkit.web.app import create_app

    settings = connection.configure(
        redis_url=redis_url or connection.get_settings().redis_url,
        prefix=prefix,
        log_format=log_format,
    )
    setup_logging(log_level or settings.log_level, settings.log_format)
    open_api = settings.api_token is None and settings.api_read_token is None
    if open_api and not is_loopback(host) and not insecure:
        raise ConfigurationError(
            f"refusing to serve on {host} with no token set: anyone who reaches it could "
            "retry, cancel and purge jobs. Set JOBKIT_API_TOKEN (and JOBKIT_API_READ_TOKEN "
            "for read-only access), bind 127.0.0.1, or pass --insecure"
        )
    registry.import_apps(list(app_modules or []))
    names = sorted(registry.registered())
    console.print(
        f"jobkit serve: http://{host}:{port}/docs (API at /api, /healthz, /metrics); "
        f"{len(names)} job class(es); " + ("open: no token set" if open_api else "tokens required"),
        soft_wrap=True,
    )
    uvicorn.run(
        create_app(),
        host=host,
        port=port,
        log_level=(log_level or settings.log_level).lower(),
        server_header=False,
    )
