"""Jobs for tests/integration/test_tracing.py (a worker imports this module with ``-A
tests.support.trace_jobs``). When ``TRACE_JOBS_SPANS`` names a file, this module
configures the OpenTelemetry SDK in the worker's processes to write every finished span
there as one JSON line: the test, another process, reads them back."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import jobkit
from jobkit import BaseJob, Retry

QUEUE = "traces"
SPANS = "TRACE_JOBS_SPANS"  # not JOBKIT_: jobkit refuses settings it does not know


def span_line(span: ReadableSpan) -> dict[str, Any]:
    """What the test checks of a finished span."""
    context, parent = span.context, span.parent
    assert context is not None
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "kind": span.kind.name,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "events": [event.name for event in span.events],
        "pid": os.getpid(),
    }


class JsonLinesExporter(SpanExporter):
    """Appends each span to a file, one JSON object a line (written at once: a worker
    child may be killed at any time, and the test reads while it runs)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = b"".join(orjson.dumps(span_line(s)) + b"\n" for s in spans)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines)  # one write of O_APPEND: lines of two children never mix
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS


if os.environ.get(SPANS):
    provider = TracerProvider(resource=Resource.create({"service.name": "jobkit-test-worker"}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(os.environ[SPANS])))
    trace.set_tracer_provider(provider)

tracer = trace.get_tracer("tests.support.trace_jobs")


class Traced(BaseJob):
    """Starts a span of its own inside perform(), and says the trace it ran in."""

    name = "traces.traced"
    queue = QUEUE

    def perform(self) -> str:
        with tracer.start_as_current_span("inner work"):
            pass
        return f"{trace.get_current_span().get_span_context().trace_id:032x}"


class Flaky(BaseJob):
    """Fails both its attempts."""

    name = "traces.flaky"
    queue = QUEUE
    retry = Retry(max_attempts=2, base=0.01, jitter=False)

    def perform(self) -> None:
        raise ValueError("no luck this time")


@jobkit.task(name="traces.add", queue=QUEUE)
def add(a: int, b: int) -> int:
    """A function task: dispatched the same way, through BaseJob.new_job."""
    return a + b
