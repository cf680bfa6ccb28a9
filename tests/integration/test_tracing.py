"""OpenTelemetry tracing against a real redis-server and a real ``jobkit worker``: a job
dispatched under a request's span runs, in the worker (another process, whose spans
tests/support/trace_jobs.py writes to a file), in a ``jobkit.perform`` span of that
trace, a child of the request's span; each failed attempt's span has status error and
the exception; with no span current at dispatch nothing is stored with the job and the
worker makes no span."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobkit import JobFailed, tracing
from tests.conftest import Env, StartWorker, wait_until
from tests.support import trace_jobs

WORKER = ("-A", "tests.support.trace_jobs")


@pytest.fixture
def spans_file(tmp_path: Path) -> Path:
    return tmp_path / "spans.jsonl"


@pytest.fixture
def request_tracer() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    """A tracer of this process's own (the global provider is left alone): its spans,
    the dispatching request's, are kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("tests.request"), exporter
    provider.shutdown()


def _worker(start_worker: StartWorker, spans_file: Path) -> Any:
    return start_worker(
        queues=trace_jobs.QUEUE, extra=WORKER, environ={trace_jobs.SPANS: str(spans_file)}
    )


def _spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _perform_spans(path: Path, job_id: str, count: int = 1) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]]:
        got = [s for s in _spans(path) if s["attributes"].get("jobkit.job.id") == job_id]
        return got if len(got) >= count else []

    return sorted(wait_until(found, timeout=20, what="the job's spans"),
                  key=lambda s: s["attributes"]["jobkit.attempt"])  # fmt: skip


def test_the_job_runs_in_a_span_of_the_dispatching_request_s_trace(
    env: Env, start_worker: StartWorker, spans_file: Path, request_tracer: Any
) -> None:
    assert tracing.ENABLED
    tracer, exporter = request_tracer
    with tracer.start_as_current_span("POST /resize"):
        handle = trace_jobs.Traced.dispatch()
    [request] = exporter.get_finished_spans()
    assert request.context is not None
    trace_id = f"{request.context.trace_id:032x}"
    stored = orjson.loads(env.client.hget(env.keys.job(handle.id), "trace") or "{}")
    assert stored["traceparent"].split("-")[1] == trace_id

    worker = _worker(start_worker, spans_file)
    assert handle.result(timeout=20) == trace_id  # perform() ran inside that trace
    [span] = _perform_spans(spans_file, handle.id)
    assert span["name"] == "jobkit.perform traces.traced"
    assert span["kind"] == "CONSUMER"
    assert span["trace_id"] == trace_id
    assert span["parent_id"] == f"{request.context.span_id:016x}"
    assert span["status"] == "UNSET"
    assert span["attributes"] == {
        "messaging.system": "jobkit",
        "jobkit.job.id": handle.id,
        "jobkit.job.name": "traces.traced",
        "jobkit.job.class": "Traced",
        "jobkit.queue": trace_jobs.QUEUE,
        "jobkit.attempt": 1,
    }
    assert span["pid"] in worker.child_pids()
    # the span perform() started is a child of the attempt's
    [inner] = [s for s in _spans(spans_file) if s["name"] == "inner work"]
    assert (inner["trace_id"], inner["parent_id"]) == (trace_id, span["span_id"])


def test_each_failed_attempt_s_span_has_error_status_and_the_exception(
    env: Env, start_worker: StartWorker, spans_file: Path, request_tracer: Any
) -> None:
    tracer, exporter = request_tracer
    with tracer.start_as_current_span("POST /flaky"):
        handle = trace_jobs.Flaky.dispatch()
    [request] = exporter.get_finished_spans()
    _worker(start_worker, spans_file)
    with pytest.raises(JobFailed):
        handle.result(timeout=20)
    first, second = _perform_spans(spans_file, handle.id, count=2)
    for attempt, span in ((1, first), (2, second)):
        assert span["attributes"]["jobkit.attempt"] == attempt
        assert span["status"] == "ERROR"
        assert span["events"] == ["exception"]
        assert span["trace_id"] == f"{request.context.trace_id:032x}"
        assert span["parent_id"] == f"{request.context.span_id:016x}"


def test_with_no_span_current_nothing_is_stored_and_no_span_is_made(
    env: Env, start_worker: StartWorker, spans_file: Path, request_tracer: Any
) -> None:
    tracer, _ = request_tracer
    plain = trace_jobs.Traced.dispatch()
    many = trace_jobs.Traced.dispatch_many([{}, {}])
    for h in (plain, *many):
        assert "trace" not in env.client.hgetall(env.keys.job(h.id))
    # a span that is over is not current: a dispatch after it carries nothing either
    with tracer.start_as_current_span("finished"):
        pass
    after = trace_jobs.add.dispatch(a=1, b=2)
    assert "trace" not in env.client.hgetall(env.keys.job(after.id))

    _worker(start_worker, spans_file)
    assert after.result(timeout=20) == 3
    for h in (plain, *many):
        assert h.result(timeout=20) == f"{0:032x}"  # no span current in perform()
    assert not [s for s in _spans(spans_file) if s["name"].startswith("jobkit.")]


def test_dispatch_many_and_function_tasks_carry_the_context(
    env: Env, start_worker: StartWorker, spans_file: Path, request_tracer: Any
) -> None:
    tracer, exporter = request_tracer
    with tracer.start_as_current_span("batch"):
        many = trace_jobs.Traced.dispatch_many([{}, {}, {}])
        task = trace_jobs.add.dispatch(a=2, b=3)
    [request] = exporter.get_finished_spans()
    trace_id = f"{request.context.trace_id:032x}"
    _worker(start_worker, spans_file)
    assert [h.result(timeout=20) for h in many] == [trace_id] * 3
    assert task.result(timeout=20) == 5
    for h in (*many, task):
        [span] = _perform_spans(spans_file, h.id)
        assert (span["trace_id"], span["parent_id"]) == (
            trace_id,
            f"{request.context.span_id:016x}",
        )
