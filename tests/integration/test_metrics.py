"""``GET /metrics``: the fleet in Prometheus's text format, parsed as Prometheus would, with
a real redis-server, a real worker process and an archiver's consumer group."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import jobkit.http
from jobkit import Status
from jobkit.archive.archiver import Archiver
from jobkit.archive.schema import ensure_schema
from jobkit.archive.writer import Writer, make_engine
from jobkit.connection import get_settings
from jobkit.ops.queues import Queues
from tests.conftest import Env, StartWorker, wait_until
from tests.support import jobs


def scrape(http: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape, by (name, sorted labels)."""
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_show_queues_workers_and_the_archive_lag(
    env: Env, start_worker: StartWorker, tmp_path: Path
) -> None:
    app = FastAPI()
    app.include_router(jobkit.http.router())
    http = TestClient(app)
    # "mails" holds 3 ready jobs and is paused; "default" runs 4 jobs to the end, 1 dead
    for n in range(3):
        jobs.Add.dispatch(a=n, b=1, queue="mails")
    Queues(env.store).pause("mails")
    done = [jobs.Add.dispatch(a=n, b=1) for n in range(3)]
    doomed = jobs.NeedsFlag.dispatch(flag="never-set")
    start_worker(queues="default")
    wait_until(lambda: all(env.status(h.id) is Status.SUCCEEDED for h in done), timeout=15,
               what="the jobs to succeed")  # fmt: skip
    wait_until(lambda: env.status(doomed.id) is Status.DEAD, timeout=15, what="dead letter")

    before = scrape(http)
    assert before[("jobkit_queue_jobs", (("queue", "mails"), ("state", "ready")))] == 3
    assert before[("jobkit_queue_paused", (("queue", "mails"),))] == 1
    assert before[("jobkit_queue_paused", (("queue", "default"),))] == 0
    assert before[("jobkit_queue_jobs", (("queue", "default"), ("state", "dead")))] == 1
    assert (
        before[("jobkit_queue_attempts_total", (("outcome", "succeeded"), ("queue", "default")))]
        == 3
    )
    assert before[("jobkit_queue_attempts_total", (("outcome", "dead"), ("queue", "default")))] == 1
    assert before[("jobkit_queue_latency_seconds", (("queue", "mails"),))] > 0
    assert before[("jobkit_queue_latency_seconds", (("queue", "default"),))] == 0
    assert before[("jobkit_workers", ())] == 1
    assert before[("jobkit_queue_workers", (("queue", "default"),))] == 1
    assert before[("jobkit_queue_workers", (("queue", "mails"),))] == 0
    # no archiver has read any stream yet: no lag samples, rather than a made-up 0
    assert not [key for key in before if key[0] == "jobkit_archive_lag_events"]

    engine = make_engine(f"sqlite:///{tmp_path / 'history.db'}")
    ensure_schema(engine)
    archiver = Archiver(env.store, Writer(engine), get_settings())
    while archiver.step():
        pass
    jobs.Add.dispatch(a=9, b=9, queue="mails")  # one event the archiver has not read
    after = scrape(http)
    assert after[("jobkit_archive_lag_events", (("queue", "mails"),))] == 1
    assert after[("jobkit_archive_lag_events", (("queue", "default"),))] == 0
    assert after[("jobkit_archive_lost", (("queue", "mails"),))] == 0
