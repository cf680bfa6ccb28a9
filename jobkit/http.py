"""An optional FastAPI router: dispatch jobs and read their status over HTTP.

``app.include_router(jobkit.http.router())`` gives::

    POST /jobs/{name}        body: the job's params      -> 202 {"job_id", "status"}
    GET  /jobs/{job_id}      status, attempts, result, error (404 for unknown ids)
    POST /jobs/{job_id}/cancel  withdraw a job that has not started (409 if too late)
    GET  /dead               dead-lettered jobs, newest first
    POST /dead/{job_id}/retry
    GET  /workers            live workers and what they run
    GET  /stats              queue sizes and totals

Needs the ``http`` extra (``pip install 'jobkit[http]'``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import ValidationError

from jobkit import registry
from jobkit.connection import get_settings, get_store
from jobkit.errors import InvalidTransition, UnknownJobError
from jobkit.job import BaseJob
from jobkit.models import Status
from jobkit.store import Store
from jobkit.workers import WorkerRegistry


def job_view(store: Store, job_id: str) -> dict[str, Any]:
    """The public JSON view of one job; raises 404 for an unknown id."""
    rec = store.get(job_id)
    if rec is None:
        raise HTTPException(404, {"job_id": job_id, "status": Status.UNKNOWN.value})
    view = rec.as_dict()
    view["job_id"] = view.pop("id")
    return view


def router(
    jobs: Iterable[type[BaseJob]] | None = None, store: Store | None = None, prefix: str = ""
) -> APIRouter:
    """A router over ``jobs`` (default: every registered job class, by name)."""
    allowed = {cls.name: cls for cls in jobs} if jobs is not None else None
    api = APIRouter(prefix=prefix, tags=["jobkit"])

    def _store() -> Store:
        return store or get_store()

    def _job_class(name: str) -> type[BaseJob]:
        try:
            cls = registry.lookup(name)
        except UnknownJobError:
            raise HTTPException(404, f"no job named {name!r}") from None
        if allowed is not None and name not in allowed:
            raise HTTPException(404, f"no job named {name!r}")
        return cls

    @api.post("/jobs/{name}", status_code=202)
    def dispatch(
        name: str,
        params: dict[str, Any] = Body(default_factory=dict),
        delay: float | None = Query(None, ge=0),
        queue: str | None = None,
        priority: int | None = None,
        job_id: str | None = None,
    ) -> dict[str, Any]:
        cls = _job_class(name)
        try:
            handle = cls.dispatch(
                delay=delay, queue=queue, priority=priority, job_id=job_id, store=_store(), **params
            )
        except ValidationError as exc:
            raise HTTPException(422, exc.errors(include_url=False)) from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"job_id": handle.id, "status": handle.status.value}

    @api.get("/jobs/{job_id}")
    def status(job_id: str) -> dict[str, Any]:
        return job_view(_store(), job_id)

    @api.post("/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict[str, Any]:
        view = job_view(_store(), job_id)  # 404 first for an unknown id
        if not _store().cancel(job_id, get_settings().result_ttl):
            raise HTTPException(409, f"job {job_id} is {view['status']}: too late to cancel")
        return job_view(_store(), job_id)

    @api.get("/dead")
    def dead(limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
        s = _store()
        return [r.as_dict() for r in s.get_many(s.dead_ids(limit)) if r is not None]

    @api.post("/dead/{job_id}/retry")
    def retry(job_id: str) -> dict[str, Any]:
        try:
            revived = _store().revive(job_id)
        except InvalidTransition as exc:
            raise HTTPException(409, str(exc)) from None
        if not revived:
            raise HTTPException(409, f"job {job_id} is not dead")
        return job_view(_store(), job_id)

    @api.get("/workers")
    def workers() -> list[dict[str, str]]:
        return WorkerRegistry(_store()).all()

    @api.get("/stats")
    def stats() -> dict[str, Any]:
        s = _store()
        return {"queues": s.queue_sizes(s.known_lanes()), **s.counts().as_dict()}

    return api
