"""The dashboard's writes (POST): pause and resume a queue, retry and cancel a job, run,
pause and resume a cron schedule, retry and purge dead jobs (selected, or every one
matching a filter, counted first, with progress while it runs), log in and out.

Each checks the role (the admin token; 401 without a login, 403 for the read-only one)
and the CSRF token before anything else, goes through :mod:`jobkit.ops` as the API does,
and is recorded in the audit log with its role. An htmx request gets a fragment back (a
message, or the bulk action's progress); a plain form post is redirected back to the
page it came from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from jobkit.ops import bulk
from jobkit.ops.audit import record
from jobkit.ops.dead import purge_dead, retry_dead
from jobkit.ops.jobs import cancel_job, retry_job
from jobkit.ops.queues import Queues
from jobkit.ops.refusals import detail_of, status_of
from jobkit.ops.schedules import find_schedule, pause_schedule, resume_schedule, run_schedule_now
from jobkit.web.auth import Role, client_of, role_of
from jobkit.web.dashboard import session

if TYPE_CHECKING:
    from jobkit.web.dashboard import Dashboard

MAX_SELECTED = 1000  # ids one "selected" action takes


def add_actions(api: APIRouter, dash: Dashboard) -> None:
    """Add every write's route to ``api``."""

    async def allowed(request: Request) -> Role:
        role = session.writer(request)
        await session.check_csrf(request)
        return role

    def done(request: Request, role: Role, action: str, target: str, count: int,
             message: str, detail: str = "") -> Response:  # fmt: skip
        record(dash.store(), role.value, action, target, count, detail, client_of(request))
        return dash.answer(request, message)

    def refused(request: Request, exc: Exception) -> Response:
        if status_of(exc) is None:
            raise exc
        return dash.answer(request, str(detail_of(exc)), kind="bad")

    @api.post("/queues/{name}/{verb}")
    def queue(request: Request, name: str, verb: str, role: Role = Depends(allowed)) -> Response:
        q = Queues(dash.store())
        try:
            if verb == "pause":
                changed = q.pause(name)
            elif verb == "resume":
                changed = q.resume(name)
            else:
                raise HTTPException(404, f"no action {verb!r}")
        except HTTPException:
            raise
        except Exception as exc:
            return refused(request, exc)
        said = f"queue {name} {verb}d" if changed else f"queue {name} was {verb}d already"
        return done(request, role, f"{verb} queue", name, 0, said)

    @api.post("/jobs/{job_id}/{verb}")
    def job(request: Request, job_id: str, verb: str, role: Role = Depends(allowed)) -> Response:
        try:
            if verb == "retry":
                retry_job(dash.store(), job_id)
                return done(request, role, "retry", job_id, 1, f"job {job_id} sent back")
            if verb == "cancel":
                outcome = cancel_job(dash.store(), job_id)
                if not outcome:
                    return dash.answer(request, f"job {job_id}: too late ({outcome})", kind="bad")
                return done(request, role, "cancel", job_id, 1, f"job {job_id}: {outcome}",
                            outcome.value)  # fmt: skip
        except Exception as exc:
            return refused(request, exc)
        raise HTTPException(404, f"no action {verb!r}")

    @api.post("/schedules/{key}/{verb}")
    def schedule(request: Request, key: str, verb: str, role: Role = Depends(allowed)) -> Response:
        store = dash.store()
        try:
            bound = find_schedule(dash.schedules(), key)
            if verb == "run":
                job_id = run_schedule_now(store, bound)
                return done(request, role, "run schedule now", key, 1,
                            f"schedule {key}: job {job_id} queued", job_id)  # fmt: skip
            if verb in ("pause", "resume"):
                changed = (pause_schedule if verb == "pause" else resume_schedule)(store, bound)
                said = f"schedule {key} {verb}d" if changed else f"schedule {key} was {verb}d"
                return done(request, role, f"{verb} schedule", key, 0, said)
        except Exception as exc:
            return refused(request, exc)
        raise HTTPException(404, f"no action {verb!r}")

    @api.post("/dead/selected")
    async def selected(request: Request, role: Role = Depends(allowed)) -> Response:
        form = await request.form()
        ids = [str(i) for i in form.getlist("ids")][:MAX_SELECTED]
        action = str(form.get("action", ""))
        if action not in ("retry", "purge"):
            raise HTTPException(422, "action: retry or purge")
        if not ids:
            return dash.answer(request, "select jobs first", kind="bad")
        store = dash.store()
        if action == "retry":
            n, _ = retry_dead(store, ids)
        else:
            n = purge_dead(store, ids)
        return done(request, role, action, f"{len(ids)} selected", n,
                    f"{action}: {n} of {len(ids)} selected job(s)")  # fmt: skip

    @api.post("/dead/bulk")
    async def dead_bulk(request: Request, role: Role = Depends(allowed)) -> Response:
        form = await request.form()
        action = str(form.get("action", ""))
        queue, name = str(form.get("queue", "")), str(form.get("name", ""))
        f = {"queue": queue, "name": name}
        try:
            req = bulk.bulk_request(action, queues=(queue,) if queue else (), name=name or None)
            if not form.get("go"):
                count = bulk.count(dash.store(), req)
                return dash.fragment(request, "_bulk.html", state="confirm", action=action,
                                     count=count, filters=req.describe(), f=f)  # fmt: skip
            progress = bulk.start(dash.store(), req, role.value, client_of(request))
        except Exception as exc:
            return refused(request, exc)
        return dash.fragment(request, "_bulk.html", state=progress["state"], progress=progress)

    @api.get("/bulk/{action_id}")
    def bulk_progress(request: Request, action_id: str) -> Response:
        dash.role_or_401(request)
        progress = bulk.progress(dash.store(), action_id)
        if progress is None:
            raise HTTPException(404, f"no bulk action {action_id!r}")
        return dash.fragment(request, "_bulk.html", state=progress["state"], progress=progress)

    @api.get("/login")
    def login_page(request: Request, next: str = "") -> Response:
        if role_of(None) is not None:  # no token configured: nothing to log in to
            return RedirectResponse(f"{dash.prefix}/", 303)
        return dash.page(request, "login.html", "", "Log in", anonymous=True, next=next)

    @api.post("/login")
    async def login(request: Request) -> Response:
        await session.check_csrf(request)
        form = await request.form()
        token = str(form.get("token", ""))
        if role_of(token) is None:
            return dash.page(request, "login.html", "", "Log in", anonymous=True,
                             error="That token is not one of this server's.",
                             status_code=401)  # fmt: skip
        response = RedirectResponse(_back(request, dash.prefix, str(form.get("next", ""))), 303)
        session.log_in(response, request, token, dash.prefix)
        return response

    @api.post("/logout")
    async def logout(request: Request) -> Response:
        await session.check_csrf(request)
        response = RedirectResponse(f"{dash.prefix}/login", 303)
        session.log_out(response, dash.prefix)
        return response


def _back(request: Request, prefix: str, wanted: str) -> str:
    """Where to send a visitor back to: a path of this dashboard only (never another site)."""
    path = urlsplit(wanted).path if wanted else ""
    if path.startswith(prefix + "/") and not path.startswith("//") and "\\" not in path:
        return path
    return f"{prefix}/"


def back_url(request: Request, prefix: str, message: str) -> str:
    """The page a plain form came from (its Referer, if it is ours), with a message."""
    referer = urlsplit(request.headers.get("referer", ""))
    own = referer.netloc == request.url.netloc
    path = referer.path if own and referer.path.startswith(prefix + "/") else f"{prefix}/"
    return f"{path}?{urlencode({'flash': message[:200]})}"
