"""jobkit's API mounted in an app of your own (FastAPI): ``jobkit.http.router()`` for
every jobkit route, and a route of the app's own that dispatches with
``jobkit.http.dispatch_request`` (its refusals answer as the router's do: a 4xx with a JSON
body). The jobs are defined in `jobs_example`, so the documented worker command,
`jobkit worker -A jobs_example`, runs them.

    uvicorn jobs_example.web:app --port 8000
    curl -X POST localhost:8000/jobs -H 'content-type: application/json' \\
         -d '{"payload": {"x": 1}}'                      # -> {"id": "...", ...}
    curl localhost:8000/jobs/<job_id>                    # queued -> running -> succeeded

For the reliable-queue exercise's own contract (UUIDs, ``done``), see
``jobs_example.reliable``; for the whole API with roles and an audit log, ``jobkit serve``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

import jobkit.http
from jobs_example import Add, Echo, SendEmail, TrainModel

app = FastAPI(title="jobkit example")


_ECHO_BODY = {"content": {"application/json": {"schema": Echo.Params.model_json_schema()}}}


@app.post("/jobs", status_code=202, openapi_extra={"requestBody": _ECHO_BODY})
async def create_job(request: Request) -> dict[str, Any]:
    """Queue an Echo job; the body is its params, ``{"payload": {...}}``. Returns its id
    at once; bad input is a 4xx, as on the jobkit router."""
    return await jobkit.http.dispatch_request(Echo, request)


app.include_router(jobkit.http.router([Echo, Add, SendEmail, TrainModel]))
