"""An optional FastAPI router: dispatch jobs and read their status over HTTP.

``app.include_router(jobkit.http.router())`` gives::

    POST /jobs/{name}        body: the job's params      -> 202 {"job_id", "status"}
    GET  /jobs               jobs in any state, newest first: ?status=queued,dead
                             &queue=q&name=Class&since=10m&limit=20&cursor=...;
                             ?archived=1: from the history archive, same filters
                             -> {"jobs": [...], "next_cursor"}
    GET  /jobs/{job_id}      status, attempts, result, error (404 for unknown ids); a
                             job Redis no longer holds from the history archive
                             ("source": "archive")
    POST /jobs/{job_id}/cancel  200: withdrawn before it started; 202: it runs, its
                             worker stops it; 409: it has finished ("cancel" in the
                             reply: cancelled | requested)
    GET  /dead               dead-lettered jobs, newest first
    POST /dead/{job_id}/retry
    GET  /workers            live workers and what they run
    GET  /stats              queue sizes and totals; archive_lag: per queue, events the
                             history archiver has not archived yet
    GET  /metrics            the same for Prometheus (text format): jobs by state,
                             latency, finished attempts, workers, archive lag

Bad input is a 4xx, never a 500: 404 for an unknown job, 413 for params over
``JOBKIT_MAX_PAYLOAD``, 422 for anything else (a body that is not a JSON object, invalid
params, a key that is not a param, an option out of range, a bad ``job_id`` or queue).
Params come only from the body and options only from the query, so a param named like an
option never becomes one.

Needs the ``http`` extra (``pip install 'jobkit[http]'``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NoReturn

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from jobkit import registry
from jobkit.backend.archive_feed import ArchiveFeed
from jobkit.backend.store import Store
from jobkit.backend.workers import WorkerRegistry
from jobkit.connection import get_settings, get_store
from jobkit.errors import (
    DispatchError,
    HistoryUnavailable,
    InvalidName,
    InvalidQuery,
    InvalidTransition,
    PayloadTooLarge,
    SerializationError,
    UnknownJobError,
    UnknownQueue,
)
from jobkit.job import BaseJob
from jobkit.models import CancelOutcome, Status
from jobkit.ops.jobs import (
    find_job,
    list_page,
    local_ms,
    page_as_dict,
    parse_since,
    parse_statuses,
)
from jobkit.ops.listing import DEFAULT_LIMIT, MAX_LIMIT, JobQuery
from jobkit.ops.metrics import CONTENT_TYPE as METRICS_TYPE
from jobkit.ops.metrics import render as metrics_text

# The request body of POST /jobs/{name}, for the OpenAPI page (the endpoint reads the
# body itself: see read_params)
_PARAMS_BODY = {
    "requestBody": {
        "content": {"application/json": {"schema": {"type": "object", "title": "Params"}}},
        "description": "the job's params; an empty body means none",
    }
}


def job_view(store: Store, job_id: str) -> dict[str, Any]:
    """The public JSON view of one job, from Redis or else from the history archive
    (``source`` says which); raises 404 for an unknown id, 503 for an archive that
    cannot be read."""
    try:
        rec = find_job(store, job_id)
    except HistoryUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    if rec is None:
        raise HTTPException(404, {"job_id": job_id, "status": Status.UNKNOWN.value})
    view = rec.as_dict()
    view["job_id"] = view.pop("id")
    return view


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
    ``store`` is None (``since`` then counts back from this host's clock). Bad filters or
    cursors are 422, an archive that cannot be read 503."""
    try:
        queues = tuple(q for item in queue or [] for q in item.split(",") if q)
        since_ms = None
        if since and not cursor:
            since_ms = parse_since(since, local_ms if store is None else store.now_ms)
        query = JobQuery(parse_statuses(status), queues, name, since_ms, limit, cursor)
        return page_as_dict(list_page(query, store, archived=store is None))
    except (InvalidQuery, UnknownQueue) as exc:
        raise HTTPException(422, str(exc)) from None
    except HistoryUnavailable as exc:
        raise HTTPException(503, str(exc)) from None


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def read_params(body: bytes) -> dict[str, Any]:
    """A request body as params: a JSON object (an empty body is ``{}``); anything else
    raises a 422. Read here rather than by FastAPI, which lets ``NaN`` through and
    answers 500 when it must echo one back in a validation error."""
    if not body.strip():
        return {}
    try:
        params = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # also ints over 4300 digits, deep nesting
        raise HTTPException(422, f"the body is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise HTTPException(422, f"params must be a JSON object, not {type(params).__name__}")
    return params


def dispatch_params(
    cls: type[BaseJob], params: dict[str, Any], store: Store | None = None, **options: Any
) -> dict[str, Any]:
    """:meth:`BaseJob.dispatch_params`, with every refusal as an HTTP error: 413 for
    params over the size limit, 422 for the rest. Returns ``{"job_id", "status"}``."""
    try:
        handle = cls.dispatch_params(params, store=store or get_store(), **options)
    except ValidationError as exc:
        # without the inputs: they may hold what JSON cannot (NaN), which would fail the
        # response, and they are the caller's own anyway
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise HTTPException(422, errors) from None
    except PayloadTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except (DispatchError, InvalidName, SerializationError) as exc:
        raise HTTPException(422, str(exc)) from None
    return {"job_id": handle.id, "status": handle.status.value}


async def dispatch_request(
    cls: type[BaseJob], request: Request, store: Store | None = None, **options: Any
) -> dict[str, Any]:
    """Dispatch ``cls`` with the request's body as its params (see :func:`read_params`
    and :func:`dispatch_params`), off the event loop: validation and Redis block."""
    body = await request.body()
    return await run_in_threadpool(
        lambda: dispatch_params(cls, read_params(body), store, **options)
    )


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

    @api.post("/jobs/{name}", status_code=202, openapi_extra=_PARAMS_BODY)
    async def dispatch(
        name: str,
        request: Request,
        delay: float | None = Query(None, ge=0),
        queue: str | None = None,
        priority: int | None = None,
        job_id: str | None = None,
    ) -> dict[str, Any]:
        cls = _job_class(name)
        return await dispatch_request(
            cls, request, _store(), delay=delay, queue=queue, priority=priority, job_id=job_id
        )

    @api.get("/jobs")
    def listing(
        status: str | None = None,
        queue: list[str] | None = Query(None),
        name: str | None = None,
        since: str | None = None,
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
        cursor: str | None = None,
        archived: bool = False,
    ) -> dict[str, Any]:
        return list_view(None if archived else _store(), status, queue, name, since,
                         limit, cursor)  # fmt: skip

    @api.get("/jobs/{job_id}")
    def status(job_id: str) -> dict[str, Any]:
        return job_view(_store(), job_id)

    @api.post("/jobs/{job_id}/cancel")
    def cancel(job_id: str, response: Response) -> dict[str, Any]:
        outcome = _store().cancel(job_id, get_settings().result_ttl)
        view = job_view(_store(), job_id)  # 404 for an unknown id
        if outcome is CancelOutcome.FINISHED:
            raise HTTPException(409, f"job {job_id} has finished ({view['status']}): too late")
        if outcome is CancelOutcome.UNKNOWN:  # only in the history archive: long over
            raise HTTPException(409, f"job {job_id} is only archived ({view['status']}): too late")
        if outcome is CancelOutcome.REQUESTED:
            response.status_code = 202  # its worker stops it within about a second
        return {**view, "cancel": outcome.value}

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
        lag = {q: x.behind for q, x in ArchiveFeed(s, "stats").lag().items()}
        return {
            "queues": s.queue_sizes(s.known_lanes()),
            **s.counts().as_dict(),
            "archive_lag": lag,
        }

    @api.get("/metrics", response_class=Response)
    def metrics() -> Response:
        return Response(metrics_text(_store()), media_type=METRICS_TYPE)

    return api
