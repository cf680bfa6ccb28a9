"""Payload versions against a real redis-server and a real ``jobkit worker``: the worker
runs the newer classes (tests/support/version_jobs.py); this process holds the older ones
under the same names and dispatches with them, as an older release would. A version-1
payload is upgraded and run; one upgrade() cannot read, or that does not validate once
upgraded, and one newer than the worker's class are dead-lettered (invalid_payload)
with a message naming both versions. A version-1 job stores no version at all."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from jobkit import BaseJob, DeadReason, JobFailed, Status
from jobkit.backend.calls import ClaimArgs, ClaimReply
from jobkit.versions import ERROR_TYPE
from tests.conftest import Env, StartWorker

WORKER = ("-A", "tests.support.version_jobs")
QUEUE = "versions"


class OneSize(BaseModel):
    size: int


class ResizeV1(BaseJob[OneSize]):
    name = "versions.resize"
    queue = QUEUE

    def perform(self) -> None:  # the worker's class runs it
        raise AssertionError


class CropV1(BaseJob[OneSize]):
    name = "versions.crop"
    queue = QUEUE

    def perform(self) -> None:
        raise AssertionError


class StrictV1(BaseJob[OneSize]):
    name = "versions.strict"
    queue = QUEUE

    def perform(self) -> None:
        raise AssertionError


class Angle(BaseModel):
    degrees: int


class RotateV2(BaseJob[Angle]):
    name = "versions.rotate"
    queue = QUEUE
    version = 2

    def perform(self) -> None:
        raise AssertionError


class Size(BaseModel):
    width: int
    height: int


class SameV2(BaseJob[Size]):
    name = "versions.same"
    queue = QUEUE
    version = 2

    def perform(self) -> None:
        raise AssertionError


def _dead(handle: Any) -> Any:
    with pytest.raises(JobFailed):
        handle.result(timeout=20)
    record = handle.refresh().record
    assert record is not None
    assert record.status is Status.DEAD
    assert record.reason == DeadReason.INVALID_PAYLOAD.value
    assert record.attempts == 1
    assert record.error is not None and record.error.type == ERROR_TYPE
    return record


def test_a_version_1_payload_is_upgraded_and_run_by_a_version_2_worker(
    env: Env, start_worker: StartWorker
) -> None:
    handle = ResizeV1.dispatch(size=7)
    # a version-1 job stores no version field: what every job stored before it did
    assert "version" not in env.client.hgetall(env.keys.job(handle.id))
    record = handle.record
    assert record is not None and record.version == 1
    start_worker(queues=QUEUE, extra=WORKER)
    assert handle.result(timeout=20) == {"width": 7, "height": 7}
    # several at once, from one dispatch_many call
    many = ResizeV1.dispatch_many([{"size": n} for n in range(1, 6)])
    assert [h.result(timeout=20) for h in many] == [{"width": n, "height": n} for n in range(1, 6)]


def test_a_job_of_the_class_s_own_version_is_not_upgraded(
    env: Env, start_worker: StartWorker
) -> None:
    handle = SameV2.dispatch(width=3, height=4)
    assert env.client.hget(env.keys.job(handle.id), "version") == "2"
    record = handle.record
    assert record is not None and record.version == 2
    start_worker(queues=QUEUE, extra=WORKER)
    assert handle.result(timeout=20) == 12


def test_a_payload_upgrade_cannot_read_is_dead_lettered_naming_both_versions(
    env: Env, start_worker: StartWorker
) -> None:
    start_worker(queues=QUEUE, extra=WORKER)
    record = _dead(CropV1.dispatch(size=5))
    assert (
        record.error.message
        == "payload version 1, Crop is version 3: upgrade() raised KeyError('w')"
    )
    assert "KeyError" in record.error.traceback


def test_upgraded_params_that_do_not_validate_are_dead_lettered(
    env: Env, start_worker: StartWorker
) -> None:
    start_worker(queues=QUEUE, extra=WORKER)
    record = _dead(StrictV1.dispatch(size=5))
    message = record.error.message
    assert message.startswith("payload version 1, Strict is version 2: the upgraded params")
    assert "width" in message and "height" in message


def test_a_payload_newer_than_the_worker_s_class_is_dead_lettered(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker(queues=QUEUE, extra=WORKER)
    record = _dead(RotateV2.dispatch(degrees=90))
    assert record.error.message.startswith("payload version 2, Rotate is version 1: ")
    assert "newer" in record.error.message
    # the worker serves on: the next job runs
    assert ResizeV1.dispatch(size=2).result(timeout=20) == {"width": 2, "height": 2}
    assert worker.alive()


def test_a_version_must_be_a_whole_number_from_1() -> None:
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(TypeError, match="version must be a whole number"):
            type("Bad", (BaseJob,), {"name": "versions.bad", "version": bad})


def test_a_claim_returns_the_version_only_for_a_versioned_job_and_again_when_re_sent(
    env: Env,
) -> None:
    """Straight through claim.lua: plain jobs come back with version 1 and no trace (no
    extras in the reply), a versioned one with its version, and a request sent again
    under the same id (its reply was lost) answers with the same."""
    plain = ResizeV1.dispatch(size=1)
    versioned = SameV2.dispatch(width=1, height=1)
    base = env.keys.lane(QUEUE).base
    args = ClaimArgs.of("w", 30_000, 10, "request-1", [QUEUE])
    first = env.store.run_script("claim", [base], args.argv())
    again = env.store.run_script("claim", [base], args.argv())
    for raw in (first, again):
        jobs = {j.id: j for j in ClaimReply.parse(list(raw)).jobs}
        assert (jobs[plain.id].version, jobs[plain.id].trace) == (1, "")
        assert (jobs[versioned.id].version, jobs[versioned.id].trace) == (2, "")
    # a claim of plain jobs only is a reply of 7 fields per job, nothing more
    only_plain = ResizeV1.dispatch(size=1)
    raw = env.store.run_script("claim", [base], ClaimArgs.of("w", 30_000, 10, "", [QUEUE]).argv())
    assert len(raw) == 7 and raw[0] == only_plain.id


def test_a_version_field_that_is_no_whole_number_is_an_invalid_record(env: Env) -> None:
    handle = ResizeV1.dispatch(size=1)
    env.client.hset(env.keys.job(handle.id), "version", "two")
    # read only in a queue where versioned jobs were stored (enqueue.lua marks it)
    env.client.set(env.keys.shard(QUEUE).versioned, "1")
    base = env.keys.lane(QUEUE).base
    raw = env.store.run_script("claim", [base], ClaimArgs.of("w", 30_000, 1, "", [QUEUE]).argv())
    assert ClaimReply.parse(list(raw)).jobs == []
    record = handle.refresh().record
    assert record is not None and record.status is Status.DEAD
    assert record.reason == DeadReason.INVALID_RECORD.value
    assert record.error is not None and "version" in record.error.message
