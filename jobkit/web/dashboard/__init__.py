"""The web dashboard: server-rendered pages over :mod:`jobkit.ops`, live over server-sent
events, served by ``jobkit serve`` at ``/`` and mountable in your own FastAPI app::

    from jobkit.web.dashboard import mount
    mount(app, prefix="/jobkit")

Templates and static files are package data (Jinja2; htmx and uPlot vendored with their
licences in ``static/vendor``): no Node build, nothing from a CDN. Pages: the overview,
workers (and one worker), jobs (and one job), scheduled and cron, dead letters, search,
history (with an archive), activity; the read-only token sees every page and no button.
Every response carries a strict Content-Security-Policy (no inline script, nothing from
elsewhere), so even a job whose params held markup that escaped the templates' escaping
could run nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from jobkit import registry
from jobkit.connection import get_store
from jobkit.cron import BoundSchedule, collect
from jobkit.ops import Store
from jobkit.ops.jobs import waited_by
from jobkit.web.auth import Role
from jobkit.web.dashboard import session
from jobkit.web.dashboard.live import INTERVAL, Broadcaster, Fragments, Snapshot
from jobkit.web.dashboard.render import render
from jobkit.web.dashboard.views import NAV, overview_context, rows

__all__ = ["Dashboard", "mount"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class Dashboard:
    """One mounted dashboard: its prefix, its store, its live broadcaster."""

    def __init__(
        self, prefix: str = "", store: Store | None = None, interval: float = INTERVAL
    ) -> None:
        self.prefix = prefix.rstrip("/")
        self._store = store
        self.broadcaster = Broadcaster(self.store, self.fragments, interval)
        self._cache: dict[Any, tuple[float, Any]] = {}

    def cached(self, key: Any, ttl: float, read: Callable[[], Any]) -> Any:
        """``read()``, or what it gave for ``key`` less than ``ttl`` seconds ago (the
        history's aggregates take a database a second or more over a week: viewers share
        one read a minute)."""
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < ttl:
            return hit[1]
        value = read()
        self._cache[key] = (time.monotonic(), value)
        return value

    def store(self) -> Store:
        return self._store or get_store()

    def schedules(self) -> list[BoundSchedule]:
        """The cron schedules of the job classes this process registered (``-A``)."""
        return collect(list(registry.registered().values()))

    def snapshot(self) -> Snapshot:
        """The fleet now: the live reader's last snapshot while it is fresh, else a read."""
        last = self.broadcaster.last
        if last is not None and time.time() - last.at < self.broadcaster.interval:
            return last
        return self.broadcaster.read()

    # -- responses --------------------------------------------------------------------

    def base(self, request: Request, role: Role | None, **context: Any) -> dict[str, Any]:
        """What every template gets: ``role`` None for a visitor not logged in."""
        return {
            "prefix": self.prefix,
            "nav": NAV,
            "role": role.value if role else "",
            "guest": role is None,
            "can_write": role is not None and role.writes,
            "csrf": session.csrf_token(request),
            "logged_in": role is not None and role is not Role.OPEN,
            **context,
        }

    def page(
        self,
        request: Request,
        template: str,
        active: str,
        title: str,
        *,
        live: tuple[str, ...] = (),
        live_query: str = "",
        anonymous: bool = False,
        status_code: int = 200,
        **context: Any,
    ) -> Response:
        """A whole page (a visitor not logged in is sent to the login page)."""
        role = session.role(request)
        if role is None and not anonymous:
            target = f"{self.prefix}/login?next={request.url.path}"
            return RedirectResponse(target, 303)
        html = render(template, **self.base(request, role, active=active,
                                             title=title, live_names=" ".join(live),
                                             live_query=live_query,
                                             flash=request.query_params.get("flash", ""),
                                             **context))  # fmt: skip
        response = HTMLResponse(html, status_code=status_code, headers=HEADERS)
        session.keep_csrf(request, response, self.prefix)
        return response

    def fragment(self, request: Request, template: str, **context: Any) -> Response:
        role = session.role(request)
        return HTMLResponse(render(template, **self.base(request, role, **context)),
                            headers=HEADERS)  # fmt: skip

    def answer(self, request: Request, message: str, kind: str = "ok") -> Response:
        """What a write says: a message fragment for htmx, else back to where it came from."""
        if request.headers.get("hx-request"):
            return self.fragment(request, "_flash.html", message=message, kind=kind)
        from jobkit.web.dashboard.actions import back_url

        return RedirectResponse(back_url(request, self.prefix, message), 303)

    def role_or_401(self, request: Request) -> Role:
        role = session.role(request)
        if role is None:
            raise HTTPException(401, "log in first")
        return role

    def fragments(self, snapshot: Snapshot, role: Role, jobs: frozenset[str]) -> Fragments:
        """The live fragments of ``snapshot`` as ``role`` sees them (no per-visitor data in
        them: the CSRF fields are filled in by the page's script)."""
        base = {"prefix": self.prefix, "can_write": role.writes, "csrf": ""}
        seen = overview_context(snapshot)
        out = {
            "fleet": render("_fleet.html", **base, **seen),
            "queues": render("_queues.html", **base, **seen),
            "workers": render("_workers.html", **base, workers=snapshot.workers),
            "recent": render(
                "_jobs_rows.html", **base, jobs=rows(snapshot.recent), at_label="Created"
            ),
            "chart": orjson.dumps(seen["chart"]).decode(),
        }
        for job_id in jobs:
            record = snapshot.jobs.get(job_id)
            if record is not None:
                params = record.as_dict()["params"]
                after = waited_by(self.store(), record)
                out[f"job-{job_id}"] = render("_job_summary.html", **base, job=record,
                                              params=params, waited_by=after)  # fmt: skip
        return out


def mount(
    app: FastAPI,
    prefix: str = "",
    store: Store | None = None,
    interval: float = INTERVAL,
) -> Dashboard:
    """Serve the dashboard from ``app`` under ``prefix`` ("" for the root)."""
    from jobkit.web.dashboard.actions import add_actions
    from jobkit.web.dashboard.pages import add_pages

    dash = Dashboard(prefix, store, interval)
    static = StaticFiles(packages=[("jobkit.web.dashboard", "static")])
    app.mount(f"{dash.prefix}/static", static, name=f"jobkit-dashboard-static{dash.prefix}")
    api = APIRouter(prefix=dash.prefix, include_in_schema=False)
    add_pages(api, dash)
    add_actions(api, dash)
    app.include_router(api)
    app.state.jobkit_dashboard = dash
    return dash
