"""The HTTP API, a FastAPI router over :mod:`jobkit.ops` (the layer the CLI uses too).

``app.include_router(jobkit.web.api.router())`` (or ``jobkit.http.router()``) in your own
FastAPI app, or ``jobkit serve``, which mounts it at ``/api``::

    POST /jobs                 {"name", "params", "queue"?, "priority"?, "delay"?, "at"?,
                               "job_id"?}                             -> 202 {"id", "status"}
    POST /jobs/{name}          body: the job's params; options in the query -> 202
                               {"id", "status"}
    GET  /jobs                 ?status=queued,dead&queue=q&name=Class&since=10m&limit=20
                               &cursor=...; ?archived=1: the history archive
                               -> {"jobs": [...], "next_cursor"}
    GET  /jobs/{id}            one job (from the archive once Redis forgot it); ?history=1
                               adds every state change (or the archived attempts)
    POST /jobs/{id}/cancel     200 withdrawn, 202 its worker stops it, 409 finished
    POST /jobs/{id}/retry      a dead job back with a fresh budget, a retrying one now
    POST /jobs/bulk            {"action": retry|cancel|purge, filters, "dry_run"?}
    GET  /jobs/bulk/{id}       a bulk action's progress
    GET  /dead                 POST /dead/{id}/retry
    GET  /queues               POST /queues/{q}/pause | resume | purge
    GET  /workers              GET /workers/{name} (its history, also after it stopped)
    GET  /schedules            POST /schedules/{key}/run | pause | resume
    GET  /audit                every write made through the API, newest first
    GET  /doctor               keys set aside or unreadable, what jobkit doctor finds
    GET  /stats  GET /metrics  GET /healthz

Reads take either token, writes the admin one (:mod:`jobkit.web.auth`); every write but
dispatch is recorded in the audit log with its role. Bad input is a 4xx with a JSON body
and writes nothing (:mod:`jobkit.web.errors`). Params of ``POST /jobs/{name}`` come only
from the body and options only from the query, so a param named like an option never
becomes one. Needs the ``http`` extra (``pip install 'jobkit[http]'``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from jobkit.connection import get_store
from jobkit.job import BaseJob
from jobkit.models import CancelOutcome, Status
from jobkit.ops import Store, bulk
from jobkit.ops.audit import record
from jobkit.ops.jobs import (
    cancel_job,
    dispatch_job,
    find_job,
    job_document,
    list_page,
    local_ms,
    page_as_dict,
    parse_since,
    parse_statuses,
    retry_job,
)
from jobkit.ops.listing import DEFAULT_LIMIT, MAX_LIMIT, JobQuery
from jobkit.web import fleet
from jobkit.web.auth import Role, client_of, reader, writer
from jobkit.web.errors import JobkitRoute, detail_of, read_json, status_of

# The request body of POST /jobs/{name}, for the OpenAPI page (the endpoint reads the
# body itself: see read_json)
_PARAMS_BODY = {
    "requestBody": {
        "content": {"application/json": {"schema": {"type": "object", "title": "Params"}}},
        "description": "the job's params; an empty body means none",
    }
}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI description of a body the route reads itself (see read_json)."""
    schema = model.model_json_schema()
    return {"requestBody": {"content": {"application/json": {"schema": schema}}, "required": True}}


class NewJob(BaseModel):
    """``POST /jobs``: a job class's registered name, its params and dispatch options."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    delay: float | None = Field(default=None, ge=0)
    at: datetime | None = None
    job_id: str | None = None


class BulkBody(BaseModel):
    """``POST /jobs/bulk``: an action, the filters ``GET /jobs`` takes, and whether only to
    count."""

    model_config = ConfigDict(extra="forbid")

    action: str
    status: str | None = None
    queue: list[str] | str | None = None
    name: str | None = None
    since: str | None = None
    dry_run: bool = False


def job_view(store: Store, job_id: str, history: bool = False) -> dict[str, Any]:
    """The public JSON view of one job, from Redis or else from the history archive
    (``source`` says which; the shape: :func:`~jobkit.ops.jobs.job_document`); a 404 for
    an unknown id."""
    rec = find_job(store, job_id)
    if rec is None:  # said as a status too, so a poller reads "unknown", never "pending"
        raise HTTPException(404, {"id": job_id, "status": Status.UNKNOWN.value})
    return job_document(store, rec, history)


def _queues(queue: list[str] | str | None) -> tuple[str, ...]:
    items = [queue] if isinstance(queue, str) else queue or []
    return tuple(q for item in items for q in item.split(",") if q)


def list_view(
    store: Store | None,
    status: str | None,
    queue: list[str] | None,
    name: str | None,
    since: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """A page of ``GET /jobs``: live from ``store``, or from the history archive when
    ``store`` is None (``since`` then counts back from this host's clock)."""
    since_ms = None
    if since and not cursor:
        since_ms = parse_since(since, local_ms if store is None else store.reads.now_ms)
    query = JobQuery(parse_statuses(status), _queues(queue), name, since_ms, limit, cursor)
    return page_as_dict(list_page(query, store, archived=store is None))


def dispatch_params(
    cls: type[BaseJob], params: dict[str, Any], store: Store | None = None, **options: Any
) -> dict[str, Any]:
    """:meth:`BaseJob.dispatch_params`, each refusal as its HTTP error (413 for params over
    the size limit, 422 for the rest: see :mod:`jobkit.web.errors`), for routes of your
    own as well. Returns ``{"id", "status"}``."""
    try:
        handle = cls.dispatch_params(params, store=store or get_store(), **options)
    except Exception as exc:
        code = status_of(exc)
        if code is None:
            raise
        raise HTTPException(code, detail_of(exc)) from None
    return {"id": handle.id, "status": handle.status.value}


async def dispatch_request(
    cls: type[BaseJob], request: Request, store: Store | None = None, **options: Any
) -> dict[str, Any]:
    """Dispatch ``cls`` with the request's body as its params, off the event loop
    (validation and Redis block)."""
    body = await request.body()
    return await run_in_threadpool(lambda: dispatch_params(cls, read_json(body), store, **options))


def router(
    jobs: Iterable[type[BaseJob]] | None = None, store: Store | None = None, prefix: str = ""
) -> APIRouter:
    """The API over ``jobs`` (default: every registered job class, by name) and ``store``
    (default: the configured one, looked up per request)."""
    allowed = {cls.name for cls in jobs} if jobs is not None else None
    api = APIRouter(prefix=prefix, tags=["jobkit"], route_class=JobkitRoute)

    def _store() -> Store:
        return store or get_store()

    def audit(request: Request, role: Role, action: str, target: str, count: int,
              detail: str = "") -> None:  # fmt: skip
        record(_store(), role.value, action, target, count, detail, client_of(request))

    @api.post("/jobs", status_code=202, openapi_extra=_body(NewJob))
    async def create(request: Request, role: Role = Depends(writer)) -> dict[str, Any]:
        raw = await request.body()

        def send() -> dict[str, Any]:
            body = NewJob.model_validate(read_json(raw, "the body"))
            options = body.model_dump(exclude={"name", "params"}, exclude_none=True)
            handle = dispatch_job(body.name, body.params, _store(), allowed, **options)
            return {"id": handle.id, "status": handle.status.value}

        return await run_in_threadpool(send)

    @api.post("/jobs/bulk", status_code=202, openapi_extra=_body(BulkBody))
    async def bulk_action(
        request: Request, response: Response, role: Role = Depends(writer)
    ) -> dict[str, Any]:
        body = BulkBody.model_validate(read_json(await request.body(), "the body"))
        return await run_in_threadpool(lambda: _bulk(body, request, response, role))

    def _bulk(body: BulkBody, request: Request, response: Response, role: Role) -> dict[str, Any]:
        s = _store()
        since_ms = parse_since(body.since, s.reads.now_ms) if body.since else None
        req = bulk.bulk_request(body.action, parse_statuses(body.status), _queues(body.queue),
                                body.name, since_ms)  # fmt: skip
        if body.dry_run:
            response.status_code = 200
            return {"action": req.action.value, "filters": req.describe(),
                    "dry_run": True, "count": bulk.count(s, req)}  # fmt: skip
        return bulk.start(s, req, role.value, client_of(request))

    @api.get("/jobs/bulk/{action_id}")
    def bulk_progress(action_id: str, role: Role = Depends(reader)) -> dict[str, Any]:
        found = bulk.progress(_store(), action_id)
        if found is None:
            raise HTTPException(404, f"no bulk action {action_id!r}")
        return found

    @api.post("/jobs/{name}", status_code=202, openapi_extra=_PARAMS_BODY)
    async def dispatch(
        name: str,
        request: Request,
        delay: float | None = Query(None, ge=0),
        queue: str | None = None,
        priority: int | None = None,
        job_id: str | None = None,
        role: Role = Depends(writer),
    ) -> dict[str, Any]:
        body = await request.body()

        def send() -> dict[str, Any]:
            params = read_json(body)
            handle = dispatch_job(name, params, _store(), allowed, delay=delay, queue=queue,
                                  priority=priority, job_id=job_id)  # fmt: skip
            return {"id": handle.id, "status": handle.status.value}

        return await run_in_threadpool(send)

    @api.get("/jobs")
    def listing(
        status: str | None = None,
        queue: list[str] | None = Query(None),
        name: str | None = None,
        since: str | None = None,
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
        cursor: str | None = None,
        archived: bool = False,
        role: Role = Depends(reader),
    ) -> dict[str, Any]:
        return list_view(None if archived else _store(), status, queue, name, since,
                         limit, cursor)  # fmt: skip

    @api.get("/jobs/{job_id}")
    def status(job_id: str, history: bool = False, role: Role = Depends(reader)) -> dict[str, Any]:
        return job_view(_store(), job_id, history)

    @api.post("/jobs/{job_id}/cancel")
    def cancel(
        job_id: str, request: Request, response: Response, role: Role = Depends(writer)
    ) -> dict[str, Any]:
        outcome = cancel_job(_store(), job_id)
        view = job_view(_store(), job_id)  # 404 for an unknown id
        if outcome is CancelOutcome.FINISHED:
            raise HTTPException(409, f"job {job_id} has finished ({view['status']}): too late")
        if outcome is CancelOutcome.UNKNOWN:  # only in the history archive: long over
            raise HTTPException(409, f"job {job_id} is only archived ({view['status']}): too late")
        if outcome is CancelOutcome.REQUESTED:
            response.status_code = 202  # its worker stops it within about a second
        audit(request, role, "cancel", job_id, 1, outcome.value)
        return {**view, "cancel": outcome.value}

    @api.post("/jobs/{job_id}/retry")
    def retry(job_id: str, request: Request, role: Role = Depends(writer)) -> dict[str, Any]:
        rec = retry_job(_store(), job_id)
        audit(request, role, "retry", job_id, 1)
        return rec.as_dict()

    fleet.add_routes(api, _store, audit)
    return api
