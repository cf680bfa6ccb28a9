"""The HTTP API as a FastAPI router for your own app:
``app.include_router(jobkit.http.router())``. Kept here for users who mount it; the API
itself lives in :mod:`jobkit.web.api` (its docstring lists every route), and
``jobkit serve`` runs it with the health check, metrics and the OpenAPI page.

Needs the ``http`` extra (``pip install 'jobkit[http]'``).
"""

from __future__ import annotations

from jobkit.web.api import dispatch_params, dispatch_request, job_view, list_view, router
from jobkit.web.errors import read_json as read_params

__all__ = ["dispatch_params", "dispatch_request", "job_view", "list_view", "read_params", "router"]
