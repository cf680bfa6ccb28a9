"""`jobkit jobs`: every state, newest first, from the indexes; filters; the cursor is short
and stays stable while jobs move (on one node, and on the cluster in test_cluster.py);
bad values are clear errors; the finished index is trimmed."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence

import orjson
import pytest

from jobkit.backend.batch import trim_finished
from jobkit.backend.events import Events
from jobkit.backend.store import Store
from jobkit.errors import InvalidQuery
from jobkit.models import Status
from jobkit.ops.listing import JobPage, JobQuery, list_jobs
from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import jobs


def pages_of(read: Callable[[JobQuery], JobPage], query: JobQuery) -> list[list[str]]:
    """The ids of every page ``read`` gives for ``query``, following its cursor."""
    pages, cursor = [], None
    while True:
        page = read(JobQuery(**{**query.__dict__, "cursor": cursor}))
        pages.append([item.record.id for item in page.jobs])
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 1000, "the cursor does not advance"


def all_pages(store: Store, query: JobQuery) -> list[list[str]]:
    return pages_of(lambda q: list_jobs(store, q), query)


def test_every_state_newest_first_with_filters(env: Env, start_worker: StartWorker) -> None:
    done = [jobs.Add.dispatch(a=1, b=i) for i in range(3)]
    dead = jobs.NeedsFlag.dispatch(flag="never")
    start_worker(concurrency=2)
    for h in done:
        assert h.result(timeout=20) == 1 + done.index(h)
    wait_until(lambda: env.status(dead.id) is Status.DEAD, 20)
    running = jobs.Sleepy.dispatch(marker="m", seconds=30)
    wait_until(lambda: env.status(running.id) is Status.RUNNING, 20)
    later = jobs.Add.dispatch(a=1, b=1, delay=600)
    waiting = jobs.Add.dispatch(a=1, b=1, queue="idle")
    time.sleep(0.01)  # created after the other, not in the same ms
    withdrawn = jobs.Add.dispatch(a=1, b=1, queue="idle")
    assert withdrawn.cancel()

    page = list_jobs(env.store, JobQuery(limit=50))
    ids = [item.record.id for item in page.jobs]
    expected = {*(h.id for h in done), dead.id, running.id, later.id, waiting.id, withdrawn.id}
    assert sorted(ids) == sorted(expected) and page.next_cursor is None
    times = [item.at_ms for item in page.jobs]
    assert times == sorted(times, reverse=True)
    assert ids[0] == withdrawn.id  # every status: newest created first
    status = {item.record.id: item.record.status for item in page.jobs}
    assert status[withdrawn.id] is Status.CANCELLED and status[waiting.id] is Status.QUEUED

    def listed(**kw: object) -> list[str]:
        return [i for p in all_pages(env.store, JobQuery(**kw)) for i in p]  # type: ignore[arg-type]

    succeeded = listed(statuses=frozenset({Status.SUCCEEDED}))
    assert sorted(succeeded) == sorted(h.id for h in done)  # (one batch may end in one ms)
    assert listed(statuses=frozenset({Status.DEAD, Status.RUNNING})) == [running.id, dead.id]
    assert sorted(listed(queues=("idle",))) == sorted([waiting.id, withdrawn.id])
    assert listed(name="tests.support.jobs.NeedsFlag") == [dead.id]
    since = page.jobs[-1].at_ms + 1  # all but the oldest
    newer = [item.record.id for item in page.jobs if item.at_ms >= since]
    assert listed(since_ms=since) == newer and 0 < len(newer) < len(expected)
    assert [len(p) for p in all_pages(env.store, JobQuery(limit=3))] == [3, 3, 2]

    shown = run_cli("jobs", "--status", "queued,cancelled", "--json", url=env.url)
    assert shown.returncode == 0, shown.stderr
    data = orjson.loads(shown.stdout)
    assert data["next_cursor"] is None
    assert [j["id"] for j in data["jobs"]] == [withdrawn.id, waiting.id]
    first = data["jobs"][0]
    assert first["status"] == "cancelled" and first["attempts"] == 0 and first["queue"] == "idle"
    assert first["params"] == {"a": 1, "b": 1} and isinstance(first["at"], str)


def test_the_table_keeps_ids_whole_and_pages_by_cursor(env: Env) -> None:
    long_ids = [f"{'k' * 70}-{i}" for i in range(3)]
    for key in long_ids:
        jobs.Add.dispatch(a=1, b=1, job_id=key)
        time.sleep(0.002)  # created in that order, each in a millisecond of its own
    out = run_cli("jobs", "--limit", "2", url=env.url)
    assert out.returncode == 0, out.stderr
    assert f"default:{long_ids[2]}" in out.stdout and f"default:{long_ids[1]}" in out.stdout
    cursor = out.stdout.split("--cursor ", 1)[1].split()[0]
    rest = run_cli("jobs", "--limit", "2", "--cursor", cursor, "--json", url=env.url)
    assert [j["id"] for j in orjson.loads(rest.stdout)["jobs"]] == [f"default:{long_ids[0]}"]
    assert run_cli("jobs", "--since", "10m", url=env.url).returncode == 0
    assert run_cli("jobs", "--since", "2020-01-01T00:00:00", url=env.url).returncode == 0


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--status", "bogus"), "not a status"),
        (("--status", ","), "not a status"),
        (("--limit", "0"), "from 1 to 1000"),
        (("--limit", "5000"), "from 1 to 1000"),
        (("--limit", "many"), "--limit"),
        (("--since", "yesterday"), "neither an ISO time"),
        (("--cursor", "garbage!"), "not a cursor"),
        (("--queue", "nope"), "no such queue"),
    ],
)
def test_bad_values_are_clear_errors(env: Env, args: Sequence[str], said: str) -> None:
    jobs.Add.dispatch(a=1, b=1)
    out = run_cli("jobs", *args, url=env.url)
    assert out.returncode == 2, out
    assert said in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_a_cursor_belongs_to_its_filters(env: Env) -> None:
    for i in range(3):
        jobs.Add.dispatch(a=1, b=i)
    page = list_jobs(env.store, JobQuery(limit=1))
    assert page.next_cursor
    with pytest.raises(InvalidQuery, match="other filters"):
        list_jobs(env.store, JobQuery(name="tests.support.jobs.Add", cursor=page.next_cursor))


def test_finished_entries_older_than_the_records_are_trimmed(env: Env) -> None:
    kept = jobs.Add.dispatch(a=1, b=1)
    assert kept.cancel()
    shard = env.keys.shard("default")
    env.client.zadd(shard.finished, {"default:long-gone": 1000})
    trim_finished(env.store, ["default"], 3600, env.store.reads.now_ms())
    assert env.client.zrange(shard.finished, 0, -1) == [kept.id]


def check_paging_while_jobs_move(store: Store, queues: Sequence[str]) -> None:
    """Page through every job (7 a page) while a worker runs the jobs of queues[1:] and a
    producer dispatches and cancels: every job that existed when the first page was read
    is listed exactly once, those that moved meanwhile (queued -> running -> succeeded,
    queued -> cancelled) as well as those that stayed put. A worker must serve
    queues[1:] already."""
    idle, busy = queues[0], list(queues[1:])
    made: list[str] = []
    for i in range(40):
        made.append(jobs.Add.dispatch(a=1, b=i, queue=idle, priority=i % 3).id)
        made.append(jobs.Add.dispatch(a=1, b=i, queue=busy[i % len(busy)], delay=600).id)
        made.append(jobs.Add.dispatch(a=1, b=i, queue=busy[i % len(busy)]).id)
    cancelled = [jobs.Add.dispatch(a=1, b=i, queue=idle) for i in range(10)]
    for h in cancelled:
        assert h.cancel()
    made += [h.id for h in cancelled]
    wait_until(lambda: store.reads.counts().totals.get("succeeded", 0) >= 40, 30)
    # queued when the first page is read, run by the worker while the pages are read
    made += [
        jobs.Sleepy.dispatch(marker="m", seconds=0.05, queue=busy[i % len(busy)]).id
        for i in range(30)
    ]

    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            q = busy[i % len(busy)]
            jobs.Sleepy.dispatch(marker="m", seconds=0.05, queue=q)
            fresh = jobs.Add.dispatch(a=1, b=i, queue=idle)
            if i % 2:
                fresh.cancel()
            if i % 5 == 0:  # a queued job of the idle queue withdrawn while pages are read
                jobkit_cancel(store, made[3 * (i // 5 % 40)])
            i += 1
            time.sleep(0.01)

    checkpoint = store.reads.now_ms()
    before = {r.id: r.status for r in store.reads.get_many(made) if r is not None}
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        pages = []
        cursor = None
        while True:
            page = list_jobs(store, JobQuery(limit=7, cursor=cursor))
            pages.append([item.record.id for item in page.jobs])
            assert cursor is None or len(cursor) < 100, cursor
            cursor = page.next_cursor
            if cursor is None:
                break
            time.sleep(0.05)  # let jobs move between pages
    finally:
        stop.set()
        producer.join(10)
    events = Events(store).recent(limit=1_000_000, queues=queues)
    moved = {e.id for e in events if e.at_ms >= checkpoint and e.id in before}
    seen = collections.Counter(i for p in pages for i in p)
    assert len(pages) > 10
    skipped = [i for i in before if seen[i] == 0]
    twice = [i for i in before if seen[i] > 1]
    assert not skipped, f"{len(skipped)} jobs were skipped: {skipped[:5]}"
    assert not twice, f"{len(twice)} jobs were listed twice: {twice[:5]}"
    after = {r.id: r.status for r in store.reads.get_many(list(before)) if r is not None}
    finished = [i for i in moved if before[i] is Status.QUEUED and after[i] is Status.SUCCEEDED]
    assert len(finished) >= 3, f"too few jobs went from queued to succeeded: {len(finished)}"


def jobkit_cancel(store: Store, job_id: str) -> None:
    store.cancel(job_id, 3600)


def test_listing_with_paging_while_jobs_move(env: Env, start_worker: StartWorker) -> None:
    queues = ["idle", "alpha", "beta"]
    store = env.store
    store.register_queues(queues)
    start_worker(queues="alpha,beta", concurrency=2)
    check_paging_while_jobs_move(store, queues)
