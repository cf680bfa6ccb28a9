"""The dashboard in a real headless browser (Debian's chromium driven by Playwright),
against a real `jobkit serve`, redis-server and worker, all started here and shared by
the module's tests (one server, one browser): the overview loads; a running job becomes
succeeded without a reload; a dead job is retried with its button; a queue is paused; a
cron schedule is run now; a bulk retry by filter shows its count first; search finds a
job by a text in its params; each token logs in (the read-only one sees no button and
its forged POST is refused); a hostile job renders as text and runs nothing; a page that
loses its stream says so and comes back. Screenshots are saved as test artefacts
(``test-artifacts/dashboard``, or ``$JOBKIT_TEST_ARTIFACTS``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

import jobkit
from jobkit.models import Status
from jobkit.ops import Store
from jobkit.ops.queues import Queues
from tests.conftest import REPO_ROOT, wait_until
from tests.support import dash_jobs
from tests.support.example_apps import Apps
from tests.support.redis_server import RedisServer, free_port

ADMIN = "dash-admin-token-0123456789"
READ = "dash-read-token-0123456789"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = (
    Path(os.environ.get("JOBKIT_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts")) / "dashboard"
)
HOSTILE = (
    "<script>window.__pwned = 1; alert(1)</script>"
    '<img src=x onerror="window.__pwned = 2; alert(2)">'
)


@dataclass
class Served:
    redis: RedisServer
    base: str
    apps: Apps
    store: Store
    proc: subprocess.Popen[bytes]


def serve(apps: Apps, url: str, port: int, name: str = "serve", **env: str) -> Any:
    return apps.start(name, ["python", "-m", "jobkit", "serve", "-A", "tests.support.dash_jobs",
                             "--port", str(port)], JOBKIT_REDIS_URL=url, **env)  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    apps = Apps(tmp_path_factory.mktemp("dashboard"))
    with RedisServer() as redis:
        port = free_port()
        proc = serve(apps, redis.url, port, JOBKIT_API_TOKEN=ADMIN, JOBKIT_API_READ_TOKEN=READ)
        apps.start("worker", ["python", "-m", "jobkit", "worker", "-A", "tests.support.dash_jobs",
                              "-q", f"{dash_jobs.QUEUE},bulk", "-c", "2", "--lease", "5",
                              "--heartbeat", "0.5"], JOBKIT_REDIS_URL=redis.url)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            apps.wait_http(proc, f"{base}/healthz")
            jobkit.configure(redis_url=redis.url)
            yield Served(redis, base, apps, jobkit.get_store(), proc)
        finally:
            apps.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )  # fmt: skip
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def fleet(served: Served) -> Served:
    jobkit.configure(redis_url=served.redis.url)
    served.store = jobkit.get_store()
    return served


def open_page(browser: Browser, fleet: Served, token: str | None = ADMIN,
              width: int = 1280) -> tuple[BrowserContext, Page]:  # fmt: skip
    """A fresh browser context (its own cookies) logged in with ``token``; every dialog a
    page opens is recorded on ``page.dialogs`` (and dismissed)."""
    context = browser.new_context(viewport={"width": width, "height": 800 if width > 900 else 844})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    if token is not None:
        page.goto(f"{fleet.base}/login")
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(rf"{re.escape(fleet.base)}/$"))
    return context, page


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def job_url(fleet: Served, job_id: str) -> str:
    return f"{fleet.base}/jobs/{quote(job_id, safe='')}"


def test_the_overview_loads_and_draws_its_charts(fleet: Served, browser: Browser) -> None:
    for i in range(3):
        dash_jobs.Nap.dispatch(n=i)
    context, page = open_page(browser, fleet)
    try:
        expect(page.locator("[data-live=queues]")).to_contain_text(dash_jobs.QUEUE)
        expect(page.locator("#live-state")).to_have_text("live", timeout=10_000)
        expect(page.locator("#chart-done canvas")).to_have_count(1)
        shot(page, "overview-1280")
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        expect(page.locator("[data-live=queues]")).to_contain_text(dash_jobs.QUEUE)
        shot(page, "overview-390")
        for path in ("/workers", "/jobs", "/scheduled", "/dead", "/search", "/activity",
                     "/history"):  # fmt: skip
            page.goto(fleet.base + path)
            expect(page.locator("h1")).to_be_visible()
            shot(page, f"page{path.replace('/', '-')}-390")
    finally:
        context.close()


def test_a_running_job_becomes_succeeded_without_a_reload(fleet: Served, browser: Browser) -> None:
    handle = dash_jobs.Nap.dispatch(seconds=3)
    wait_until(lambda: fleet.store.reads.get(handle.id).status is Status.RUNNING, 20)  # type: ignore[union-attr]
    context, page = open_page(browser, fleet)
    try:
        page.goto(job_url(fleet, handle.id))
        badge = page.locator(f"[data-live='job-{handle.id}'] h1 .badge").first
        expect(badge).to_have_text("running")
        page.evaluate("window.__same_page = true")
        expect(badge).to_have_text("succeeded", timeout=15_000)
        assert page.evaluate("window.__same_page") is True  # no reload happened
        expect(page.locator("#timeline")).to_contain_text("succeeded", timeout=10_000)
        shot(page, "job-succeeded")
    finally:
        context.close()


def test_a_dead_job_is_retried_with_its_button(fleet: Served, browser: Browser) -> None:
    handle = dash_jobs.Doom.dispatch(message="try again")
    wait_until(lambda: fleet.store.reads.get(handle.id).status is Status.DEAD, 20)  # type: ignore[union-attr]
    context, page = open_page(browser, fleet)
    try:
        page.goto(job_url(fleet, handle.id))
        page.click("button[data-action=retry]")
        expect(page.locator("#flash")).to_contain_text("sent back")
        wait_until(
            lambda: (
                fleet.store.reads.get(handle.id).attempts == 1  # type: ignore[union-attr]
                and fleet.store.reads.get(handle.id).status is Status.DEAD
            ),
            20,
        )  # type: ignore[union-attr]
        events = [e["action"] for e in httpx.get(f"{fleet.base}/api/audit", headers={
            "authorization": f"Bearer {READ}"}).json()["entries"]]  # fmt: skip
        assert "retry" in events
    finally:
        context.close()


def test_a_queue_is_paused_and_resumed(fleet: Served, browser: Browser) -> None:
    dash_jobs.Nap.dispatch(queue="pausable")
    context, page = open_page(browser, fleet)
    try:
        page.click("button[data-action=pause-pausable]")
        expect(page.locator("#flash")).to_contain_text("queue pausable paused")
        assert {q.queue: q.paused for q in Queues(fleet.store).states()}["pausable"]
        resume = page.locator("button[data-action=resume-pausable]")
        expect(resume).to_be_visible(timeout=10_000)  # the live table says so
        shot(page, "overview-paused")
        resume.click()
        expect(page.locator("#flash")).to_contain_text("queue pausable resumed")
        assert not {q.queue: q.paused for q in Queues(fleet.store).states()}["pausable"]
    finally:
        context.close()


def test_a_cron_schedule_is_run_now(fleet: Served, browser: Browser) -> None:
    context, page = open_page(browser, fleet)
    try:
        page.goto(f"{fleet.base}/scheduled")
        expect(page.locator("#schedules")).to_contain_text("At 04:00")
        page.click("button[data-action='run-tests.support.dash_jobs.Report']")
        expect(page.locator("#flash")).to_contain_text("queued")
        job_id = page.locator("#flash").inner_text().split("job ", 1)[1].split(" queued")[0]
        wait_until(lambda: fleet.store.reads.get(job_id).status is Status.SUCCEEDED, 20)  # type: ignore[union-attr]
        page.reload()
        expect(page.locator("#schedules")).to_contain_text("succeeded")
        shot(page, "scheduled-1280")
    finally:
        context.close()


def test_a_bulk_retry_by_filter_shows_its_count_first(fleet: Served, browser: Browser) -> None:
    handles = dash_jobs.Doom.dispatch_many([{"message": f"bulk {i}"} for i in range(25)],
                                           queue="bulk")  # fmt: skip

    def dead() -> int:
        return sum(1 for h in handles if fleet.store.reads.get(h.id).status is Status.DEAD)  # type: ignore[union-attr]

    wait_until(lambda: dead() == 25, 30)
    fleet.store.redis.set(fleet.store.keys.shard("bulk").paused, 1)  # retried jobs stay queued
    context, page = open_page(browser, fleet)
    try:
        page.goto(f"{fleet.base}/dead?queue=bulk")
        page.click("button[data-action=bulk-retry]")
        expect(page.locator("#bulk")).to_contain_text("25")
        shot(page, "dead-bulk-confirm")
        page.click("button[data-action=bulk-go]")
        expect(page.locator("[data-bulk-state=done]")).to_contain_text("25 of 25", timeout=20_000)
        assert dead() == 0
    finally:
        fleet.store.redis.delete(fleet.store.keys.shard("bulk").paused)
        context.close()


def test_search_finds_a_job_by_a_text_in_its_params(fleet: Served, browser: Browser) -> None:
    wanted = dash_jobs.Nap.dispatch(note="needle-4711")
    dash_jobs.Nap.dispatch(note="haystack")
    context, page = open_page(browser, fleet)
    try:
        page.goto(f"{fleet.base}/search")
        page.fill("input[name=q]", "needle-4711")
        page.press("input[name=q]", "Enter")
        expect(page.locator("table")).to_contain_text(wanted.id)
        assert page.locator("tbody tr").count() == 1
        shot(page, "search")
    finally:
        context.close()


def test_each_token_logs_in_and_the_read_only_one_sees_no_button(
    fleet: Served, browser: Browser
) -> None:
    dash_jobs.Nap.dispatch()
    context, page = open_page(browser, fleet, token=None)
    try:
        page.goto(fleet.base + "/")
        expect(page).to_have_url(re.compile(r"/login"))
        page.fill("input[name=token]", "not-a-token-of-this-server")
        page.click("button[type=submit]")
        expect(page.get_by_text("That token is not one of this server's")).to_be_visible()
    finally:
        context.close()
    context, page = open_page(browser, fleet, token=READ)
    try:
        expect(page.locator("[data-live=queues]")).to_contain_text(dash_jobs.QUEUE)
        for path in ("/", "/scheduled", "/dead"):
            page.goto(fleet.base + path)
            expect(page.locator("h1")).to_be_visible()
            page.wait_for_timeout(300)
            assert page.locator("button[data-action]").count() == 0, path
        shot(page, "read-only-dead")
        cookies = {c["name"]: c["value"] for c in context.cookies()}
        assert all(c["httpOnly"] for c in context.cookies())
        assert all(c["sameSite"] == "Strict" for c in context.cookies())
        forged = page.evaluate(
            """async (csrf) => (await fetch('/queues/dash/pause', {method: 'POST',
                headers: {'X-CSRF-Token': csrf}})).status""",
            cookies["jobkit_csrf"],
        )  # fmt: skip
        assert forged == 403
        assert not {q.queue: q.paused for q in Queues(fleet.store).states()}[dash_jobs.QUEUE]
    finally:
        context.close()
    context, page = open_page(browser, fleet, token=ADMIN)
    try:
        no_csrf = page.evaluate("async () => (await fetch('/queues/dash/pause', "
                                "{method: 'POST'})).status")  # fmt: skip
        assert no_csrf == 403  # the admin too needs the page's CSRF token
        assert page.locator("button[data-action]").count() > 0
    finally:
        context.close()


def test_a_hostile_job_renders_as_text_and_runs_nothing(fleet: Served, browser: Browser) -> None:
    handle = dash_jobs.Doom.dispatch(message=HOSTILE, note=HOSTILE, **{HOSTILE[:20]: 1})
    wait_until(lambda: fleet.store.reads.get(handle.id).status is Status.DEAD, 20)  # type: ignore[union-attr]
    context, page = open_page(browser, fleet)
    try:
        for url in (job_url(fleet, handle.id), f"{fleet.base}/jobs", f"{fleet.base}/dead",
                    f"{fleet.base}/search?q={quote('window.__pwned')}"):  # fmt: skip
            page.goto(url)
            page.wait_for_timeout(500)
            assert page.evaluate("typeof window.__pwned") == "undefined", url
            assert page.locator("img[src=x]").count() == 0, url
        page.goto(job_url(fleet, handle.id))
        expect(page.locator("pre.block").first).to_contain_text("<script>window.__pwned = 1")
        expect(page.locator("main")).to_contain_text('onerror="window.__pwned = 2')
        page.wait_for_timeout(2500)  # a live update or two: still text
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.dialogs == []  # type: ignore[attr-defined]
        shot(page, "hostile-job")
    finally:
        context.close()


def test_a_page_that_loses_its_stream_says_so_and_reconnects(
    fleet: Served, browser: Browser, tmp_path: Path
) -> None:
    apps = Apps(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        proc = serve(apps, fleet.redis.url, port, "lonely")
        apps.wait_http(proc, f"{base}/healthz")
        context = browser.new_context()
        page = context.new_page()
        page.goto(base + "/")
        expect(page.locator("#live-state")).to_have_text("live", timeout=10_000)
        apps.kill(proc)
        expect(page.locator("#live-lost")).to_be_visible(timeout=10_000)
        expect(page.locator("#live-state")).to_contain_text("reconnecting")
        shot(page, "stream-lost")
        proc = serve(apps, fleet.redis.url, port, "back")
        apps.wait_http(proc, f"{base}/healthz")
        expect(page.locator("#live-state")).to_have_text("live", timeout=15_000)
        expect(page.locator("#live-lost")).to_be_hidden()
        context.close()
    finally:
        apps.stop()


@pytest.mark.parametrize("width", [1280, 390])
def test_the_overview_shows_a_banner_for_a_key_set_aside(
    fleet: Served, browser: Browser, width: int
) -> None:
    dash_jobs.Nap.dispatch(n=0)  # its queue is known to the overview
    shard = fleet.store.keys.shard(dash_jobs.QUEUE)
    key = f"{shard.base}:queue:{HOSTILE}"
    kept = shard.aside(key, 1_700_000_000_000)
    note = {"key": key, "found": "list", "want": "zset", "kept": kept,
            "at": 1_700_000_000_000, "note": "claim"}  # fmt: skip
    fleet.store.redis.hset(shard.asides, kept, orjson.dumps(note))
    context, page = open_page(browser, fleet, width=width)
    try:
        banner = page.locator(".banner.asides")
        expect(banner).to_contain_text(f"A damaged key was set aside: {key} held a list")
        expect(banner).to_contain_text("at 2023-11-14 22:13:20 — run jobkit doctor")
        assert page.evaluate("window.__pwned") is None and page.dialogs == []  # type: ignore[attr-defined]
        box = banner.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width  # no wider than the page
        shot(page, f"overview-set-aside-{width}")
    finally:
        context.close()
        fleet.store.redis.delete(shard.asides)
