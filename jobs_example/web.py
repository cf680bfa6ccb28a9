"""A small web app that dispatches the example jobs.

    uvicorn jobs_example.web:app --port 8000
    curl -X POST localhost:8000/jobs -H 'content-type: application/json' \\
         -d '{"payload": {"x": 1}}'                      # -> {"job_id": "...", ...}
    curl localhost:8000/jobs/<job_id>                    # queued -> running -> succeeded
    curl -X POST localhost:8000/jobs/jobs_example.Add -d '{"a": 1, "b": 2}' \\
         -H 'content-type: application/json'
"""

from __future__ import annotations

from typing import Any

from fastapi import Body, FastAPI
from pydantic import BaseModel

import jobkit.http
from jobkit import BaseJob
from jobs_example import Add, SendEmail, TrainModel


class Echo(BaseJob):
    """Simulates work and returns its payload: the "POST /jobs {payload}" exercise."""

    name = "jobs_example.Echo"

    class Params(BaseModel):
        payload: dict[str, Any]
        seconds: float = 0.2

    def perform(self) -> dict[str, Any]:
        import time

        time.sleep(self.params.seconds)
        return self.params.payload


app = FastAPI(title="jobkit example")


@app.post("/jobs", status_code=202)
def create_job(payload: dict[str, Any] = Body(embed=True)) -> dict[str, str]:
    """Queue an Echo job for ``payload``; returns its id at once."""
    handle = Echo.dispatch(payload=payload)
    return {"job_id": handle.id, "status": handle.status.value}


app.include_router(jobkit.http.router([Echo, Add, SendEmail, TrainModel]))
