"""The dashboard's pages (GET), each read through :mod:`jobkit.ops`: the overview, workers,
jobs, one job, scheduled and cron, dead letters, search, history, activity, and the
login. Every page is server-rendered; the overview, the workers, the newest jobs and a
job's page then update live (:mod:`jobkit.web.dashboard.live`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from jobkit.errors import HistoryUnavailable, InvalidQuery, UnknownQueue
from jobkit.models import Status
from jobkit.ops.audit import audit_entries
from jobkit.ops.jobs import (
    find_job,
    list_page,
    local_ms,
    parse_since,
    parse_statuses,
    waited_by,
)
from jobkit.ops.listing import LISTABLE, JobQuery, index_for
from jobkit.ops.schedules import schedule_rows
from jobkit.ops.workers import recent_workers, worker_jobs
from jobkit.web.dashboard import views

if TYPE_CHECKING:
    from jobkit.web.dashboard import Dashboard

PAGE = 20  # jobs a table shows
HISTORY_TTL = 60.0  # seconds a history read serves every viewer
HISTORY_SPANS = [(6, "6 hours"), (24, "24 hours"), (72, "3 days"), (168, "7 days"),
                 (720, "30 days")]  # fmt: skip


def add_pages(api: APIRouter, dash: Dashboard) -> None:
    """Add every page's route to ``api``."""

    @api.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> Response:
        snapshot = dash.snapshot()
        return dash.page(request, "overview.html", "overview", "Overview",
                         live=("fleet", "queues", "chart"),
                         **views.overview_context(snapshot))  # fmt: skip

    @api.get("/workers", response_class=HTMLResponse)
    def workers(request: Request) -> Response:
        snapshot = dash.snapshot()
        live_names = {w.name for w in snapshot.workers}
        return dash.page(request, "workers.html", "workers", "Workers", live=("workers",),
                         workers=snapshot.workers, live_set=live_names,
                         recent=recent_workers(dash.store()))  # fmt: skip

    @api.get("/workers/{name}", response_class=HTMLResponse)
    def worker(request: Request, name: str) -> Response:
        current = next((w for w in dash.snapshot().workers if w.name == name), None)
        return dash.page(request, "worker.html", "workers", name, name=name, current=current,
                         jobs=worker_jobs(dash.store(), name, 50))  # fmt: skip

    @api.get("/jobs", response_class=HTMLResponse)
    def jobs(
        request: Request,
        status: str = "",
        queue: str = "",
        name: str = "",
        since: str = "",
        cursor: str = "",
        archived: str = "",
    ) -> Response:
        f = {"status": status, "queue": queue, "name": name, "since": since,
             "archived": archived}  # fmt: skip
        store = dash.store()
        page, error = None, ""
        try:
            statuses = parse_statuses(status)
            since_ms = None
            if since and not cursor:
                since_ms = parse_since(since, local_ms if archived else store.reads.now_ms)
            query = JobQuery(statuses, (queue,) if queue else (), name or None, since_ms, PAGE,
                             cursor or None)  # fmt: skip
            page = list_page(query, None if archived else store, archived=bool(archived))
            kind = index_for(statuses)
        except (InvalidQuery, UnknownQueue, HistoryUnavailable) as exc:
            error, kind = str(exc), "created"
        filtered = any(f.values())
        live_list = not filtered and not cursor and page is not None
        return dash.page(request, "jobs.html", "jobs", "Jobs",
                         live=("recent",) if live_list else (), f=f, error=error,
                         jobs=views.rows(page), filtered=filtered, live_list=live_list,
                         statuses=[s.value for s in LISTABLE], queue_names=store.reads.queues(),
                         ages=views.AGES, at_label=_AT.get(kind, "Created"),
                         order_note=_order_note(bool(archived), kind),
                         next_url=_next(dash.prefix, "/jobs", f, page))  # fmt: skip

    @api.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job(request: Request, job_id: str) -> Response:
        found = find_job(dash.store(), job_id)
        if found is None:
            said = f"No job {job_id} in Redis or the history archive."
            return dash.page(request, "error.html", "jobs", "Unknown job", status_code=404,
                             heading="Unknown job", message=said)  # fmt: skip
        return dash.page(request, "job.html", "jobs", job_id, live=(f"job-{job_id}",),
                         live_query="?" + urlencode({"job": job_id}), job=found,
                         params=found.as_dict()["params"],
                         waited_by=waited_by(dash.store(), found),
                         **views.timeline(dash.store(), found))  # fmt: skip

    @api.get("/jobs/{job_id}/timeline", response_class=HTMLResponse)
    def job_timeline(request: Request, job_id: str) -> Response:
        found = find_job(dash.store(), job_id)
        if found is None:
            return HTMLResponse("", status_code=404)
        return dash.fragment(request, "_timeline.html", **views.timeline(dash.store(), found))

    @api.get("/scheduled", response_class=HTMLResponse)
    def scheduled(request: Request, cursor: str = "") -> Response:
        store = dash.store()
        rows = schedule_rows(store, dash.schedules()).items
        for row in rows:
            row["words"] = views.cron_words(row["expr"])
        query = JobQuery(frozenset({Status.SCHEDULED, Status.RETRYING}), limit=PAGE,
                         cursor=cursor or None)  # fmt: skip
        page = list_page(query, store)
        return dash.page(request, "scheduled.html", "scheduled", "Scheduled", schedules=rows,
                         jobs=views.rows(page), at_label="Due",
                         next_url=_next(dash.prefix, "/scheduled", {}, page))  # fmt: skip

    @api.get("/dead", response_class=HTMLResponse)
    def dead(request: Request, queue: str = "", name: str = "", cursor: str = "") -> Response:
        store = dash.store()
        f = {"queue": queue, "name": name}
        page, error = None, ""
        query = JobQuery(frozenset({Status.DEAD}), (queue,) if queue else (), name or None,
                         limit=PAGE, cursor=cursor or None)  # fmt: skip
        try:
            page = list_page(query, store)
        except (InvalidQuery, UnknownQueue) as exc:
            error = str(exc)
        total = store.reads.counts().dead
        return dash.page(request, "dead.html", "dead", "Dead", f=f, error=error, total=total,
                         jobs=views.rows(page), selectable=True, at_label="Died",
                         queue_names=store.reads.queues(),
                         empty="No dead job: nothing failed for good.",
                         next_url=_next(dash.prefix, "/dead", f, page))  # fmt: skip

    @api.get("/search", response_class=HTMLResponse)
    def search(request: Request, q: str = Query("", max_length=500)) -> Response:
        result, error, found = None, "", []
        if q.strip():
            from jobkit.ops.search import search as run_search

            try:
                result = run_search(dash.store(), q)
                found = views.record_rows(result.jobs)
            except InvalidQuery as exc:
                error = str(exc)
        return dash.page(request, "search.html", "search", "Search", q=q, result=result,
                         error=error, jobs=found, at_label="Last change")  # fmt: skip

    @api.get("/history", response_class=HTMLResponse)
    def history(request: Request, hours: int = 24) -> Response:
        from jobkit.ops.history import history as read_history

        hours = min((h for h, _ in HISTORY_SPANS), key=lambda h: abs(h - hours))
        data, error = None, ""
        try:
            data = dash.cached(("history", hours), HISTORY_TTL,
                               lambda: read_history(hours, _bucket(hours)))  # fmt: skip
        except HistoryUnavailable as exc:
            error = str(exc)
        return dash.page(request, "history.html", "history", "History", data=data,
                         error=error, hours=hours, spans=HISTORY_SPANS)  # fmt: skip

    @api.get("/activity", response_class=HTMLResponse)
    def activity(request: Request, before: str = "") -> Response:
        entries = audit_entries(dash.store(), 100, before or None)
        next_url = ""
        if len(entries) == 100:
            next_url = f"{dash.prefix}/activity?" + urlencode({"before": entries[-1].id})
        return dash.page(request, "activity.html", "activity", "Activity", entries=entries,
                         next_url=next_url)  # fmt: skip

    @api.get("/live")
    def live(request: Request, job: list[str] = Query(default=[])) -> Response:
        role = dash.role_or_401(request)
        return StreamingResponse(
            dash.broadcaster.stream(role, frozenset(job)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


_AT = {"created": "Created", "dead": "Died", "finished": "Ended", "scheduled": "Due",
       "running": "Started"}  # fmt: skip


def _order_note(archived: bool, kind: str) -> str:
    if archived:
        return "from the history archive, newest change first"
    if kind == "created":
        return "newest created first; paging lists each job once, however it moves"
    return f"newest first, by when they {_AT[kind].lower()}"


def _next(prefix: str, path: str, f: dict[str, str], page: Any) -> str:
    if page is None or not page.next_cursor:
        return ""
    query = {k: v for k, v in f.items() if v}
    return f"{prefix}{path}?" + urlencode({**query, "cursor": page.next_cursor})


def _bucket(hours: int) -> int:
    """Minutes a history bucket spans: about 48 to 150 buckets whatever the span."""
    return (
        10
        if hours <= 6
        else 30
        if hours <= 24
        else 120
        if hours <= 72
        else 240
        if hours <= 168
        else 1440
    )
