"""The history archive's write path: `jobkit archiver` processes against real workers,
into SQLite and into a real PostgreSQL server the suite starts itself."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

import jobkit
from jobkit.archive import archiver as archiving
from jobkit.archive.rows import Rows
from jobkit.archive.schema import (
    SCHEMA_VERSION,
    attempts,
    ensure_schema,
    jobs,
    metadata,
    schema_version,
)
from jobkit.archive.writer import Writer, make_engine
from jobkit.backend.archive_feed import ArchiveFeed
from tests.conftest import REPO_ROOT, Env, StartWorker, clean_env, wait_until
from tests.support import jobs as test_jobs
from tests.support.postgres_server import DATABASE, PASSWORD, PostgresServer


class History:
    """One test's archive database: its URL, and how to stop and restart it."""

    def __init__(self, url: str, server: PostgresServer | None, path: Path | None) -> None:
        self.url = url
        self.server = server
        self.path = path
        self.engine = create_engine(url, pool_pre_ping=True)

    def count(self, table: Any, *where: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar())

    def rows(self, table: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(table)).mappings())

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """The database unusable for a while: PostgreSQL stopped; SQLite locked."""
        if self.server is not None:
            self.server.stop()
            try:
                yield
            finally:
                self.server.start()
            return
        assert self.path is not None
        lock = sqlite3.connect(self.path, timeout=30)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            lock.rollback()
            lock.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def history(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[History]:
    if request.param == "sqlite":
        path = tmp_path / "history.db"
        made = History(f"sqlite:///{path}", None, path)
        ensure_schema(made.engine)
        yield made
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    found = History(server.url, server, None)
    with found.engine.begin() as conn:
        metadata.drop_all(conn)
    ensure_schema(found.engine)
    yield found
    found.engine.dispose()


class Archiver:
    """One `jobkit archiver` process in its own process group, logging to a file."""

    def __init__(self, env: Env, history: History, log: Path, claim_idle: float) -> None:
        self.log = log
        environ = clean_env(
            JOBKIT_REDIS_URL=env.url,
            JOBKIT_HISTORY_URL=history.url,
            JOBKIT_ARCHIVE_CLAIM_IDLE=str(claim_idle),
            JOBKIT_ARCHIVE_BATCH="50",
        )
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "jobkit", "archiver"],
                cwd=REPO_ROOT,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, signum: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)
        self.popen.wait(10)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def archivers(env: Env, history: History, tmp_path: Path) -> Iterator[Any]:
    started: list[Archiver] = []

    def start(claim_idle: float = 30.0) -> Archiver:
        proc = Archiver(env, history, tmp_path / f"archiver{len(started)}.log", claim_idle)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def _all_done(history: History, ids: list[str], status: str = "succeeded") -> bool:
    return history.count(jobs, jobs.c.status == status, jobs.c.id.in_(ids)) == len(ids)


def test_jobs_run_by_workers_appear_with_their_fields(
    env: Env, history: History, archivers: Any, start_worker: StartWorker
) -> None:
    proc = archivers()
    start_worker(concurrency=2)
    added = [test_jobs.Add.dispatch(a=i, b=1).id for i in range(5)]
    flaky = test_jobs.Flaky.dispatch(times_key="archive-flaky", fail_times=2).id
    wait_until(lambda: _all_done(history, [*added, flaky]), 30, 0.2, proc.text())
    rows = {r["id"]: r for r in history.rows(jobs)}
    one = rows[added[3]]
    assert one["queue"] == "default" and one["job_class"] == "tests.support.jobs.Add"
    assert '"a":3' in one["params"].replace(" ", "") and one["result"] == "4"
    assert one["attempts"] == 1 and one["worker"] and one["duration_ms"] is not None
    assert one["created_at"] <= one["started_at"] <= one["finished_at"]
    retried = rows[flaky]
    assert retried["attempts"] == 3 and retried["error_type"] in (None, "ConnectionError")
    tries = sorted(
        (r for r in history.rows(attempts) if r["job_id"] == flaky), key=lambda r: r["attempt"]
    )
    outcomes = [(t["attempt"], t["outcome"]) for t in tries]
    assert outcomes == [(1, "retrying"), (2, "retrying"), (3, "succeeded")]
    # each failed attempt keeps its own error (its event carries it), though the job's
    # record holds only the last one
    for t in tries[:2]:
        assert t["error_type"] == "ConnectionError"
        assert t["error_message"] == f"upstream down (attempt {t['attempt']})"
    assert tries[2]["error_type"] is None and tries[2]["error_message"] is None


def test_two_archivers_share_the_stream_without_duplicates(
    env: Env, history: History, archivers: Any, start_worker: StartWorker
) -> None:
    """Two archivers on one stream archive every event once between them. Each is
    stopped (SIGSTOP) while the other archives a part, so both surely take some: which
    one takes what otherwise depends on who reads first."""
    ids = [test_jobs.Add.dispatch(a=0, b=0).id]  # the queue is known before they start
    first, second = archivers(), archivers()
    start_worker(concurrency=4)
    for proc in (first, second):  # both reading before the events come
        wait_until(lambda p=proc: "Redis events into" in p.text(), 20, 0.05, proc.text())
    wait_until(lambda: _all_done(history, ids), 30, 0.1)  # nothing held when one stops
    for paused in (second, first, None):
        if paused is not None:
            os.killpg(paused.popen.pid, signal.SIGSTOP)
        part = [h.id for h in test_jobs.Add.dispatch_many([{"a": i, "b": 1} for i in range(100)])]
        ids += part
        try:
            done = functools.partial(_all_done, history, list(ids))
            wait_until(done, 60, 0.1, first.text() + second.text())
        finally:
            if paused is not None:
                os.killpg(paused.popen.pid, signal.SIGCONT)
    assert history.count(jobs) == 301 and history.count(attempts) == 301
    wait_until(lambda: not ArchiveFeed(env.store, "t").lag()["default"].behind, 10)
    for proc in (first, second):
        proc.kill(signal.SIGTERM)
    archived = [int(p.text().rsplit("stopped: ", 1)[1].split()[0]) for p in (first, second)]
    # every event archived exactly once (created, running, succeeded), the work shared
    assert sum(archived) == 3 * 301, archived
    assert all(n >= 300 for n in archived), archived  # each archived a part alone


def test_an_archiver_killed_mid_batch_loses_nothing(
    env: Env, history: History, archivers: Any, start_worker: StartWorker
) -> None:
    start_worker(concurrency=2)
    ids = [h.id for h in test_jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(100)])]
    wait_until(lambda: all(env.status(i).value == "succeeded" for i in ids), 30, 0.2)
    # an archiver that read a batch and died before it wrote (its entries stay pending)
    feed = ArchiveFeed(env.store, "died")
    feed.ensure_groups(["default"])
    assert feed.read(["default"], 120)
    victim = archivers(claim_idle=1.0)
    time.sleep(0.3)
    victim.kill()  # SIGKILL, in whatever it was doing
    survivor = archivers(claim_idle=1.0)
    wait_until(lambda: _all_done(history, ids), 30, 0.2, survivor.text())
    assert history.count(attempts) == 100


def test_the_database_stopped_and_restarted_mid_run(
    env: Env, history: History, archivers: Any, start_worker: StartWorker
) -> None:
    proc = archivers()
    start_worker(concurrency=2)
    before = [h.id for h in test_jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(20)])]
    wait_until(lambda: _all_done(history, before), 30, 0.2, proc.text())
    with history.down():
        during = [h.id for h in test_jobs.Add.dispatch_many([{"a": i, "b": 1} for i in range(50)])]
        wait_until(lambda: all(env.status(i).value == "succeeded" for i in during), 30, 0.2)
        time.sleep(7)  # past SQLite's busy timeout: the archiver backs off
    wait_until(lambda: _all_done(history, before + during), 60, 0.2, proc.text())
    assert "history database unavailable" in proc.text()
    assert PASSWORD not in proc.text()


def test_an_archiver_started_before_its_database_waits_for_it(
    env: Env, history: History, archivers: Any
) -> None:
    """Started while the database is down (PostgreSQL stopped, SQLite locked), as in a
    compose file whose database starts last: the archiver backs off, then archives."""
    with history.down():
        proc = archivers()
        ids = [h.id for h in test_jobs.Add.dispatch_many([{"a": i, "b": 2} for i in range(10)])]
        wait_until(lambda: "history database unavailable" in proc.text(), 30, 0.2, proc.text())
        assert proc.popen.poll() is None
    wait_until(lambda: _all_done(history, ids, "queued"), 60, 0.2, proc.text())
    assert PASSWORD not in proc.text()


def test_archivers_started_together_on_a_new_database_make_the_schema_once(
    history: History,
) -> None:
    """Several archivers starting at once on an empty database all find the tables
    missing; each still comes up (PostgreSQL: they take turns; SQLite: the loser of the
    race finds what the winner made)."""
    with history.engine.begin() as conn:
        metadata.drop_all(conn)
    engines = [make_engine(history.url) for _ in range(4)]
    with ThreadPoolExecutor(len(engines)) as pool:
        versions = list(pool.map(ensure_schema, engines))
    assert versions == [SCHEMA_VERSION] * len(engines)
    assert history.count(schema_version) == 1
    for engine in engines:
        engine.dispose()


def test_retention_prunes(env: Env, history: History) -> None:
    engine = make_engine(history.url)
    ensure_schema(engine)
    old, new = datetime.now(timezone.utc) - timedelta(days=3), datetime.now(timezone.utc)
    rows = Rows()
    for name, at in (("default:old", old), ("default:new", new)):
        rows.jobs[name] = _job_row(name, at)
        rows.attempts[(name, 1)] = _attempt_row(name, at)
    assert Writer(engine).write(rows) == 0
    done = subprocess.run(
        [sys.executable, "-m", "jobkit", "archiver", "--prune"],
        cwd=REPO_ROOT,
        env=clean_env(
            JOBKIT_REDIS_URL=env.url, JOBKIT_HISTORY_URL=history.url, JOBKIT_HISTORY_RETENTION="1"
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pruned 1 jobs and 1 attempts" in done.stdout
    assert [r["id"] for r in history.rows(jobs)] == ["default:new"]
    assert [r["job_id"] for r in history.rows(attempts)] == ["default:new"]


def test_a_refused_row_is_skipped_and_the_rest_written(history: History) -> None:
    engine = make_engine(history.url)
    ensure_schema(engine)
    rows = Rows()
    now = datetime.now(timezone.utc)
    for name in ("default:a", "default:bad", "default:c"):
        rows.jobs[name] = _job_row(name, now)
    rows.jobs["default:bad"]["queue"] = None  # NOT NULL: refused by any database
    assert Writer(engine).write(rows) == 1
    assert sorted(r["id"] for r in history.rows(jobs)) == ["default:a", "default:c"]


def test_awkward_text_and_times_arrive_as_they_were(history: History) -> None:
    """Rows go to the databases in bulk (SQLite: executemany; PostgreSQL: COPY into a
    staging table): text that bulk formats escape, absent values and times come back
    exactly, and a second batch updates what the first wrote."""
    engine = make_engine(history.url)
    at = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=timezone.utc)
    awkward = 'tab\there, new\nline, back\\slash \\N "quoted" é 🎉'
    rows = Rows()
    rows.jobs["default:odd"] = {**_job_row("default:odd", at), "params": awkward, "result": None}
    rows.attempts[("default:odd", 1)] = {**_attempt_row("default:odd", at), "traceback": awkward}
    writer = Writer(engine)
    assert writer.write(rows) == 0
    (job,) = history.rows(jobs)
    assert (job["params"], job["result"], job["error_type"]) == (awkward, None, None)
    assert job["started_at"].replace(tzinfo=None) == at.replace(tzinfo=None)
    (attempt,) = history.rows(attempts)
    assert attempt["traceback"] == awkward
    later = at + timedelta(seconds=1)
    again = Rows()
    again.jobs["default:odd"] = {
        **_job_row("default:odd", later), "params": None, "status": "dead", "attempts": 2,
    }  # fmt: skip
    assert writer.write(again) == 0
    (job,) = history.rows(jobs)
    assert (job["status"], job["attempts"], job["params"]) == ("dead", 2, awkward)
    assert job["changed_at"].replace(tzinfo=None) == later.replace(tzinfo=None)


def test_a_role_without_temporary_tables_still_archives(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL batches go through a temporary staging table; a role refused TEMPORARY
    (a locked-down production role) writes them a statement per row instead, and says so."""
    admin = create_engine(postgres_server.url)
    with admin.begin() as conn:
        metadata.drop_all(conn)
    ensure_schema(admin)
    role, secret = "archiver_no_temp", "Role-pw_3"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'")
        conn.exec_driver_sql(f"REVOKE TEMPORARY ON DATABASE {DATABASE} FROM PUBLIC")
        conn.exec_driver_sql(
            f"GRANT SELECT, INSERT, UPDATE ON jobkit_jobs, jobkit_attempts TO {role}"
        )
    try:
        url = postgres_server.url.replace(f"postgres:{PASSWORD}@", f"{role}:{secret}@")
        engine = make_engine(url)
        at = datetime.now(timezone.utc)
        rows = Rows()
        for name in ("default:a", "default:b"):
            rows.jobs[name] = _job_row(name, at)
            rows.attempts[(name, 1)] = _attempt_row(name, at)
        with caplog.at_level("WARNING", logger="jobkit.archiver"):
            assert Writer(engine).write(rows) == 0
        assert "refuses this role temporary tables" in caplog.text
        assert secret not in caplog.text
        with admin.connect() as conn:
            assert conn.execute(select(func.count()).select_from(jobs)).scalar() == 2
            assert conn.execute(select(func.count()).select_from(attempts)).scalar() == 2
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"GRANT TEMPORARY ON DATABASE {DATABASE} TO PUBLIC")
            conn.exec_driver_sql(f"REVOKE ALL ON jobkit_jobs, jobkit_attempts FROM {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


def _job_row(job_id: str, at: datetime) -> dict[str, Any]:
    return {
        "id": job_id, "queue": "default", "job_class": "x.Y", "params": "{}",
        "status": "succeeded", "attempts": 1, "result": "1", "error_type": None,
        "error_message": None, "traceback": None, "reason": None, "worker": "w",
        "created_at": at, "started_at": at, "finished_at": at, "duration_ms": 1,
        "changed_at": at, "event_ms": int(at.timestamp() * 1000), "event_seq": 0,
    }  # fmt: skip


def _attempt_row(job_id: str, at: datetime) -> dict[str, Any]:
    return {
        "job_id": job_id, "attempt": 1, "queue": "default", "job_class": "x.Y",
        "worker": "w", "outcome": "succeeded", "reason": None, "error_type": None,
        "error_message": None, "traceback": None, "started_at": at, "finished_at": at,
        "duration_ms": 1,
    }  # fmt: skip


def _dispatch_each(n: int) -> None:
    """``n`` jobs, a dispatch() each: an event entry each (a dispatch_many() call writes
    one entry for its jobs), as the tests of the stream's reads and caps count them."""
    for i in range(n):
        test_jobs.Add.dispatch(a=i, b=0)


def test_events_about_to_be_trimmed_by_age_are_reported_loudly(
    env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Events waiting to be archived for most of JOBKIT_EVENTS_MAX_AGE are about to be
    trimmed by the workers: the archiver says so (an error), before they are lost."""
    settings = jobkit.configure(redis_url=env.url, events_max_age=1.0)
    writer = Writer(make_engine(f"sqlite:///{tmp_path / 'h.db'}"))
    ensure_schema(writer.engine)
    archiver = archiving.Archiver(jobkit.get_store(), writer, settings)
    archiver.queues = ["default"]
    archiver.feed.ensure_groups(["default"])
    _dispatch_each(5)
    assert archiver.feed.read(["default"], 1)  # one delivered, the others wait behind it
    lag = archiver.feed.lag(["default"])["default"]
    assert lag.waiting_since_ms is not None and lag.undelivered == 4
    caplog.set_level("ERROR", logger="jobkit.archiver")
    archiver._check_lag(force=True)
    assert "JOBKIT_EVENTS_MAX_AGE" not in caplog.text  # not yet
    time.sleep(0.9)
    archiver._check_lag(force=True)
    assert "near JOBKIT_EVENTS_MAX_AGE" in caplog.text


def test_a_batch_grows_while_the_archiver_is_behind_and_shrinks_once_caught_up(
    env: Env, tmp_path: Path
) -> None:
    """Behind, each read asks for twice as many events, up to 8 times JOBKIT_ARCHIVE_BATCH
    (bigger batches cost less per event); caught up, it asks for the setting again."""
    settings = jobkit.configure(redis_url=env.url, archive_batch=10)
    writer = Writer(make_engine(f"sqlite:///{tmp_path / 'h.db'}"))
    ensure_schema(writer.engine)
    archiver = archiving.Archiver(jobkit.get_store(), writer, settings)
    _dispatch_each(300)  # 300 events
    asked: list[int] = []
    read = archiver.feed.read

    def counted(queues: list[str], count: int) -> list[Any]:
        asked.append(count)
        return read(queues, count)

    archiver.feed.read = counted  # type: ignore[method-assign]
    while archiver.step():
        pass
    # doubling to 8 x 10; the sixth read finds 70 (caught up): back to the setting
    assert asked == [10, 20, 40, 80, 80, 80, 10]
    assert archiver.archived == 300
    with writer.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(jobs)).scalar() == 300


def test_an_event_with_bytes_that_are_not_text_is_archived_with_the_rest(
    env: Env, tmp_path: Path
) -> None:
    """The archiver reads the streams strictly decoded; an event holding bytes that are
    not UTF-8 (a corrupt record's text, say) is read again leniently, never stops it."""
    settings = jobkit.configure(redis_url=env.url)
    writer = Writer(make_engine(f"sqlite:///{tmp_path / 'h.db'}"))
    ensure_schema(writer.engine)
    archiver = archiving.Archiver(jobkit.get_store(), writer, settings)
    handles = test_jobs.Add.dispatch_many([{"a": i, "b": 0} for i in range(3)])
    raw = env.server.client(decode_responses=False)
    odd_event = {b"id": b"default:odd", b"from": b"", b"to": b"queued", b"reason": b"\xff\xfe!"}
    raw.xadd(env.keys.shard("default").events, odd_event)  # type: ignore[arg-type]
    test_jobs.Add.dispatch(a=9, b=9)
    while archiver.step():
        pass
    assert archiver.archived == 5
    with writer.engine.connect() as conn:
        ids = set(conn.execute(select(jobs.c.id)).scalars())
        odd = conn.execute(select(jobs.c.reason).where(jobs.c.id == "default:odd")).scalar()
    assert {h.id for h in handles} < ids and "default:odd" in ids and len(ids) == 5
    assert odd == "\ufffd\ufffd!"
    raw.close()


def test_a_busy_archiver_that_falls_past_the_cap_says_lost(
    env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archiver that never runs out of events (so never idles) still checks its lag
    while it can see the gap: events trimmed unread are reported LOST before it reads
    past them (after which Redis shows no gap)."""
    monkeypatch.setattr(archiving, "LAG_CHECK", 0.0)  # every round, not every 10 s
    settings = jobkit.configure(redis_url=env.url, events_maxlen=100, archive_batch=10)
    writer = Writer(make_engine(f"sqlite:///{tmp_path / 'h.db'}"))
    ensure_schema(writer.engine)
    archiver = archiving.Archiver(jobkit.get_store(), writer, settings)
    _dispatch_each(50)
    assert archiver.step()  # 10 read: behind from here on
    _dispatch_each(1000)  # trims unread
    caplog.set_level("ERROR", logger="jobkit.archiver")
    while archiver.step():
        pass
    assert "LOST" in caplog.text
    assert "raise JOBKIT_EVENTS_MAXLEN or add archivers" in caplog.text
    # caught up: nothing waits, and the loss is not reported again and again (Redis's
    # count of entries read, short since the trim, is set right)
    caplog.clear()
    archiver._check_lag(force=True)
    lag = archiver.feed.lag(["default"])["default"]
    assert (lag.behind, lag.lost, lag.recount) == (0, False, False)
    assert env.client.xinfo_groups(env.keys.shard("default").events)[0]["lag"] == 0
    test_jobs.Add.dispatch(a=1, b=1)
    lag = archiver.feed.lag(["default"])["default"]
    assert (lag.behind, lag.lost) == (1, False)
    archiver._check_lag(force=True)
    assert "LOST" not in caplog.text
