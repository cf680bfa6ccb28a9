"""OpenTelemetry tracing, when ``opentelemetry-api`` is installed (the ``tracing`` extra):
a dispatch made while a span is current carries that trace context with the job (W3C
``traceparent`` / ``tracestate``, through the configured propagator), and the worker runs
each attempt's ``perform()`` in a span of its own, a child of the dispatching one.

Whether the API is there is found once, at import. Without it, or with no span current
at dispatch, nothing is stored with the job; a job without a trace context costs the
worker what it did before tracing existed (the executor asks only ``job.trace``).
Configuring a tracer provider and an exporter is the application's business (in the
module the worker imports with ``-A``): with none, the API's no-op provider is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from jobkit.models import Claimed

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, StatusCode
except ImportError:  # the extra is not installed: nothing is carried, nothing traced
    ENABLED = False
else:
    ENABLED = True
    # a proxy until the application sets its provider, then that provider's tracer
    _tracer = trace.get_tracer("jobkit")


def _propagate() -> Any:
    """OpenTelemetry's propagation API, imported on first use (a span current at
    dispatch, a job carrying a context): it looks its propagators up among the installed
    packages' entry points as it is imported, 3-6 ms of every process's start (measured)
    that a worker running untraced jobs never needed."""
    from opentelemetry import propagate

    return propagate


__all__ = ["ENABLED", "Attempt", "begin", "context", "end"]

# what a trace context may hold: it comes back from Redis, where anything may write
_MAX_CONTEXT = 4096


def context() -> str:
    """The current trace context as JSON (``{"traceparent": ..., ...}``), to store with
    a job dispatched now; '' when OpenTelemetry is not installed or no valid span is
    current (then nothing is stored)."""
    if not ENABLED or not trace.get_current_span().get_span_context().is_valid:
        return ""
    carrier: dict[str, str] = {}
    _propagate().inject(carrier)
    return orjson.dumps(carrier).decode() if carrier else ""


class Attempt:
    """The span of one attempt and the context token that made it current."""

    __slots__ = ("span", "token")

    def __init__(self, span: Any, token: Any) -> None:
        self.span = span
        self.token = token


def begin(job: Claimed, class_name: str) -> Attempt | None:
    """Start, and make current, the span of an attempt of ``job`` (which carries a trace
    context): ``jobkit.perform <name>``, kind CONSUMER, a child of the dispatching span.
    None when there is nothing to continue: OpenTelemetry is not installed here, or the
    stored context is not a JSON object of strings (garbage: the job still runs)."""
    if not ENABLED or len(job.trace) > _MAX_CONTEXT:
        return None
    try:
        carrier = orjson.loads(job.trace)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(carrier, dict) or not all(isinstance(v, str) for v in carrier.values()):
        return None
    parent = _propagate().extract(carrier)
    span = _tracer.start_span(
        f"jobkit.perform {job.name}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "jobkit",
            "jobkit.job.id": job.id,
            "jobkit.job.name": job.name,
            "jobkit.job.class": class_name,
            "jobkit.queue": job.lane.partition("|")[0],
            "jobkit.attempt": job.attempts,
        },
    )
    # current while perform() runs, so the spans it starts are its children (an
    # ``async def`` job's too: its task copies this context)
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    return Attempt(span, token)


def end(attempt: Attempt, exc: BaseException | None = None) -> None:
    """End the attempt's span: status error, with the exception recorded, if it failed."""
    otel_context.detach(attempt.token)
    span = attempt.span
    if exc is not None:
        span.record_exception(exc)
        span.set_status(StatusCode.ERROR, _describe(exc))
    span.end()


def _describe(exc: BaseException) -> str:
    try:
        return f"{type(exc).__qualname__}: {exc}"
    except Exception:  # a job's own exception class may fail even at str()
        return type(exc).__qualname__
