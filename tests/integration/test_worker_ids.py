"""Ids and names are whatever a hostile writer put in Redis: the worker copes with any.

dispatch() refuses such ids, so these jobs are written straight into Redis (as
enqueue.lua would write them), the way a buggy or hostile writer could.
"""

from __future__ import annotations

import time

import redis

from jobkit import DeadReason, Status
from tests.conftest import Env, StartWorker, wait_until
from tests.support import jobs


def insert_job(
    env: Env,
    job_id: str,
    name: str,
    params: str,
    *,
    timeout: float = 0,
    max_attempts: int = 3,
) -> None:
    """Write a queued job straight into Redis, with every field enqueue.lua writes."""
    k = env.keys.shard("default")
    seq = int(env.client.incr(k.seq))
    now_ms = int(time.time() * 1000)
    env.client.hset(
        k.job(job_id),
        mapping={
            "name": name,
            "lane": "default",
            "params": params,
            "priority": 0,
            "seq": seq,
            "status": "queued",
            "max_attempts": max_attempts,
            "timeout": timeout,
            "result_ttl": 3600,
            "created_at": now_ms,
        },
    )
    env.client.zadd(k.queue_key("default"), {job_id: seq})
    env.client.lpush(k.wake("default"), "1")


def _wait_final(env: Env, job_id: str, timeout: float = 30) -> Status:
    final = {Status.SUCCEEDED, Status.DEAD}
    return wait_until(
        lambda: env.status(job_id) if env.status(job_id) in final else None,
        timeout=timeout,
        what=f"job {job_id[:20]!r}... to end",
    )


def test_long_multibyte_ids_keep_timeouts_and_crash_counts(
    env: Env, start_worker: StartWorker
) -> None:
    """200 two- and three-byte characters: more than the old 256-byte slot held."""
    worker = start_worker(concurrency=1)
    for char in ("é", "界"):  # two bytes, three bytes in UTF-8
        hang, crash = "default:" + char * 199 + "h", "default:" + char * 199 + "c"
        insert_job(
            env, hang, "tests.support.jobs.Hang", '{"marker": "m"}', timeout=0.5, max_attempts=1
        )
        insert_job(env, crash, "tests.support.jobs.Crash", f'{{"counter": "crashes-{char}"}}')
        innocent = jobs.Add.dispatch(a=2, b=3)

        assert _wait_final(env, hang) is Status.DEAD
        rec = env.store.reads.get(hang)
        assert rec is not None and rec.started_at and rec.finished_at
        assert rec.reason == DeadReason.TIMEOUT.value
        assert (rec.finished_at - rec.started_at).total_seconds() < 3  # killed on time

        assert _wait_final(env, crash) is Status.DEAD
        rec = env.store.reads.get(crash)
        assert rec is not None
        assert rec.reason == DeadReason.CRASHED.value
        assert rec.crashes == 2  # JOBKIT_MAX_CRASHES: counted, not looping
        assert env.client.get(f"crashes-{char}") == "2"

        assert innocent.result(timeout=10) == 5
    assert worker.alive()
    assert "Traceback" not in worker.log_text()


WEIRD = [
    "line\nbreak",
    "tab\there",
    "\\t a backslash and a t, not a tab",
    "trailing backslash\\",
    "\\n\\\\n\n\t\\",
    "cr\r\nlf",
    "nul\x00byte",
    "Ã©Ã¨ mojibake, \xff\xfe as text, \ufffd replacement char",
    "\x1b[31mansi\x1b[0m",
    "emoji 🙂 and \u2028 line separator",
]


def test_ids_and_names_with_newlines_tabs_and_odd_text(env: Env, start_worker: StartWorker) -> None:
    worker = start_worker(concurrency=2)
    for i, weird in enumerate(WEIRD):
        insert_job(env, f"default:{weird}-{i}", "tests.support.jobs.Add", f'{{"a": {i}, "b": 1}}')
        insert_job(env, f"default:name-{i}", f"tests.support.jobs.Add{weird}", '{"a": 0, "b": 0}')
    insert_job(
        env, "default:a slow\none", "tests.support.jobs.Hang", '{"marker": "m"}', timeout=0.5
    )

    for i, weird in enumerate(WEIRD):
        assert _wait_final(env, f"default:{weird}-{i}") is Status.SUCCEEDED
        rec = env.store.reads.get(f"default:{weird}-{i}")
        assert rec is not None and rec.result == i + 1
        assert _wait_final(env, f"default:name-{i}") is Status.DEAD
        rec = env.store.reads.get(f"default:name-{i}")
        assert rec is not None and rec.reason == DeadReason.UNKNOWN_JOB.value
    assert _wait_final(env, "default:a slow\none") is Status.DEAD  # its timeout enforced
    rec = env.store.reads.get("default:a slow\none")
    assert rec is not None and rec.reason == DeadReason.TIMEOUT.value

    assert jobs.Add.dispatch(a=20, b=22).result(timeout=10) == 42
    assert worker.alive()
    log = worker.log_text()
    assert "Traceback" not in log
    assert "malformed" not in log


def test_an_id_that_is_not_utf8_does_not_take_the_child_down(
    env: Env, start_worker: StartWorker
) -> None:
    """Bytes no UTF-8 decoder accepts: the claim's reply cannot be read. The child logs
    it and claims on (the unreadable job's lease lapses and it ends as a crash); it is
    not replaced, nor does it crash-loop."""
    worker = start_worker(concurrency=1)
    [child] = worker.child_pids()
    raw = redis.Redis.from_url(env.url)
    try:
        bad = b"default:not utf-8 \xff\xfe"
        job_key = env.keys.shard("default").job("").encode() + bad
        seq = int(env.client.incr(env.keys.shard("default").seq))
        fields = {"name": "tests.support.jobs.Add", "lane": "default", "params": '{"a": 1, "b": 2}'}
        raw.hset(job_key, mapping={**fields, "priority": 0, "seq": seq, "status": "queued",
                                   "max_attempts": 3, "timeout": 0, "result_ttl": 3600,
                                   "created_at": int(time.time() * 1000)})  # fmt: skip
        raw.zadd(env.keys.queue("default").encode(), {bad: seq})
        raw.lpush(env.keys.wake("default"), "1")

        final = (b"dead", b"succeeded")
        wait_until(lambda: raw.hget(job_key, "status") in final, timeout=30, what="it to end")
        assert jobs.Add.dispatch(a=2, b=2).result(timeout=10) == 4
        assert worker.child_pids() == [child]
        assert worker.alive()
        assert "Traceback" not in worker.log_text()
    finally:
        raw.close()
