"""The dashboard mounted in an app of one's own, under a prefix: its pages, links, static
files and cookies stay under the prefix, and its writes still need the CSRF token."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from jobkit.web.dashboard import mount
from tests.conftest import Env
from tests.support import jobs


def test_mounted_under_a_prefix(env: Env) -> None:
    jobs.Add.dispatch(a=1, b=2)
    app = FastAPI()
    mount(app, prefix="/ops/jobkit/")
    http = TestClient(app)
    page = http.get("/ops/jobkit/")
    assert page.status_code == 200
    assert (
        'href="/ops/jobkit/jobs"' in page.text and "/ops/jobkit/static/dashboard.css" in page.text
    )
    assert "default" in page.text  # the queue of the job dispatched
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert http.get("/ops/jobkit/static/dashboard.css").status_code == 200
    assert http.get("/ops/jobkit/static/vendor/htmx.LICENSE").status_code == 200
    csrf = http.cookies.get("jobkit_csrf")
    assert csrf and [c.path for c in http.cookies.jar] == ["/ops/jobkit"]
    refused = http.post("/ops/jobkit/queues/default/pause")
    assert refused.status_code == 403
    assert not env.client.exists(env.keys.shard("default").paused)
    done = http.post("/ops/jobkit/queues/default/pause", headers={"x-csrf-token": csrf,
                                                                 "hx-request": "true"})  # fmt: skip
    assert done.status_code == 200 and "queue default paused" in done.text
    assert env.client.exists(env.keys.shard("default").paused)
    assert http.get("/jobs").status_code == 404  # nothing outside the prefix
