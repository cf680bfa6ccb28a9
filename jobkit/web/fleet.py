"""The API's routes over the fleet rather than one job: queues, workers, cron schedules,
dead letters, the audit log, stats, metrics and the health check (added to the router of
:mod:`jobkit.web.api`, whose docstring lists them)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from jobkit import names, registry
from jobkit.connection import describe_failure
from jobkit.cron import BoundSchedule, collect
from jobkit.models import Status
from jobkit.ops import UNAVAILABLE, Store
from jobkit.ops.audit import audit_page
from jobkit.ops.checkup import checkup
from jobkit.ops.dead import dead_jobs
from jobkit.ops.jobs import retry_job
from jobkit.ops.metrics import CONTENT_TYPE as METRICS_TYPE
from jobkit.ops.metrics import render as metrics_text
from jobkit.ops.overview import overview, queue_rows
from jobkit.ops.queues import Queues
from jobkit.ops.schedules import (
    find_schedule,
    pause_schedule,
    resume_schedule,
    run_schedule_now,
    schedule_rows,
)
from jobkit.ops.workers import read_workers, worker_view
from jobkit.web.auth import Role, reader, writer

PROBLEMS_HEADER = "jobkit-problems"  # a list route's unreadable keys, as a JSON list


def _skipped(response: Response, problems: list[str]) -> None:
    """Name the keys a list route skipped in a header (its body keeps its shape: a list;
    docs/json.md), as ASCII JSON, so a key of any name fits a header."""
    if problems:
        response.headers[PROBLEMS_HEADER] = json.dumps(problems)


class Audit(Protocol):
    """Records one write (see :func:`jobkit.ops.audit.record`)."""

    def __call__(
        self, request: Request, role: Role, action: str, target: str, count: int, detail: str = ""
    ) -> None: ...


def schedules() -> list[BoundSchedule]:
    """Every cron schedule of the job classes this process registered (``-A``)."""
    return collect(list(registry.registered().values()))


def add_routes(api: APIRouter, store_of: Callable[[], Store], audit: Audit) -> None:
    """Add the fleet's routes to ``api``."""

    @api.get("/healthz", response_model=None)
    def healthz() -> dict[str, Any] | JSONResponse:
        """A Redis round trip: 200 when it answers, 503 when it does not (no token needed:
        it says nothing of the jobs)."""
        started = time.perf_counter()
        try:
            store_of().reads.now_ms()
        except UNAVAILABLE as exc:
            body = {"status": "unavailable", "detail": describe_failure(exc)}
            return JSONResponse(body, status_code=503)
        return {"status": "ok", "redis_ms": round((time.perf_counter() - started) * 1000, 2)}

    @api.get("/doctor")
    def doctor(role: Role = Depends(reader)) -> dict[str, Any]:
        """Keys set aside, keys unreadable now, and what ``jobkit doctor`` finds."""
        return checkup(store_of())

    @api.get("/stats")
    def stats_view(role: Role = Depends(reader)) -> dict[str, Any]:
        return overview(store_of()).as_dict()

    @api.get("/metrics", response_class=Response)
    def metrics(role: Role = Depends(reader)) -> Response:
        return Response(metrics_text(store_of()), media_type=METRICS_TYPE)

    @api.get("/queues")
    def queues(response: Response, role: Role = Depends(reader)) -> list[dict[str, Any]]:
        found = queue_rows(store_of())
        _skipped(response, found.problems)
        return found.items

    def queue_write(name: str, request: Request, role: Role = Depends(writer)) -> dict[str, Any]:
        q = Queues(store_of())
        action = request.url.path.rsplit("/", 1)[-1]
        names.queue(name)  # a name outside the alphabet: 422
        if name not in store_of().reads.queues():  # a name in the path: not found
            raise HTTPException(404, f"no queue {name!r}")
        if action == "purge":
            deleted = q.purge(name)
            audit(request, role, "purge queue", name, deleted)
            return {"queue": name, "purged": deleted}
        changed = q.pause(name) if action == "pause" else q.resume(name)
        audit(request, role, f"{action} queue", name, 0, "" if changed else "unchanged")
        return {"queue": name, "paused": action == "pause", "changed": changed}

    for verb in ("pause", "resume", "purge"):
        api.add_api_route(f"/queues/{{name}}/{verb}", queue_write, methods=["POST"],
                          name=f"{verb}_queue")  # fmt: skip

    @api.get("/workers")
    def workers(response: Response, role: Role = Depends(reader)) -> list[dict[str, Any]]:
        found = read_workers(store_of())
        _skipped(response, found.problems)
        return [w.as_dict() for w in found.items]

    @api.get("/workers/{name}")
    def worker(
        name: str, limit: int = Query(20, ge=1, le=1000), role: Role = Depends(reader)
    ) -> dict[str, Any]:
        found = worker_view(store_of(), name, limit)
        if found is None:
            raise HTTPException(404, f"no worker {name!r} is live or in the events kept")
        return found

    @api.get("/schedules")
    def schedule_list(response: Response, role: Role = Depends(reader)) -> list[dict[str, Any]]:
        found = schedule_rows(store_of(), schedules())
        _skipped(response, found.problems)
        return found.items

    def schedule_write(key: str, request: Request, role: Role = Depends(writer)) -> dict[str, Any]:
        s = store_of()
        bound = find_schedule(schedules(), key)
        action = request.url.path.rsplit("/", 1)[-1]
        if action == "run":
            job_id = run_schedule_now(s, bound)
            audit(request, role, "run schedule now", key, 1, job_id)
            return {"schedule": key, "job_id": job_id}
        changed = pause_schedule(s, bound) if action == "pause" else resume_schedule(s, bound)
        audit(request, role, f"{action} schedule", key, 0, "" if changed else "unchanged")
        return {"schedule": key, "paused": action == "pause", "changed": changed}

    for verb in ("run", "pause", "resume"):
        api.add_api_route(f"/schedules/{{key}}/{verb}", schedule_write, methods=["POST"],
                          name=f"{verb}_schedule")  # fmt: skip

    @api.get("/dead")
    def dead(
        response: Response,
        limit: int = Query(50, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=1_000_000),
        role: Role = Depends(reader),
    ) -> list[dict[str, Any]]:
        found = dead_jobs(store_of(), limit, offset)
        _skipped(response, found.problems)
        return [r.as_dict() for r in found.items]

    @api.post("/dead/{job_id}/retry")
    def retry_dead(job_id: str, request: Request, role: Role = Depends(writer)) -> dict[str, Any]:
        s = store_of()
        rec = s.reads.get(job_id)
        if rec is not None and rec.status is not Status.DEAD:
            raise HTTPException(409, f"job {job_id} is not dead ({rec.status.value})")
        revived = retry_job(s, job_id)
        audit(request, role, "retry", job_id, 1)
        return revived.as_dict()

    @api.get("/audit")
    def audit_log(
        limit: int = Query(100, ge=1, le=1000),
        before: str | None = None,
        role: Role = Depends(reader),
    ) -> dict[str, Any]:
        return audit_page(store_of(), limit, before)
