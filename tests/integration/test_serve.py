"""`jobkit serve` as a process, over real HTTP (httpx), against a real redis-server and
real workers: every route, every refusal (a 4xx with a JSON body that writes nothing),
both roles (a read token cannot write; 401s and 403s write nothing; the audit log records
each write with its role), a bulk retry of 10,000 dead jobs after a dry run, /healthz
with Redis stopped, /metrics parsed by prometheus_client, worker counts within a second
of a job's end, and the refusal to bind beyond loopback without a token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import jobkit
from jobkit.backend.audit import AuditLog
from jobkit.backend.store import Store
from jobkit.models import Status
from tests.conftest import HEARTBEAT, LEASE, StartWorker, wait_until
from tests.support import jobs, serve_jobs
from tests.support.example_apps import Apps
from tests.support.redis_server import RedisServer, free_port

ADMIN = "admin-token-0123456789abcdef"
READ = "read-token-0123456789abcdef"
SCHEDULE = "tests.support.serve_jobs.Nightly#eu"


@dataclass
class Served:
    """One `jobkit serve` process with both tokens set, on its own redis-server."""

    redis: RedisServer
    base: str
    apps: Apps
    store: Store

    def client(self, token: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30, **kw)

    def size(self) -> tuple[Any, ...]:
        """What any write would change (a refused request must leave it as it was): every
        queue's event stream (each job change appends one), paused flags, schedules'
        hashes, the queue registry and the audit log. (The number of keys moves by
        itself: a stopped worker's registry entry expires.)"""
        s = self.store
        queues = s.reads.queues()
        pipe = s.redis.pipeline(transaction=False)
        for q in queues:
            pipe.xlen(s.keys.shard(q).events)
            pipe.exists(s.keys.shard(q).paused)
            pipe.hgetall(s.keys.shard(q).schedule(SCHEDULE))
        pipe.xlen(s.keys.audit)
        return (tuple(queues), tuple(map(str, pipe.execute())))

    def audit(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in AuditLog(self.store).entries(1000)]


def serve_command(port: int, *extra: str) -> list[str]:
    return ["python", "-m", "jobkit", "serve", "-A", "tests.support.jobs",
            "-A", "tests.support.serve_jobs", "--port", str(port), *extra]  # fmt: skip


def wait_healthy(apps: Apps, proc: Any, base: str) -> None:
    def up() -> bool:
        assert proc.poll() is None, f"jobkit serve exited:\n{apps.log(proc)}"
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 30, what="jobkit serve to answer /healthz")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    apps = Apps(tmp_path_factory.mktemp("serve"))
    with RedisServer() as redis:
        port = free_port()
        proc = apps.start("serve", serve_command(port), JOBKIT_REDIS_URL=redis.url,
                          JOBKIT_API_TOKEN=ADMIN, JOBKIT_API_READ_TOKEN=READ)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(apps, proc, base)
            jobkit.configure(redis_url=redis.url, lease=LEASE, heartbeat=HEARTBEAT)
            yield Served(redis, base, apps, jobkit.get_store())
        finally:
            apps.stop()


@pytest.fixture
def fleet(served: Served) -> Served:
    """The module's server, jobkit configured on its Redis for this test."""
    jobkit.configure(redis_url=served.redis.url, lease=LEASE, heartbeat=HEARTBEAT)
    served.store = jobkit.get_store()
    return served


def start(
    start_worker: StartWorker,
    fleet: Served,
    queues: str = "default",
    extra_args: tuple[str, ...] = (),
    **kw: Any,
) -> Any:
    extra = ("-A", "tests.support.serve_jobs", *extra_args)
    return start_worker(queues=queues, url=fleet.redis.url, extra=extra, **kw)


def test_health_metrics_and_the_openapi_page(fleet: Served) -> None:
    anon = fleet.client()
    health = anon.get("/healthz")  # no token needed: it tells nothing of the jobs
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert anon.get("/docs").status_code == 200
    assert "/api/jobs/bulk" in anon.get("/openapi.json").json()["paths"]
    assert anon.get("/metrics").status_code == 401
    jobs.Add.dispatch(a=1, b=2)
    for path in ("/metrics", "/api/metrics"):
        scrape = fleet.client(READ).get(path)
        assert scrape.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
        ready = [s for s in families["jobkit_queue_jobs"].samples if s.labels["state"] == "ready"]
        assert any(s.labels["queue"] == "default" and s.value >= 1 for s in ready)


def _writes(job_id: str) -> list[tuple[str, Any]]:
    """Every write route, with a body that would be accepted."""
    add = {"name": "tests.support.jobs.Add", "params": {"a": 1, "b": 1}}
    return [
        ("/api/jobs", add),
        ("/api/jobs/tests.support.jobs.Add", {"a": 1, "b": 1}),
        ("/api/jobs/bulk", {"action": "cancel"}),
        (f"/api/jobs/{job_id}/cancel", None),
        (f"/api/jobs/{job_id}/retry", None),
        (f"/api/dead/{job_id}/retry", None),
        ("/api/queues/default/pause", None),
        ("/api/queues/default/resume", None),
        ("/api/queues/default/purge", None),
        (f"/api/schedules/{quote(SCHEDULE, safe='')}/run", None),
        (f"/api/schedules/{quote(SCHEDULE, safe='')}/pause", None),
        (f"/api/schedules/{quote(SCHEDULE, safe='')}/resume", None),
    ]


READS = ["/api/jobs", "/api/dead", "/api/queues", "/api/workers", "/api/schedules",
         "/api/audit", "/api/stats", "/api/metrics"]  # fmt: skip


def test_a_missing_or_wrong_token_is_401_and_the_read_token_403_writing_nothing(
    fleet: Served,
) -> None:
    waiting = jobs.Add.dispatch(a=1, b=1)
    before, audited = fleet.size(), len(fleet.audit())
    for token, code in ((None, 401), ("wrong-token-0123456789", 401), (READ, 403)):
        http = fleet.client(token)
        for path, body in _writes(waiting.id):
            response = http.post(path, json=body)
            assert response.status_code == code, (token, path, response.text)
            assert isinstance(response.json()["detail"], str)
        for path in READS if token is None or code == 401 else ():
            assert http.get(path).status_code == 401, path
        http.close()
    assert fleet.size() == before and len(fleet.audit()) == audited
    assert fleet.store.reads.get(waiting.id).status is Status.QUEUED  # type: ignore[union-attr]
    with fleet.client(READ) as reader:
        for path in READS:
            assert reader.get(path).status_code == 200, path
        assert reader.get(f"/api/jobs/{waiting.id}").json()["status"] == "queued"
    with fleet.client() as anon:  # a bearer in another scheme is no token
        said = anon.get("/api/jobs", headers={"authorization": f"Basic {ADMIN}"})
        assert said.status_code == 401 and said.headers["www-authenticate"] == "Bearer"


def test_every_route_with_the_admin_token_and_each_write_audited(
    fleet: Served, start_worker: StartWorker
) -> None:
    admin = fleet.client(ADMIN)
    made = admin.post("/api/jobs", json={"name": "tests.support.jobs.Add",
                                         "params": {"a": 2, "b": 3},
                                         "priority": 5, "job_id": "sum-1"})  # fmt: skip
    assert made.status_code == 202 and made.json() == {"id": "default:sum-1", "status": "queued"}
    later = admin.post("/api/jobs", json={"name": "tests.support.jobs.Add",
                                          "params": {"a": 1, "b": 1}, "delay": 600})  # fmt: skip
    assert later.json()["status"] == "scheduled"
    at = admin.post("/api/jobs", json={"name": "tests.support.jobs.Add", "params": {"a": 1, "b": 1},
                                       "at": "2099-01-01T00:00:00Z"})  # fmt: skip
    assert at.json()["status"] == "scheduled"
    named = admin.post("/api/jobs/tests.support.serve_jobs.Doomed", json={"n": 7})
    assert named.status_code == 202
    dead_id = named.json()["id"]
    worker = start(start_worker, fleet, "default,bulkq,nightly")
    wait_until(lambda: fleet.store.reads.get(dead_id).status is Status.DEAD, 20)  # type: ignore[union-attr]
    wait_until(lambda: admin.get("/api/jobs/default:sum-1").json()["status"] == "succeeded", 20)

    one = admin.get("/api/jobs/default:sum-1", params={"history": 1}).json()
    assert one["result"] == 5 and one["priority"] == 5
    assert [e["to"] for e in one["history"]] == ["queued", "running", "succeeded"]
    page = admin.get("/api/jobs", params={"limit": 2}).json()
    assert len(page["jobs"]) == 2 and len(page["next_cursor"]) < 100
    rest = admin.get("/api/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert {j["id"] for j in rest["jobs"]}.isdisjoint(j["id"] for j in page["jobs"])
    assert [j["id"] for j in admin.get("/api/dead").json()] == [dead_id]

    retried = admin.post(f"/api/jobs/{dead_id}/retry")
    assert retried.status_code == 200 and retried.json()["id"] == dead_id
    wait_until(lambda: fleet.store.reads.get(dead_id).status is Status.DEAD, 20)  # type: ignore[union-attr]
    assert admin.post(f"/api/dead/{dead_id}/retry").status_code == 200
    wait_until(lambda: fleet.store.reads.get(dead_id).status is Status.DEAD, 20)  # type: ignore[union-attr]
    withdrawn = admin.post(f"/api/jobs/{later.json()['id']}/cancel")
    assert withdrawn.status_code == 200 and withdrawn.json()["cancel"] == "cancelled"

    queues = {q["queue"]: q for q in admin.get("/api/queues").json()}
    assert {"default", "bulkq"} <= set(queues) and queues["default"]["paused"] is False
    assert admin.post("/api/queues/default/pause").json() == {
        "queue": "default", "paused": True, "changed": True}  # fmt: skip
    assert {q["queue"]: q["paused"] for q in admin.get("/api/queues").json()}["default"] is True
    held = jobs.Add.dispatch(a=1, b=1)
    time.sleep(0.5)
    assert fleet.store.reads.get(held.id).status is Status.QUEUED  # type: ignore[union-attr]
    assert admin.post("/api/queues/default/purge").json() == {"queue": "default", "purged": 1}
    assert admin.post("/api/queues/default/resume").json()["changed"] is True

    live = admin.get("/api/workers").json()
    assert worker.name in [w["name"] for w in live]
    history = admin.get(f"/api/workers/{worker.name}").json()
    assert history["live"]["name"] == worker.name
    assert dead_id in {j["id"] for j in history["jobs"]}

    rows = admin.get("/api/schedules").json()
    assert [(r["schedule"], r["expr"], r["tz"], r["misfire"]) for r in rows] == [
        (SCHEDULE, "0 3 * * *", "UTC", "once")]  # fmt: skip
    key = quote(SCHEDULE, safe="")
    assert admin.post(f"/api/schedules/{key}/pause").json()["changed"] is True
    assert admin.get("/api/schedules").json()[0]["paused"] is True
    ran = admin.post(f"/api/schedules/{key}/run").json()
    assert ran["schedule"] == SCHEDULE
    ran_path = f"/api/jobs/{quote(ran['job_id'], safe='')}"  # a cron job's id holds '#'
    wait_until(lambda: admin.get(ran_path).json()["status"] == "succeeded", 20)
    row = admin.get("/api/schedules").json()[0]
    assert row["last_job"] == ran["job_id"]
    assert admin.post(f"/api/schedules/{key}/resume").json()["changed"] is True
    stats = admin.get("/api/stats").json()
    assert stats["fleet"]["dead"] == 1 and stats["fleet"]["totals"]["succeeded"] >= 2

    said = [(e["action"], e["target"], e["count"], e["role"]) for e in fleet.audit()][::-1]
    assert said == [
        ("retry", dead_id, 1, "admin"),
        ("retry", dead_id, 1, "admin"),
        ("cancel", later.json()["id"], 1, "admin"),
        ("pause queue", "default", 0, "admin"),
        ("purge queue", "default", 1, "admin"),
        ("resume queue", "default", 0, "admin"),
        ("pause schedule", SCHEDULE, 0, "admin"),
        ("run schedule now", SCHEDULE, 1, "admin"),
        ("resume schedule", SCHEDULE, 0, "admin"),
    ]
    entries = admin.get("/api/audit", params={"limit": 4}).json()
    assert entries["entries"][0]["action"] == "resume schedule"
    older = admin.get("/api/audit", params={"before": entries["next_before"]}).json()
    assert len(older["entries"]) == len(said) - 4 and older["next_before"] is None
    admin.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("GET", "/api/jobs/default:no-such-job", None, 404),
        ("GET", "/api/jobs/no-queue-in-this-id", None, 404),
        ("POST", "/api/jobs", {"name": "no.such.Job", "params": {}}, 404),
        ("POST", "/api/jobs/no.such.Job", {}, 404),
        ("POST", "/api/jobs", b'{"name": "tests.support.jobs.Add", "params": {"a": NaN}}', 422),
        ("POST", "/api/jobs", b"[1, 2]", 422),
        ("POST", "/api/jobs", b"{not json", 422),
        (
            "POST",
            "/api/jobs",
            {"name": "tests.support.jobs.Add", "params": {"a": "x", "b": 1}},
            422,
        ),
        ("POST", "/api/jobs", {"name": "tests.support.jobs.Add", "params": {}, "dealy": 5}, 422),
        (
            "POST",
            "/api/jobs",
            {"name": "tests.support.jobs.Add", "params": {"a": 1, "b": 1}, "delay": -1},
            422,
        ),
        (
            "POST",
            "/api/jobs",
            {"name": "tests.support.jobs.Add", "params": {"a": 1, "b": 1}, "queue": "bad queue!"},
            422,
        ),
        (
            "POST",
            "/api/jobs",
            {"name": "tests.support.jobs.Add", "params": {"a": 1, "b": 1}, "job_id": "x" * 500},
            422,
        ),
        (
            "POST",
            "/api/jobs",
            {"name": "tests.support.jobs.Add", "params": {"a": 1, "b": 1}, "priority": 10**9},
            422,
        ),
        ("POST", "/api/jobs/tests.support.jobs.Add", {"a": 1, "b": 1, "c": 1}, 422),
        ("POST", "/api/jobs/default:no-such-job/retry", None, 404),
        ("POST", "/api/jobs/default:no-such-job/cancel", None, 404),
        ("POST", "/api/dead/default:no-such-job/retry", None, 404),
        ("POST", "/api/queues/no-such-queue/pause", None, 404),
        ("POST", "/api/queues/bad%20queue/pause", None, 422),
        ("POST", "/api/schedules/no.such%23schedule/run", None, 404),
        ("POST", "/api/jobs/bulk", {"action": "explode"}, 422),
        ("POST", "/api/jobs/bulk", {"action": "purge", "status": "queued"}, 422),
        ("POST", "/api/jobs/bulk", {"action": "retry", "queue": "no-such-queue"}, 422),
        ("POST", "/api/jobs/bulk", {"action": "retry", "since": "yesterday"}, 422),
        ("POST", "/api/jobs/bulk", {"action": "retry", "extra": 1}, 422),
        ("GET", "/api/jobs/bulk/0123456789abcdef", None, 404),
        ("GET", "/api/jobs/bulk/..%2F..", None, 404),
        ("GET", "/api/jobs?status=bogus", None, 422),
        ("GET", "/api/jobs?limit=0", None, 422),
        ("GET", "/api/jobs?limit=many", None, 422),
        ("GET", "/api/jobs?cursor=garbage", None, 422),
        ("GET", "/api/jobs?queue=no-such-queue", None, 422),
        ("GET", "/api/jobs?since=yesterday", None, 422),
        ("GET", "/api/audit?before=not-an-id", None, 422),
        ("GET", "/api/audit?limit=5000", None, 422),
        ("GET", "/api/workers/nobody", None, 404),
        ("GET", "/api/no-such-route", None, 404),
        ("DELETE", "/api/jobs", None, 405),
    ],
)
def test_bad_input_is_a_4xx_with_a_json_body_and_writes_nothing(
    fleet: Served, method: str, path: str, body: Any, code: int
) -> None:
    jobs.Add.dispatch(a=1, b=1)  # the queue "default" exists
    before, audited = fleet.size(), len(fleet.audit())
    with fleet.client(ADMIN) as admin:
        if isinstance(body, bytes):
            response = admin.request(method, path, content=body)
        else:
            response = admin.request(method, path, json=body)
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["detail"]
    assert fleet.size() == before and len(fleet.audit()) == audited


def test_a_retry_or_cancel_the_job_state_refuses_is_409(fleet: Served) -> None:
    queued = jobs.Add.dispatch(a=1, b=1, queue="idle")
    withdrawn = jobs.Add.dispatch(a=1, b=1, queue="idle")
    assert withdrawn.cancel()
    with fleet.client(ADMIN) as admin:
        assert admin.post(f"/api/jobs/{queued.id}/retry").status_code == 409
        assert admin.post(f"/api/dead/{queued.id}/retry").status_code == 409
        assert admin.post(f"/api/jobs/{withdrawn.id}/cancel").status_code == 409
    assert fleet.store.reads.get(queued.id).status is Status.QUEUED  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_bulk_retry_of_ten_thousand_dead_jobs_after_a_dry_run(
    fleet: Served, start_worker: StartWorker
) -> None:
    n, queue = 10_000, "bulk10k"
    serve_jobs.Doomed.dispatch_many([{"n": i} for i in range(n)], queue=queue)
    worker = start(start_worker, fleet, queue, concurrency=2, extra_args=("--no-log-jobs",))

    def all_dead() -> bool:
        return fleet.store.reads.counts().by_queue[queue].dead == n

    wait_until(all_dead, 200, interval=0.5, what=f"{n} jobs dead")
    worker.kill()  # the revived jobs stay queued, to be counted
    admin = fleet.client(ADMIN)
    filters = {"action": "retry", "status": "dead", "queue": queue,
               "name": "tests.support.serve_jobs.Doomed"}  # fmt: skip
    before = fleet.size()
    dry = admin.post("/api/jobs/bulk", json={**filters, "dry_run": True})
    assert dry.status_code == 200 and dry.json()["count"] == n
    assert fleet.size() == before  # a dry run writes nothing
    started = admin.post("/api/jobs/bulk", json=filters)
    assert started.status_code == 202
    action = started.json()
    assert action["total"] == n and action["state"] == "running"
    seen: list[int] = []

    def finished() -> dict[str, Any] | None:
        now = admin.get(f"/api/jobs/bulk/{action['id']}").json()
        seen.append(now["done"])
        return now if now["state"] == "done" else None

    final = wait_until(finished, 120, interval=0.05, what="the bulk retry to end")
    assert final["done"] == n and final["failed"] == 0
    assert seen == sorted(seen)  # progress only grows
    assert fleet.store.reads.counts().by_queue[queue].dead == 0
    assert fleet.store.reads.queue_sizes([queue])[queue] == n
    said = [(e["action"], e["count"], e["role"]) for e in fleet.audit()[:2]]
    assert said == [("bulk retry done", n, "admin"), ("bulk retry", n, "admin")]
    purge = {"action": "purge", "queue": queue, "dry_run": True}
    assert admin.post("/api/jobs/bulk", json=purge).json()["count"] == 0  # none dead is left
    admin.close()


def test_worker_counts_move_within_a_second_of_a_jobs_end(
    fleet: Served, start_worker: StartWorker
) -> None:
    worker = start(start_worker, fleet, "counted", heartbeat=5.0, lease=15.0)
    reader = fleet.client(READ)

    def mine(workers: list[dict[str, Any]]) -> dict[str, Any]:
        return next(w for w in workers if w["name"] == worker.name)

    for expect_done, expect_failed, job in ((1, 0, jobs.Add), (1, 1, serve_jobs.Doomed)):
        if job is jobs.Add:
            handle = jobs.Add.dispatch(a=1, b=1, queue="counted")
        else:
            handle = serve_jobs.Doomed.dispatch(n=1, queue="counted")
        ended = wait_until(lambda h=handle: fleet.store.reads.get(h.id).finished_at, 20)  # type: ignore[union-attr]

        def counted(want: tuple[int, int] = (expect_done, expect_failed)) -> bool:
            w = mine(reader.get("/api/workers").json())
            return bool((w["done"], w["failed"]) == want)

        wait_until(counted, 3, interval=0.02, what="the counts to move")
        late = time.time() - ended.timestamp()
        assert late < 1.0, f"the counts moved {late:.2f}s after the job ended"
    w = mine(reader.get("/api/workers").json())
    assert (
        sum(c["done"] for c in w["children"]) == 1 and sum(c["failed"] for c in w["children"]) == 1
    )
    reader.close()


def test_healthz_says_503_when_redis_is_stopped(tmp_path: Path) -> None:
    apps = Apps(tmp_path)
    try:
        with RedisServer() as redis:
            port = free_port()
            proc = apps.start(
                "serve", serve_command(port), JOBKIT_REDIS_URL=redis.url,
                JOBKIT_SOCKET_TIMEOUT="3", JOBKIT_SOCKET_CONNECT_TIMEOUT="1",
            )  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            wait_healthy(apps, proc, base)
            redis.stop()
            health = httpx.get(f"{base}/healthz", timeout=30)
            assert health.status_code == 503, health.text
            assert health.json()["status"] == "unavailable"
            listing = httpx.get(f"{base}/api/jobs", timeout=30)  # no token set: open
            assert listing.status_code == 503 and "Redis" in listing.json()["detail"]
            assert proc.poll() is None  # the server stays up for Redis to come back
    finally:
        apps.stop()


def test_serve_binds_beyond_loopback_only_with_a_token_or_insecure(tmp_path: Path) -> None:
    apps = Apps(tmp_path)
    try:
        with RedisServer() as redis:
            refused = apps.start("open", serve_command(free_port(), "--host", "0.0.0.0"),
                                 JOBKIT_REDIS_URL=redis.url)  # fmt: skip
            assert refused.wait(30) == 2
            said = apps.log(refused)
            assert "refusing to serve on 0.0.0.0 with no token set" in said
            assert "Traceback" not in said
            for name, extra, env in (
                ("insecure", ("--insecure",), {}),
                ("token", (), {"JOBKIT_API_READ_TOKEN": READ}),
            ):
                port = free_port()
                proc = apps.start(name, serve_command(port, "--host", "0.0.0.0", *extra),
                                  JOBKIT_REDIS_URL=redis.url, **env)  # fmt: skip
                wait_healthy(apps, proc, f"http://127.0.0.1:{port}")
                apps.kill(proc)
            default = free_port()
            proc = apps.start("loopback", serve_command(default), JOBKIT_REDIS_URL=redis.url)
            wait_healthy(apps, proc, f"http://127.0.0.1:{default}")
            assert "http://127.0.0.1:" in apps.log(proc)
    finally:
        apps.stop()


def test_a_token_too_short_is_refused_and_never_echoed(tmp_path: Path) -> None:
    apps = Apps(tmp_path)
    try:
        proc = apps.start("short", serve_command(free_port()), JOBKIT_API_TOKEN="s3cret")
        assert proc.wait(30) == 2
        said = apps.log(proc)
        assert "JOBKIT_API_TOKEN" in said and "s3cret" not in said and "Traceback" not in said
    finally:
        apps.stop()


def test_the_audit_log_is_capped(fleet: Served) -> None:
    log = AuditLog(fleet.store, maxlen=100)
    for i in range(1000):
        log.append("admin", "pause queue", f"q{i}", 0)
    assert int(fleet.store.redis.xlen(fleet.store.keys.audit)) < 300  # about, as Redis trims
    assert log.entries(1)[0].target == "q999"
