"""Search across jobs (``jobkit.ops.search``): every qualifier alone and together, free
words, params paths, ids and id prefixes, the live walk's budget, hostile text, bad
queries; and the archive, on SQLite and PostgreSQL, through a real ``jobkit archiver``
and through rows written into the real schema. Real redis-server and worker processes
throughout (tests/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine

import jobkit
from jobkit.archive.lookup import archived_record
from jobkit.archive.schema import ensure_schema, jobs
from jobkit.errors import InvalidQuery
from jobkit.models import Source, Status
from jobkit.ops import search as search_module
from jobkit.ops.search import SearchQuery, parse_search, search
from tests.conftest import HEARTBEAT, LEASE, REPO_ROOT, Env, StartWorker, clean_env, wait_until
from tests.support.postgres_server import reset_database
from tests.support.search_jobs import ReportDaily, SyncAccount

APP = ("-A", "tests.support.search_jobs")
SYNC = "tests.support.search_jobs.SyncAccount"
REPORT = "tests.support.search_jobs.ReportDaily"
# text that means something to SQL, LIKE, shells, HTML or JSON, and text it must not
# match if any of it were taken as more than text
HOSTILE = ["100%", "a_b", "it's \"quoted\"", "<script>alert(1)</script>", "Zürich\u2013東京🚀",
           "back\\slash", "50/50"]  # fmt: skip
DECOYS = ["1000", "axb", "its quoted", "script", "Zurich", "backslash", "50x50"]


def ids(env: Env, query: str, **options: Any) -> list[str]:
    return [job.id for job in search(env.store, query, **options).jobs]


def spaced(handle_factory: Any) -> Any:
    """A dispatch, then a pause: each job created in a millisecond of its own."""
    handle = handle_factory()
    time.sleep(0.003)
    return handle


def test_every_qualifier_alone_and_combined(env: Env, start_worker: StartWorker) -> None:
    nested = {"deep": {"id": 7}}
    a = spaced(lambda: SyncAccount.dispatch(account=42, region="emea", nested=nested, flag=True))
    bank = "Timeout talking to the bank"
    b = spaced(lambda: SyncAccount.dispatch(account="42", region="apac", fail=bank, kind="timeout"))
    refused = "connection refused by host"
    c = spaced(
        lambda: SyncAccount.dispatch(account=43, fail=refused, kind="connection", queue="billing")
    )
    d = spaced(lambda: ReportDaily.dispatch(day="monday", flag=False, note=None))
    e = spaced(lambda: ReportDaily.dispatch(day="tuesday", delay=600))
    f = spaced(lambda: SyncAccount.dispatch(account=44, queue="billing", delay=600))
    start_worker(queues="default,billing", extra=APP)
    finished = {a.id: Status.SUCCEEDED, b.id: Status.DEAD, c.id: Status.DEAD,
                d.id: Status.SUCCEEDED}  # fmt: skip
    wait_until(lambda: all(env.status(i) is s for i, s in finished.items()), 30)

    everything = search(env.store, "")
    assert [j.id for j in everything.jobs] == [f.id, e.id, d.id, c.id, b.id, a.id]
    assert {j.source for j in everything.jobs} == {Source.REDIS}
    assert (everything.looked_at, everything.live_total) == (6, 6)
    assert everything.archive == "none" and everything.complete
    assert everything.note == "looked at all 6 live jobs; there is no archive"

    assert set(ids(env, f"class:{SYNC}")) == {a.id, b.id, c.id, f.id}
    assert set(ids(env, "class:tests.support.search_jobs.Report*")) == {d.id, e.id}
    assert ids(env, "class:tests.support.search_jobs.Sync") == []  # exact unless it ends in *
    dead = search(env.store, "status:dead")  # the dead index alone
    assert {j.id for j in dead.jobs} == {b.id, c.id} and dead.looked_at == 2
    assert dead.note == "looked at every live job that could match (2 of 6); there is no archive"
    assert set(ids(env, "status:dead,scheduled")) == {b.id, c.id, e.id, f.id}
    assert set(ids(env, "STATUS:succeeded")) == {a.id, d.id}
    assert set(ids(env, "queue:billing")) == {c.id, f.id}
    assert ids(env, "queue:nosuchqueue") == []
    assert ids(env, "error:timeout") == [b.id]  # the type or the message, any case
    assert ids(env, "error:TimeoutError") == [b.id]
    assert ids(env, 'error:"connection refused"') == [c.id]
    assert ids(env, "error:ConnectionError queue:default") == []

    # free words: each in the params or the error
    assert ids(env, "refused") == [c.id]
    assert ids(env, "EMEA") == [a.id]
    assert ids(env, "42 apac") == [b.id]
    assert ids(env, "bank timeout") == [b.id]
    assert ids(env, "emea refused") == []

    # params paths: a number, a string, nested, booleans, null; = or :
    assert set(ids(env, "params.account=42")) == {a.id, b.id}
    assert ids(env, "params.account:44") == [f.id]
    assert ids(env, "params.nested.deep.id=7") == [a.id]
    assert ids(env, "params.nested.deep=7") == []
    assert ids(env, "params.flag=true") == [a.id]
    assert ids(env, "params.flag=false") == [d.id]
    assert ids(env, "params.note=null") == [d.id]
    assert ids(env, "params.region=emea params.account=42") == [a.id]

    combined = f"class:{SYNC} status:dead error:timeout params.account=42 queue:default bank"
    assert ids(env, combined) == [b.id]
    assert ids(env, f"{combined} params.region=emea") == []
    assert ids(env, "queue:billing status:scheduled params.account=44") == [f.id]

    # an id: read directly, matched against the rest; a prefix walks the queues it names
    direct = search(env.store, f"id:{a.id}")
    assert [j.id for j in direct.jobs] == [a.id] and direct.complete
    assert direct.note == "read the job by its id from Redis; there is no archive"
    assert ids(env, f"id:{a.id} status:dead") == []
    assert ids(env, f"id:{a.id[:14]}") == [a.id]
    assert set(ids(env, "id:billing:")) == {c.id, f.id}
    assert set(ids(env, "id:bil")) == {c.id, f.id}
    narrowed = search(env.store, "id:billing: params.account=43")
    assert [j.id for j in narrowed.jobs] == [c.id] and narrowed.looked_at == 2
    assert ids(env, "id:default:nosuchjob") == []


def test_the_live_walk_is_bounded_and_says_so(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of jobs made in the same milliseconds (ties the walk must read past
    exactly once), then jobs across two queues: the walk takes the newest first."""
    older: list[str] = []
    for start in range(0, 300, 50):
        batch = [{"n": i} for i in range(start, start + 50)]
        older += [h.id for h in SyncAccount.dispatch_many(batch, delay=600)]
        time.sleep(0.005)
    newest = [spaced(lambda i=i: SyncAccount.dispatch(n=1000 + i, delay=600,
                                                      queue=("default", "billing")[i % 2])).id
              for i in range(10)]  # fmt: skip
    every = search(env.store, f"class:{SYNC}", limit=1000)
    assert sorted(j.id for j in every.jobs) == sorted(older + newest)
    assert every.complete and every.looked_at == 310

    ten = search(env.store, "", budget=10, limit=1000)
    assert [j.id for j in ten.jobs] == newest[::-1]
    assert not ten.complete and ten.looked_at == 10
    assert ten.note == "looked at the newest 10 of 310 live jobs; there is no archive"
    assert ids(env, "params.n=299", budget=60) != [] and ids(env, "params.n=0", budget=60) == []
    assert len(ids(env, "params.n=0")) == 1  # the whole budget reaches it

    monkeypatch.setattr(search_module, "LIVE_BUDGET", 100)
    bounded = search(env.store, "params.n=0")
    assert bounded.jobs == [] and not bounded.complete and bounded.looked_at == 100
    assert "the newest 100 of 310" in bounded.note

    stopped = search(env.store, "", limit=7)
    assert [j.id for j in stopped.jobs] == newest[:2:-1] and not stopped.complete
    assert stopped.note.startswith("stopped at 7 matches, after the newest 7 of 310 live jobs")


def test_hostile_text_finds_itself_and_nothing_else(env: Env, start_worker: StartWorker) -> None:
    made = {text: SyncAccount.dispatch(label=text, fail=text).id for text in HOSTILE + DECOYS}
    start_worker(extra=APP)
    wait_until(lambda: all(env.status(i) is Status.DEAD for i in made.values()), 30)
    for text in HOSTILE:
        quoted = shlex.quote(text)
        for query in (quoted, f"error:{quoted}", f"params.label={quoted}"):
            assert ids(env, query) == [made[text]], query
    assert ids(env, "'%'") == [made["100%"]] and ids(env, "_") == [made["a_b"]]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("foo:bar", "unknown qualifier foo:"),
        ("http://example.com", "unknown qualifier http:"),
        ("class:", "class: needs a value"),
        ("error:''", "error: needs a value"),
        ("class:*", "names no class"),
        ("status:bogus", "'bogus' is not a status"),
        ("status:dead,nope", "'nope' is not a status"),
        ("status:,", "names no status"),
        ("status:dead status:queued", "status: is given twice"),
        ("x" * 501, "at most 500 characters, not 501"),
        ('error:"open', "quote is not closed"),
        ("params.a=", "params.a needs a value"),
        ("params.a", "params.a needs a value"),
        ("params..a=1", "keys joined by dots"),
        ("params.'a\"b'=1", "cannot hold a double quote"),
        ("a\x00b", "NUL"),
    ],
)
def test_bad_queries_are_clear_errors(text: str, says: str) -> None:
    with pytest.raises(InvalidQuery) as raised:
        parse_search(text)
    assert says in str(raised.value)


def test_parsing_quotes_and_every_part() -> None:
    text = ("class:app.Sync* status:dead,retrying queue:q error:\"connection refused\" "
            "params.a.b=42 params.c:'x y' id:q:1 hello \"a:b\" 'it''s'")  # fmt: skip
    assert parse_search(text) == SearchQuery(
        words=("hello", "a:b", "its"),
        job_class="app.Sync*",
        statuses=frozenset({Status.DEAD, Status.RETRYING}),
        queue="q",
        error="connection refused",
        params=(("a.b", "42"), ("c", "x y")),
        job_id="q:1",
    )
    assert parse_search("  ") == SearchQuery()


def test_a_limit_out_of_range_is_refused(env: Env) -> None:
    for limit in (0, 1001):
        with pytest.raises(InvalidQuery, match="limit"):
            search(env.store, "", limit=limit)


# -- the archive ------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def archive(request: pytest.FixtureRequest, env: Env, tmp_path: Path) -> Iterator[str]:
    """An empty archive (its schema made), jobkit configured to read it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'history.db'}"
    else:
        url = request.getfixturevalue("postgres_server").url
    if request.param == "postgresql":
        reset_database(url)  # also what other tests made on jobkit's tables (views)
    engine = create_engine(url)
    ensure_schema(engine)
    engine.dispose()
    jobkit.configure(redis_url=env.url, lease=LEASE, heartbeat=HEARTBEAT, history_url=url)
    yield url
    jobkit.configure(redis_url=env.url, lease=LEASE, heartbeat=HEARTBEAT)


@contextlib.contextmanager
def archiver(env: Env, url: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A ``jobkit archiver`` process, killed (its whole group) on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobkit", "archiver", "--redis-url", env.url],
            cwd=REPO_ROOT, env=clean_env(JOBKIT_HISTORY_URL=url), stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_the_archive_is_searched_and_redis_wins(
    env: Env, archive: str, start_worker: StartWorker, tmp_path: Path
) -> None:
    start_worker(extra=APP, environ={"JOBKIT_RESULT_TTL": "1"})
    log = tmp_path / "archiver.log"
    with archiver(env, archive, log) as proc:
        gone = spaced(lambda: SyncAccount.dispatch(account=42, region="emea"))
        kept = spaced(lambda: SyncAccount.dispatch(account=42, delay=600))
        key = env.keys.shard("default").job(gone.id)
        wait_until(lambda: not env.client.exists(key), 20, what="the record to expire")

        def archived() -> bool:
            done = archived_record(gone.id)
            return (
                done is not None
                and done.status is Status.SUCCEEDED
                and (archived_record(kept.id) is not None)
            )

        wait_until(archived, 30, what="the jobs to be archived")
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)

    both = search(env.store, "params.account=42")
    assert [(j.id, j.source) for j in both.jobs] == [(kept.id, Source.REDIS),
                                                     (gone.id, Source.ARCHIVE)]  # fmt: skip
    assert both.archive == "searched" and both.note.endswith("; the archive was searched")
    assert both.complete
    only = search(env.store, f"class:{SYNC} emea status:succeeded")
    assert [(j.id, j.source) for j in only.jobs] == [(gone.id, Source.ARCHIVE)]
    assert only.jobs[0].params_json and only.jobs[0].finished_at is not None
    direct = search(env.store, f"id:{gone.id}")
    assert [(j.id, j.source) for j in direct.jobs] == [(gone.id, Source.ARCHIVE)]
    assert direct.note == "read the job by its id from the archive; the archive was searched"
    assert ids(env, f"id:{gone.id[:-5]}") == [gone.id]
    assert ids(env, f"id:{gone.id} status:dead") == []

    # the archive still says scheduled; Redis, which wins, says cancelled
    assert kept.cancel()
    assert ids(env, "status:scheduled") == []
    cancelled = search(env.store, "status:cancelled params.account=42")
    assert [(j.id, j.source) for j in cancelled.jobs] == [(kept.id, Source.REDIS)]
    assert ids(env, f"params.account=42 id:{kept.id[:12]}") == [kept.id]


T0 = datetime(2026, 2, 1, tzinfo=timezone.utc)


def write_rows(url: str, rows: list[dict[str, Any]]) -> None:
    """Job rows straight into the archive's table, every column the schema requires."""
    full = []
    for i, row in enumerate(rows):
        at = T0 + timedelta(minutes=i)
        full.append({"queue": row["id"].split(":")[0], "job_class": SYNC, "params": "{}",
                     "status": "succeeded", "attempts": 1, "result": None,
                     "error_type": None, "error_message": None, "traceback": None,
                     "reason": None, "worker": None, "created_at": at, "started_at": None,
                     "finished_at": None, "duration_ms": None, "changed_at": at,
                     "event_ms": 0, "event_seq": 0, **row})  # fmt: skip
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(jobs.insert(), full)
    engine.dispose()


def test_every_filter_in_sql(env: Env, archive: str) -> None:
    """Rows only the archive holds (Redis is empty): what the SQL of each filter finds,
    on each database, hostile text included."""
    rows = [
        {"id": "default:num", "params": '{"account":42,"nested":{"deep":{"id":7}},'
                                        '"flag":true,"note":null,"label":"plain"}'},
        {"id": "default:str", "params": '{"account":"42","flag":"true"}', "status": "dead",
         "error_type": "TimeoutError", "error_message": "Timeout talking to the bank"},
        {"id": "billing:other", "params": '{"account":43,"flag":false}', "status": "failed",
         "job_class": REPORT, "error_type": "ConnectionError",
         "error_message": "connection refused"},
        {"id": "default:a_b", "params": '{"float":1.5,"list":[1,2]}'},
        {"id": "default:axb", "params": None, "job_class": "tests.support.search_jobs.Report_x"},
    ]  # fmt: skip
    texts = HOSTILE + DECOYS
    rows += [{"id": f"default:h{i}", "params": orjson.dumps({"label": t}).decode(),
              "status": "dead", "error_type": "ValueError", "error_message": t}
             for i, t in enumerate(texts)]  # fmt: skip
    write_rows(archive, rows)

    def found(query: str) -> set[str]:
        result = search(env.store, query, limit=100)
        assert result.archive == "searched" and {j.source for j in result.jobs} <= {Source.ARCHIVE}
        return {j.id for j in result.jobs}

    assert found("params.account=42") == {"default:num", "default:str"}
    assert found("params.nested.deep.id=7") == {"default:num"}
    assert found("params.flag=true") == {"default:num", "default:str"}
    assert found("params.flag=false") == {"billing:other"}
    assert found("params.note=null") == {"default:num"}
    assert found("params.float=1.5") == {"default:a_b"}
    assert found("params.nested=7") == found("params.missing=1") == set()
    assert found("status:retrying") == {"billing:other"}  # archived as "failed"
    assert found(f"class:{SYNC}") >= {"default:num", "default:str", "default:a_b"}
    assert found("class:tests.support.search_jobs.Report*") == {"billing:other", "default:axb"}
    assert found("class:tests.support.search_jobs.Report_*") == {"default:axb"}
    assert found("class:Tests.search_jobs.Report*") == set()  # a prefix is exact in case
    assert found("error:timeout") == {"default:str"}
    assert found("refused") == {"billing:other"}
    assert found("bank TIMEOUT") == {"default:str"}
    assert found("queue:billing") == {"billing:other"}
    assert found("id:default:a_") == {"default:a_b"}
    assert found("id:billing:other") == {"billing:other"}
    assert found("id:billing") == {"billing:other"}
    assert found(f"class:{SYNC} status:dead error:timeout params.account=42 bank") == {
        "default:str"
    }
    for i, text in enumerate(HOSTILE):
        quoted = shlex.quote(text)
        for query in (quoted, f"error:{quoted}", f"params.label={quoted}"):
            assert found(query) == {f"default:h{i}"}, query
    newest = search(env.store, "status:dead", limit=3)
    assert [j.id for j in newest.jobs] == [f"default:h{len(texts) - 1 - i}" for i in range(3)]


def test_an_archive_that_cannot_be_read_is_said_so(env: Env) -> None:
    handle = SyncAccount.dispatch(account=1, delay=600)
    url = "postgresql+psycopg://u:s3cretpw@127.0.0.1:1/history"
    jobkit.configure(redis_url=env.url, history_url=url)
    try:
        result = search(env.store, "params.account=1")
        assert [j.id for j in result.jobs] == [handle.id]
        assert result.archive == "unavailable" and "could not be read" in result.note
        assert "127.0.0.1" in result.note and "s3cretpw" not in result.note
        assert search(env.store, f"id:{handle.id}").jobs[0].source is Source.REDIS
    finally:
        jobkit.configure(redis_url=env.url, lease=LEASE, heartbeat=HEARTBEAT)
