"""Every exception from perform() ends the attempt with a reason, and the worker serves on."""

from __future__ import annotations

import time

import pytest

from jobkit import BaseJob, DeadReason, JobFailed, Status
from tests.conftest import Env, StartWorker, wait_until
from tests.integration.test_worker_ids import insert_job
from tests.support import jobs

KINDS = ["SystemExit", "KeyboardInterrupt", "GeneratorExit", "Unusual"]


@pytest.mark.parametrize("job_class", [jobs.RaiseBase, jobs.AsyncRaiseBase])
def test_base_exceptions_end_the_attempt_and_the_child_serves_on(
    env: Env, start_worker: StartWorker, job_class: type[BaseJob]
) -> None:
    worker = start_worker(concurrency=1)
    [child] = worker.child_pids()
    for kind in KINDS:
        handle = job_class.dispatch(kind=kind)
        with pytest.raises(JobFailed):
            handle.result(timeout=10)
        rec = handle.record
        assert rec is not None
        assert rec.status is Status.DEAD, kind
        assert rec.reason == DeadReason.EXCEPTION.value, kind  # not in retry_on
        assert rec.attempts == 1, kind
        assert handle.error is not None
        assert handle.error.type == kind
        # a following normal job runs, in the same child
        assert jobs.WhoAmI.dispatch().result(timeout=10)["pid"] == child
    assert worker.child_pids() == [child]
    log = worker.log_text()
    assert all(f"(exception): {kind}" in log for kind in KINDS)  # each logged, with a reason
    assert env.client.zcard(env.keys.shard("default").running) == 0


def test_a_runner_thread_that_dies_takes_its_child_down_and_the_job_is_settled(
    env: Env, start_worker: StartWorker
) -> None:
    """Something escapes the executor (here a params validator raising a BaseException):
    the child exits and is replaced, and the job it held is counted as a crash, never
    left running with its lease renewed forever."""
    worker = start_worker(concurrency=1)
    [first] = worker.child_pids()
    insert_job(env, "default:breaker", "tests.support.jobs.BreaksItsRunner", '{"counter": "tries"}')

    wait_until(
        lambda: env.status("default:breaker") is Status.DEAD, timeout=30, what="the job dead"
    )
    rec = env.store.reads.get("default:breaker")
    assert rec is not None
    assert rec.reason == DeadReason.CRASHED.value
    assert rec.crashes == 2  # JOBKIT_MAX_CRASHES
    assert env.client.get("tries") == "2"
    assert "runner thread 0 failed: stopping this child" in worker.log_text()
    assert "died unexpectedly (exit code 70)" in worker.log_text()

    # the worker serves on with a new child
    assert jobs.Add.dispatch(a=1, b=2).result(timeout=10) == 3
    assert worker.alive()
    assert first not in worker.child_pids()
    time.sleep(0.1)
    assert env.client.zcard(env.keys.shard("default").running) == 0


def test_an_error_message_no_codec_takes_is_recorded_and_the_child_serves_on(
    env: Env, start_worker: StartWorker
) -> None:
    """An exception's text with a lone surrogate cannot be written as JSON as it is: it
    is recorded with the surrogate replaced, the job is dead-lettered as any failure,
    and the same child runs the next job."""
    worker = start_worker(concurrency=1)
    [child] = worker.child_pids()
    handle = jobs.NastyMessage.dispatch()
    with pytest.raises(JobFailed):
        handle.result(timeout=10)
    assert handle.error is not None
    assert handle.error.type == "ValueError"
    assert handle.error.message.startswith("lone ? surrogate xxx")
    assert "lone ? surrogate" in handle.error.traceback
    assert jobs.WhoAmI.dispatch().result(timeout=10)["pid"] == child
