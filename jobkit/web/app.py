"""The app ``jobkit serve`` runs: the API at ``/api`` (:mod:`jobkit.web.api`), the health
check at ``/healthz`` and the Prometheus scrape at ``/metrics`` (also under ``/api``),
the OpenAPI page at ``/docs``; ``/`` is where the dashboard lives.

Run it with ``jobkit serve -A your.jobs`` (uvicorn), or build it in your own ASGI server::

    from jobkit.web.app import create_app
    app = create_app()
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from jobkit.web.api import router
from jobkit.web.dashboard import mount
from jobkit.web.errors import status_of

API_PREFIX = "/api"


def create_app(title: str = "jobkit") -> FastAPI:
    """The API, health check, metrics and OpenAPI page for the configured Redis and the
    job classes registered in this process."""
    app = FastAPI(title=title, description="Jobs, queues, workers and schedules of a jobkit fleet.")
    api = router()
    app.include_router(api, prefix=API_PREFIX)
    for route in ("/healthz", "/metrics"):  # where probes and scrapers look first
        app.add_api_route(
            route, _endpoint(api, route), include_in_schema=False, response_model=None
        )
    mount(app)  # the dashboard, at /

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def any_error(request: Request, exc: Exception) -> JSONResponse:
        # a refusal raised outside a route (a dependency, middleware) keeps its 4xx; what
        # is left is a bug: a 500 that still answers in JSON and names no internals
        code = status_of(exc) or 500
        return JSONResponse({"detail": str(exc) if code < 500 else "internal error"},
                            status_code=code)  # fmt: skip

    return app


def _endpoint(api: Any, path: str) -> Any:
    for route in api.routes:
        if getattr(route, "path", None) == path:
            return route.endpoint
    raise LookupError(path)
