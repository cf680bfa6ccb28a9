"""The read side of the history archive: a job past its Redis TTL is still reported by
``get_job``, ``jobkit job`` and ``GET /jobs/{id}``, from the archive and saying so;
``jobkit jobs --archived`` and ``GET /jobs?archived=1`` list it with the live listing's
filters and cursor; no archive means unknown, as before, without creating a file; the
archive's lag in ``jobkit info``. SQLite here (tests/e2e/test_archive*.py cover PostgreSQL)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

import jobkit
import jobkit.http
from jobkit.archive.lookup import archived_record
from jobkit.archive.schema import ensure_schema, jobs
from jobkit.errors import HistoryUnavailable, InvalidQuery
from jobkit.models import Source, Status
from jobkit.ops.jobs import archived_page
from jobkit.ops.listing import JobQuery
from tests.conftest import HEARTBEAT, LEASE, REPO_ROOT, Env, StartWorker, clean_env, wait_until
from tests.integration.test_listing import pages_of
from tests.support import jobs as test_jobs


@pytest.fixture
def history(env: Env, tmp_path: Path) -> Iterator[str]:
    """A SQLite history URL in the test's directory, jobkit configured with it."""
    url = f"sqlite:///{tmp_path / 'history.db'}"
    jobkit.configure(redis_url=env.url, lease=LEASE, heartbeat=HEARTBEAT, history_url=url)
    yield url
    jobkit.configure(redis_url=env.url, lease=LEASE, heartbeat=HEARTBEAT)


def cli(*args: str, env: Env, history: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobkit", *args, "--redis-url", env.url],
        cwd=REPO_ROOT,
        env=clean_env(COLUMNS="200", JOBKIT_HISTORY_URL=history),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def api() -> TestClient:
    app = FastAPI()
    app.include_router(jobkit.http.router())
    return TestClient(app)


def test_a_job_past_its_redis_ttl_is_still_reported_by_get_job(
    env: Env, history: str, start_worker: StartWorker, tmp_path: Path
) -> None:
    start_worker(environ={"JOBKIT_RESULT_TTL": "1"})
    archiver = subprocess.Popen(
        [sys.executable, "-m", "jobkit", "archiver", "--redis-url", env.url],
        cwd=REPO_ROOT,
        env=clean_env(JOBKIT_HISTORY_URL=history),
        stdout=(tmp_path / "archiver.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        handle = test_jobs.Add.dispatch(a=2, b=3)
        assert handle.result(timeout=20) == 5
        assert handle.source is Source.REDIS
        key = env.keys.shard("default").job(handle.id)
        wait_until(lambda: not env.client.exists(key), 10, what="the record to expire")

        def archived() -> bool:
            rec = archived_record(handle.id)
            return rec is not None and rec.status is Status.SUCCEEDED

        wait_until(archived, 20, what="the job to be archived")
    finally:
        archiver.send_signal(signal.SIGTERM)
        archiver.wait(10)

    found = jobkit.get_job(handle.id)
    assert found.status is Status.SUCCEEDED and found.source == "archive"
    assert found.result(timeout=1) == 5
    assert found.attempts == 1 and found.record is not None
    assert found.record.name == "tests.support.jobs.Add" and found.record.finished_at is not None

    shown = cli("job", handle.id, "--json", env=env, history=history)
    assert shown.returncode == 0, shown.stderr
    data = orjson.loads(shown.stdout)
    assert (data["status"], data["source"], data["result"]) == ("succeeded", "archive", 5)
    assert data["params"] == {"a": 2, "b": 3}
    assert [a["outcome"] for a in data["attempts_archived"]] == ["succeeded"]
    table = cli("job", handle.id, env=env, history=history)
    assert table.returncode == 0, table.stderr
    assert "from the history archive" in table.stdout and handle.id in table.stdout

    view = api().get(f"/jobs/{handle.id}")
    assert view.status_code == 200
    assert view.json()["source"] == "archive" and view.json()["result"] == 5
    assert api().post(f"/jobs/{handle.id}/cancel").status_code == 409

    info = cli("info", "--json", env=env, history=history)
    assert info.returncode == 0, info.stderr
    overview = orjson.loads(info.stdout)
    [default] = overview["queues"]
    assert default["queue"] == "default" and default["archive_lag"] == 0
    assert overview["fleet"]["archive_lag"] == 0
    assert "archive lag" in cli("info", env=env, history=history).stdout
    assert api().get("/stats").json()["queues"][0]["archive_lag"] == 0


def test_without_an_archive_an_unknown_job_stays_unknown_and_no_file_is_made(
    env: Env, tmp_path: Path
) -> None:
    missing = tmp_path / "none.db"
    jobkit.configure(redis_url=env.url, history_url=f"sqlite:///{missing}")
    assert jobkit.get_job("default:nosuchjob").status is Status.UNKNOWN
    assert archived_page(JobQuery()).jobs == []
    jobkit.configure(redis_url=env.url, data_dir=tmp_path / "data")  # the default file
    handle = jobkit.get_job("default:nosuchjob")
    assert handle.status is Status.UNKNOWN and handle.source is None
    assert not missing.exists() and not (tmp_path / "data").exists()
    with pytest.raises(jobkit.JobNotFound):
        handle.result(timeout=1)


def test_an_unreadable_archive_is_a_clear_error_without_the_password(env: Env) -> None:
    jobkit.configure(
        redis_url=env.url, history_url="postgresql+psycopg://u:s3cretpw@127.0.0.1:1/history"
    )
    with pytest.raises(HistoryUnavailable) as raised:
        jobkit.get_job("default:nosuchjob")
    assert "127.0.0.1" in str(raised.value) and "s3cretpw" not in str(raised.value)
    refused = api().get("/jobs", params={"archived": 1})
    assert refused.status_code == 503 and "s3cretpw" not in refused.text
    jobkit.configure(redis_url=env.url)


T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def archive_rows(url: str) -> list[dict[str, Any]]:
    """Seven archived jobs across two queues, classes and statuses, a minute apart, two
    of them changed in the same instant (the id breaks the tie)."""
    rows = []
    for i, (queue, cls, status) in enumerate(
        [
            ("default", "tests.support.jobs.Add", "succeeded"),
            ("default", "tests.support.jobs.Add", "dead"),
            ("images", "tests.support.jobs.Add", "succeeded"),
            ("default", "tests.support.jobs.Sleepy", "succeeded"),
            ("images", "tests.support.jobs.Sleepy", "cancelled"),
            ("default", "tests.support.jobs.Add", "succeeded"),
            ("default", "tests.support.jobs.Add", "succeeded"),
        ]
    ):
        at = T0 + timedelta(minutes=min(i, 5))  # the last two at the same time
        rows.append(
            {
                "id": f"{queue}:job{i}",
                "queue": queue,
                "job_class": cls,
                "params": "{}",
                "status": status,
                "attempts": 1,
                "result": "1" if status == "succeeded" else None,
                "created_at": at - timedelta(seconds=5),
                "finished_at": at,
                "changed_at": at,
                "event_ms": int(at.timestamp() * 1000),
                "event_seq": 0,
            }
        )
    engine = create_engine(url)
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(jobs.insert(), rows)
    engine.dispose()
    return rows


def every_page(query: JobQuery) -> list[list[str]]:
    return pages_of(archived_page, query)


def test_archived_listing_with_filters_and_a_cursor(env: Env, history: str) -> None:
    rows = archive_rows(history)
    newest = [r["id"] for r in sorted(rows, key=lambda r: (r["changed_at"], r["id"]), reverse=True)]
    assert [i for p in every_page(JobQuery(limit=2)) for i in p] == newest
    assert [len(p) for p in every_page(JobQuery(limit=3))] == [3, 3, 1]

    def listed(**kw: Any) -> list[str]:
        return [i for p in every_page(JobQuery(limit=2, **kw)) for i in p]

    succeeded = listed(statuses=frozenset({Status.SUCCEEDED}))
    assert succeeded == ["default:job6", "default:job5", "default:job3", "images:job2",
                         "default:job0"]  # fmt: skip
    assert listed(queues=("images",)) == ["images:job4", "images:job2"]
    assert listed(name="tests.support.jobs.Sleepy") == ["images:job4", "default:job3"]
    since = int((T0 + timedelta(minutes=3)).timestamp() * 1000)
    assert listed(since_ms=since) == newest[:4]
    both = listed(statuses=frozenset({Status.SUCCEEDED, Status.DEAD}), queues=("default",),
                  name="tests.support.jobs.Add", since_ms=since - 120_000)  # fmt: skip
    assert both == ["default:job6", "default:job5", "default:job1"]
    page = archived_page(JobQuery(limit=1))
    first = page.jobs[0]
    assert first.record.source is Source.ARCHIVE and first.record.result == 1
    assert first.at_ms == int((T0 + timedelta(minutes=5)).timestamp() * 1000)

    assert page.next_cursor is not None
    with pytest.raises(InvalidQuery, match="other filters"):
        archived_page(JobQuery(queues=("images",), cursor=page.next_cursor))
    live = jobkit.get_store()
    test_jobs.Add.dispatch(a=1, b=1)
    test_jobs.Add.dispatch(a=1, b=2)
    from jobkit.ops.listing import list_jobs

    live_cursor = list_jobs(live, JobQuery(limit=1)).next_cursor
    assert live_cursor is not None
    with pytest.raises(InvalidQuery, match="archived listing"):
        archived_page(JobQuery(limit=1, cursor=live_cursor))
    with pytest.raises(InvalidQuery):
        list_jobs(live, JobQuery(limit=1, cursor=page.next_cursor))


def test_jobs_archived_on_the_command_line(env: Env, history: str) -> None:
    archive_rows(history)
    args = ("jobs", "--archived", "--status", "succeeded", "--queue", "default", "--limit", "2")
    first = cli(*args, "--json", env=env, history=history)
    assert first.returncode == 0, first.stderr
    data = orjson.loads(first.stdout)
    assert [j["id"] for j in data["jobs"]] == ["default:job6", "default:job5"]
    assert {j["source"] for j in data["jobs"]} == {"archive"}
    rest = cli(*args, "--cursor", data["next_cursor"], "--json", env=env, history=history)
    assert rest.returncode == 0, rest.stderr
    more = orjson.loads(rest.stdout)
    assert [j["id"] for j in more["jobs"]] == ["default:job3", "default:job0"]
    assert more["next_cursor"] is None

    table = cli("jobs", "--archived", "--name", "tests.support.jobs.Sleepy", "--since",
                "2026-01-01T00:02:00", env=env, history=history)  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "history archive" in table.stdout
    assert "images:job4" in table.stdout and "default:job3" in table.stdout
    bad = cli("jobs", "--archived", "--cursor", "nonsense", env=env, history=history)
    assert bad.returncode == 2 and "not a cursor" in bad.stdout + bad.stderr


def test_the_http_listing_live_and_archived(env: Env, history: str) -> None:
    archive_rows(history)
    http = api()
    params: dict[str, Any] = {"archived": 1, "status": "succeeded,dead", "queue": "default",
                              "name": "tests.support.jobs.Add", "since": "2026-01-01T00:00:00",
                              "limit": 2}  # fmt: skip
    first = http.get("/jobs", params=params)
    assert first.status_code == 200, first.text
    assert [j["id"] for j in first.json()["jobs"]] == ["default:job6", "default:job5"]
    cursor = first.json()["next_cursor"]
    rest = http.get("/jobs", params={**params, "cursor": cursor}).json()
    assert [j["id"] for j in rest["jobs"]] == ["default:job1", "default:job0"]
    assert rest["next_cursor"] is None
    other = http.get("/jobs", params={**params, "queue": "images", "cursor": cursor})
    assert other.status_code == 422 and "other filters" in other.text
    assert http.get("/jobs", params={"archived": 1, "status": "bogus"}).status_code == 422
    assert http.get("/jobs", params={"archived": 1, "limit": 0}).status_code == 422

    queued = test_jobs.Add.dispatch(a=1, b=1, delay=600)
    live = http.get("/jobs", params={"status": "scheduled", "since": "1h"})
    assert live.status_code == 200, live.text
    assert [j["id"] for j in live.json()["jobs"]] == [queued.id]
    assert live.json()["jobs"][0]["source"] == "redis"
    assert http.get("/jobs", params={"queue": "nosuchqueue"}).status_code == 422
