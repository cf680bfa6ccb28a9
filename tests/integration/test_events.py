"""The event streams: every state change of a job is recorded by the script that made it,
and the views read from them: a job's history, a worker's last jobs (also after it
stopped), the rates and details of `jobkit info`; the caps by length and age."""

from __future__ import annotations

import time

import orjson
import pytest

import jobkit
from jobkit import JobFailed
from jobkit.backend.events import Event, Events
from tests.conftest import Env, StartWorker, run_cli, wait_until
from tests.support import jobs


def changes(history: list[Event]) -> list[tuple[str, str]]:
    return [(e.from_status, e.to_status) for e in history]


def test_every_state_change_of_a_job_is_an_event(env: Env, start_worker: StartWorker) -> None:
    worker = start_worker()
    flaky = jobs.Flaky.dispatch(times_key="t", fail_times=1)
    assert flaky.result(timeout=20) == "ok on attempt 2"
    history = Events(env.store).of_job(flaky.id)
    assert changes(history) == [
        ("", "queued"),
        ("queued", "running"),
        ("running", "retrying"),
        ("retrying", "queued"),
        ("queued", "running"),
        ("running", "succeeded"),
    ]
    assert {e.job_class for e in history} == {"tests.support.jobs.Flaky"}
    assert {e.queue for e in history} == {"default"}
    assert [e.attempt for e in history] == [0, 1, 1, 1, 2, 2]
    failed, succeeded = history[2], history[5]
    assert failed.reason == "exception" and failed.worker == worker.name
    assert failed.duration_ms is not None and failed.duration_ms >= 0
    assert succeeded.worker == worker.name and succeeded.duration_ms is not None
    assert [e.at_ms for e in history] == sorted(e.at_ms for e in history)

    dead = jobs.NeedsFlag.dispatch(flag="never-set")
    with pytest.raises(JobFailed):
        dead.result(timeout=20)
    env.client.set("never-set", "1")
    assert env.store.revive(dead.id)
    assert dead.result(timeout=20) == "flag seen"
    assert changes(Events(env.store).of_job(dead.id))[-4:] == [
        ("running", "dead"),
        ("dead", "queued"),
        ("queued", "running"),
        ("running", "succeeded"),
    ]

    later = jobs.Add.dispatch(a=1, b=1, delay=60)
    assert later.cancel()
    assert changes(Events(env.store).of_job(later.id)) == [
        ("", "scheduled"),
        ("scheduled", "cancelled"),
    ]


def test_a_batch_of_jobs_is_one_entry_and_every_job_s_event_is_read_from_it(
    env: Env, start_worker: StartWorker
) -> None:
    """A dispatch_many() call, a claim of several jobs and their completions each append
    one entry for all their jobs (one XADD, not one per job); every job's history still
    holds each of its changes, with its class, attempt, worker and duration."""
    handles = jobs.Add.dispatch_many([{"a": i, "b": 1} for i in range(5)])
    stream = env.keys.shard("default").events
    assert env.client.xlen(stream) == 1
    worker = start_worker(extra=("--prefetch", "5"))
    assert [h.result(timeout=20) for h in handles] == [1, 2, 3, 4, 5]
    assert env.client.xlen(stream) < 1 + 2 * 5  # the worker's changes came in batches too
    for handle in handles:
        history = Events(env.store).of_job(handle.id)
        assert changes(history) == [("", "queued"), ("queued", "running"), ("running", "succeeded")]
        assert {e.job_class for e in history} == {"tests.support.jobs.Add"}
        assert [e.attempt for e in history] == [0, 1, 1]
        assert history[2].worker == worker.name and history[2].duration_ms is not None


def test_job_shows_its_attempt_history(env: Env, start_worker: StartWorker) -> None:
    worker = start_worker()
    handle = jobs.Flaky.dispatch(times_key="t2", fail_times=2)
    handle.result(timeout=20)
    out = run_cli("job", handle.id, "--json", url=env.url)
    assert out.returncode == 0, out.stderr
    shown = orjson.loads(out.stdout)
    ended = [e for e in shown["history"] if e["from"] == "running"]
    assert [(e["attempt"], e["to"], e["worker"]) for e in ended] == [
        (1, "retrying", worker.name),
        (2, "retrying", worker.name),
        (3, "succeeded", worker.name),
    ]
    assert all(e["duration_ms"] is not None for e in ended)
    assert ended[0]["reason"] == "exception"
    # each failed attempt's own error, though the record keeps only the last
    assert [(e["error_type"], e["error_message"]) for e in ended] == [
        ("ConnectionError", "upstream down (attempt 1)"),
        ("ConnectionError", "upstream down (attempt 2)"),
        (None, None),
    ]
    table = run_cli("job", handle.id, url=env.url)
    assert "running -> retrying" in table.stdout and "running -> succeeded" in table.stdout
    assert "ConnectionError: upstream down (attempt 1)" in table.stdout


def test_a_worker_s_last_jobs_are_shown_after_it_stopped(
    env: Env, start_worker: StartWorker
) -> None:
    worker = start_worker()
    handles = [jobs.Add.dispatch(a=i, b=0) for i in range(5)]
    failing = jobs.NeedsFlag.dispatch(flag="nope")
    for h in handles:
        h.result(timeout=20)
    with pytest.raises(JobFailed):
        failing.result(timeout=20)
    worker.terminate()
    worker.wait(20)
    wait_until(lambda: not env.client.exists(env.keys.worker(worker.name)), timeout=10)

    out = run_cli("workers", "show", worker.name, "--json", url=env.url)
    assert out.returncode == 0, out.stderr
    view = orjson.loads(out.stdout)
    assert view["name"] == worker.name and view["live"] is None  # it stopped
    shown = view["jobs"]
    assert shown[0]["id"] == failing.id and shown[0]["to"] == "dead"
    assert shown[0]["class"] == "tests.support.jobs.NeedsFlag"
    assert {e["id"] for e in shown if e["to"] == "succeeded"} == {h.id for h in handles}
    assert all(e["duration_ms"] is not None and e["at"] for e in shown)
    limited = orjson.loads(run_cli("workers", "show", worker.name, "-n", "2", "--json",
                                   url=env.url).stdout)["jobs"]  # fmt: skip
    assert len(limited) == 2
    unknown = run_cli("workers", "show", "no-such-worker", url=env.url)
    assert unknown.returncode == 1 and "no jobs" in unknown.stdout


def test_info_shows_each_queue_in_detail(env: Env, start_worker: StartWorker) -> None:
    start_worker(queues="default")
    done = [jobs.Add.dispatch(a=i, b=1) for i in range(6)]
    for h in done:
        h.result(timeout=20)
    with pytest.raises(JobFailed):
        jobs.NeedsFlag.dispatch(flag="nope").result(timeout=20)
    jobs.Add.dispatch(a=1, b=1, delay=120)
    jobs.Add.dispatch_many([{"a": 1, "b": 1}] * 3, queue="idle")

    out = run_cli("info", "--json", url=env.url)
    assert out.returncode == 0, out.stderr
    shown = orjson.loads(out.stdout)
    by_queue = {q["queue"]: q for q in shown["queues"]}
    default, idle = by_queue["default"], by_queue["idle"]
    assert default["ready"] == 0 and default["scheduled"] == 1 and default["dead"] == 1
    assert default["retrying"] == 0 and default["paused"] is False
    assert default["per_minute"]["done"] == {"1m": 6, "5m": 1.2, "15m": 0.4}
    assert default["per_minute"]["failed"]["1m"] == 2  # NeedsFlag's two attempts
    assert len(default["workers"]) == 1
    assert idle["ready"] == 3 and idle["workers"] == []
    assert idle["next_waited_s"] is not None and idle["next_waited_s"] >= 0
    assert shown["fleet"]["ready"] == 3 and shown["fleet"]["workers"] == 1
    table = run_cli("info", url=env.url)
    assert "idle" in table.stdout and "default" in table.stdout


def test_retrying_jobs_are_told_from_delayed_ones(env: Env, start_worker: StartWorker) -> None:
    start_worker()
    slow_retry = jobs.Later.dispatch(times_key="lt", retry_in=30)
    wait_until(lambda: env.status(slow_retry.id).value == "retrying", timeout=20)
    jobs.Add.dispatch(a=1, b=1, delay=120)
    [shown] = orjson.loads(run_cli("info", "--json", url=env.url).stdout)["queues"]
    assert (shown["scheduled"], shown["retrying"]) == (1, 1)


def test_streams_are_capped_by_length_and_age(env: Env) -> None:
    jobkit.configure(redis_url=env.url, events_maxlen=200)
    store = jobkit.get_store()
    for i in range(1000):  # an entry each (dispatch_many writes one per call)
        jobs.Add.dispatch(a=i, b=0, store=store)
    stream = env.keys.shard("default").events
    assert 200 <= env.client.xlen(stream) <= 400  # trimmed as written, by whole nodes
    time.sleep(0.05)
    Events(store).trim(["default"], 0.01, store.reads.now_ms())
    assert env.client.xlen(stream) == 0

    jobkit.configure(redis_url=env.url, events_maxlen=0)
    jobs.Add.dispatch(a=1, b=1, queue="quiet", store=jobkit.get_store())
    assert not env.client.exists(env.keys.shard("quiet").events)


def test_an_events_key_of_another_type_is_set_aside_and_a_new_stream_begun(
    env: Env, start_worker: StartWorker
) -> None:
    key = env.keys.shard("default").events
    env.client.set(key, "garbage")
    start_worker()
    handle = jobs.Add.dispatch(a=2, b=2)
    assert handle.result(timeout=20) == 4
    assert [e.to_status for e in Events(env.store).of_job(handle.id)] == ["queued", "running",
                                                                    "succeeded"]  # fmt: skip
    [kept] = env.client.hkeys(env.keys.shard("default").asides)
    assert env.client.get(kept) == "garbage"
    out = run_cli("info", "--json", url=env.url)
    assert out.returncode == 0, out.stderr
