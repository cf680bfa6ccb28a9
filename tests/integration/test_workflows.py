"""Jobs that wait for others, run by real ``jobkit worker`` processes: a chain passing
results across two queues, one surviving a worker SIGKILLed mid-step, a group's callback
taking every result, a failed dependency cancelling (or dead-lettering) what waits for
it, and the waiting shown by ``jobkit job``."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest

import jobkit
from jobkit import Status
from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import flow_jobs as f

FLOWS = ("-A", "tests.support.flow_jobs")
QUEUES = f"default,{f.STAGE}"


def test_a_chain_passes_each_result_to_the_next_step(env: Env, start_worker: StartWorker) -> None:
    flow = jobkit.chain(f.extract.s("2026-12-07"), f.transform.s(factor=2), f.load.s()).dispatch()
    first, second, third = flow.jobs
    assert first.status is Status.QUEUED
    assert second.status is Status.WAITING and third.status is Status.WAITING
    assert second.id.startswith(f"{f.STAGE}:")  # the middle step lives in another queue
    start_worker(queues=QUEUES, extra=FLOWS)
    assert flow.result(timeout=20) == (10 + 2 + 3) * 2
    assert second.result(timeout=1) == [20, 4, 6]
    record = third.record
    assert record is not None and orjson.loads(record.params_json) == {"rows": [20, 4, 6]}


def test_a_chain_survives_a_worker_killed_mid_step(
    env: Env, start_worker: StartWorker, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    flow = jobkit.chain(
        f.extract.s("day"), f.slow_step.s(marker=str(marker)), f.load.s()
    ).dispatch()
    doomed = start_worker(queues=QUEUES, concurrency=1, extra=FLOWS)
    wait_until(lambda: marker.exists(), timeout=20, what="the slow step to start")
    time.sleep(0.5)  # the supervisor has marked it started: its lapse counts a crash
    doomed.kill()  # SIGKILL to the whole process group, mid-step
    assert flow.jobs[1].refresh().status is Status.RUNNING
    assert flow.jobs[2].status is Status.WAITING
    start_worker(queues=QUEUES, extra=FLOWS)  # its lease lapses; the step runs again
    assert flow.result(timeout=30) == 3 + 2 + 3
    assert len(marker.read_text().split()) == 2  # started twice, recorded once
    assert flow.jobs[1].attempts == 2 and flow.jobs[1].record.crashes == 1  # type: ignore[union-attr]


def test_a_group_callback_takes_every_result_in_order(env: Env, start_worker: StartWorker) -> None:
    flow = jobkit.group([f.square.s(n=n) for n in range(5)], then=f.total.s()).dispatch()
    start_worker(queues=QUEUES, concurrency=2, extra=FLOWS)
    assert flow.result(timeout=20) == sum(n * n for n in range(5))
    callback = flow.last.record
    assert callback is not None
    assert orjson.loads(callback.params_json) == {"results": [0, 1, 4, 9, 16]}


def test_a_failed_dependency_cancels_what_waits_for_it(env: Env, start_worker: StartWorker) -> None:
    broken = f.fails("no data")
    waiting = f.load.job.dispatch(rows=[1], depends_on=[broken])
    strict = f.square.job.dispatch(n=2, depends_on=[waiting], on_failure="fail")
    start_worker(queues=QUEUES, extra=FLOWS)
    with pytest.raises(jobkit.JobFailed):
        broken.result(timeout=20)
    wait_until(lambda: strict.refresh().status is Status.DEAD, timeout=10, what="the cascade")
    cancelled = waiting.refresh().record
    assert cancelled is not None and cancelled.status is Status.CANCELLED
    assert cancelled.reason == "dependency_failed"
    assert cancelled.error is not None and broken.id in cancelled.error.message
    dead = strict.record
    assert dead is not None and dead.reason == "dependency_failed"
    assert waiting.id in str(dead.error)
    assert strict.id in env.client.zrange(env.keys.shard("default").dead, 0, -1)


def test_a_dependency_that_ended_or_never_was(env: Env, start_worker: StartWorker) -> None:
    start_worker(queues=QUEUES, extra=FLOWS)
    done = f.square(n=3)
    assert done.result(timeout=10) == 9
    after = f.load.job.dispatch(rows=[4], depends_on=[done.id])
    assert after.status is not Status.WAITING  # nothing left to wait for: queued at once
    assert after.result(timeout=10) == 4
    before = env.client.dbsize()
    with pytest.raises(jobkit.JobNotFound, match="default:no-such-job"):
        f.load.job.dispatch(rows=[1], depends_on=["default:no-such-job"])
    with pytest.raises(jobkit.DispatchError, match="no delay"):
        f.load.job.dispatch(rows=[1], depends_on=[done], delay=5)
    assert env.client.dbsize() == before


def test_jobkit_job_shows_what_a_job_waits_for_and_what_waits_for_it(env: Env) -> None:
    first = f.extract("x")
    second = f.transform.job.dispatch(rows=[1], depends_on=[first])
    waits = run_cli("job", second.id, "--json", url=env.url)
    assert waits.returncode == 0, waits.stderr
    shown = orjson.loads(waits.stdout)
    assert shown["status"] == "waiting" and shown["waits_for"] == [first.id]
    waited = orjson.loads(run_cli("job", first.id, "--json", url=env.url).stdout)
    assert waited["waited_by"] == [second.id]
    text = run_cli("job", second.id, url=env.url).stdout
    assert "waits for" in text and first.id in text


def test_the_dashboard_job_page_links_both_ways(env: Env) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from jobkit.web.dashboard import mount

    first = f.extract("<b>x</b>")
    second = f.transform.job.dispatch(rows=[1], depends_on=[first])
    app = FastAPI()
    mount(app, prefix="/")
    http = TestClient(app)
    page = http.get(f"/jobs/{second.id}").text
    assert "Waits for" in page and f'href="/jobs/{quote(first.id, safe="")}"' in page
    assert "waiting" in page
    back = http.get(f"/jobs/{first.id}").text
    assert "Waited for by" in back and f'href="/jobs/{quote(second.id, safe="")}"' in back
    assert "<b>x</b>" not in back  # the params, escaped
