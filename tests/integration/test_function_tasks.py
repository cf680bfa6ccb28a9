"""Function tasks as users write them, run by a real ``jobkit worker`` process: plain and
async functions, ``bind=True``, the Celery aliases with ``countdown`` and ``eta``, and a
``jobkit.Queue`` on a Redis of its own that never mixes with the default one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

import jobkit
from tests.conftest import REPO_ROOT, Env, StartWorker, clean_env
from tests.support import task_jobs
from tests.support.redis_server import RedisServer

TASKS = ("-A", "tests.support.task_jobs")


def test_a_plain_call_dispatches_and_a_worker_runs_it(env: Env, start_worker: StartWorker) -> None:
    job = task_jobs.add(2, b=3)  # the first brief's spelling: a call returns a job
    assert isinstance(job, jobkit.JobHandle)
    assert job.status is jobkit.Status.QUEUED
    assert env.store.reads.get(job.id).name == "tests.support.task_jobs.add"  # type: ignore[union-attr]
    spelled = task_jobs.add.dispatch(a=1)
    start_worker(extra=TASKS)
    assert job.result(timeout=10) == 5
    assert spelled.result(timeout=10) == 1
    assert task_jobs.add.call_local(4, 4) == 8  # runs here, dispatches nothing


def test_async_and_bound_tasks_run(env: Env, start_worker: StartWorker) -> None:
    loud = task_jobs.shout.delay("hi", times=2)
    bound = task_jobs.who_am_i("x")
    start_worker(extra=TASKS)
    assert loud.result(timeout=10) == "HI HI"
    assert bound.result(timeout=10) == {"id": bound.id, "attempt": 1, "tag": "x"}


def test_bad_arguments_are_refused_and_write_nothing(env: Env) -> None:
    before = env.client.dbsize()
    with pytest.raises(ValidationError):
        task_jobs.add("not a number")
    with pytest.raises(jobkit.DispatchError, match="too many positional"):
        task_jobs.add(1, 2, 3)
    with pytest.raises(jobkit.DispatchError, match="unexpected keyword"):
        task_jobs.add(1, c=2)
    assert env.client.dbsize() == before


def test_apply_async_countdown_and_eta_delay_the_job(env: Env, start_worker: StartWorker) -> None:
    now = time.time()
    later = task_jobs.add.apply_async((1, 2), countdown=60)
    at = datetime.now(timezone.utc) + timedelta(hours=1)
    timed = task_jobs.add.apply_async(kwargs={"a": 5}, eta=at, task_id="eta-1")
    soon = task_jobs.add.apply_async((7,), countdown=0.2)
    for handle, due in ((later, now + 60), (timed, at.timestamp())):
        rec = env.store.reads.get(handle.id)
        assert rec is not None and rec.status is jobkit.Status.SCHEDULED
        assert rec.due_at is not None and abs(rec.due_at.timestamp() - due) < 2
    assert timed.id == "default:eta-1"  # task_id is the idempotency key
    start_worker(extra=TASKS)  # a worker promotes due jobs too
    assert soon.result(timeout=10) == 7
    assert later.status is jobkit.Status.SCHEDULED


def test_class_jobs_take_celery_spelling(env: Env, start_worker: StartWorker) -> None:
    from tests.support import jobs

    positional = jobs.Add.delay(2, 5)  # Params fields in order: a, b
    delayed = jobs.Add.apply_async((1,), {"b": 1}, countdown=30)
    assert env.store.reads.get(delayed.id).status is jobkit.Status.SCHEDULED  # type: ignore[union-attr]
    with pytest.raises(jobkit.DispatchError, match="given twice"):
        jobs.Add.delay(1, a=2)
    start_worker()
    assert positional.result(timeout=10) == 7


@pytest.fixture
def side_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    with RedisServer() as server:
        monkeypatch.setenv("TASKS_REDIS_URL", server.url)
        yield server


def test_two_queues_in_one_process_never_mix(
    env: Env, side_redis: RedisServer, start_worker: StartWorker
) -> None:
    side = jobkit.Queue(redis=side_redis.url)
    task_jobs.side.use_store(side.store)  # the module's Queue, as if made with this URL
    job = task_jobs.mul(6, 7)
    assert side.get_job(job.id).status is jobkit.Status.QUEUED
    assert jobkit.get_job(job.id).status is jobkit.Status.UNKNOWN  # not on the default Redis
    plain = side.dispatch(task_jobs.add, a=1, b=1)
    assert jobkit.get_job(plain.id).status is jobkit.Status.UNKNOWN
    start_worker(extra=TASKS, url=side_redis.url)
    assert side.get_job(job.id).result(timeout=10) == 42
    assert side.get_job(plain.id).result(timeout=10) == 2
    assert not env.client.keys("*:job:*")  # nothing of the side queue on the default Redis
    task_jobs.side.use_store(None)
    side.close()


def test_a_worker_given_no_redis_serves_the_apps_queue(
    env: Env, side_redis: RedisServer, tmp_path: Path
) -> None:
    """``jobkit worker -A app`` with neither --redis-url nor JOBKIT_REDIS_URL serves the
    Redis of the one ``jobkit.Queue(redis=...)`` the app makes, as ``celery -A app worker``
    takes the app's broker."""
    side = jobkit.Queue(redis=side_redis.url)
    job = side.dispatch(task_jobs.mul, a=3, b=4)
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobkit", "worker", "-A", "tests.support.task_jobs",
         "--name", "adopting"],
        cwd=REPO_ROOT, env=clean_env(TASKS_REDIS_URL=side_redis.url), stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        assert side.get_job(job.id).result(timeout=15) == 12
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
        side.close()
    assert "serving the Redis of the app's jobkit.Queue" in (tmp_path / "worker.log").read_text()
