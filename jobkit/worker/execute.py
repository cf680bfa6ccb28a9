"""Running one claimed job: look up its class, validate its payload, perform, record."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from jobkit import progress, registry, tracing, versions
from jobkit.backend.calls import Completion
from jobkit.backend.store import Store
from jobkit.backend.transport import UNAVAILABLE
from jobkit.errors import PayloadTooLarge, UnknownJobError
from jobkit.logs import job_line
from jobkit.models import Claimed, DeadReason, JobError
from jobkit.retry import Decision, backoff
from jobkit.settings import Settings
from jobkit.status import Outcome

log = logging.getLogger("jobkit.worker")

T = TypeVar("T")

# Plain words, not the enum members: they go into a pipe line per job, and formatting
# an Enum costs four calls where a str costs none.
SUCCEEDED, RETRYING, DEAD, LOST = (
    Outcome.SUCCEEDED.value, Outcome.RETRYING.value, Outcome.DEAD.value, Outcome.LOST.value
)  # fmt: skip
STARTED = "started"  # not an outcome: what a job's first log line says


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(value: Any) -> bytes:
    """JSON for a result: orjson plus pydantic models and sets; anything else is an error."""
    return orjson.dumps(value, default=_default)


def persistently(fn: Callable[[], T], give_up_after: float) -> T:
    """Call ``fn``, riding out a Redis outage for up to ``give_up_after`` seconds: tried
    again 50 ms after a failure, doubling to 2 s between tries; the last failure, or one
    that is no outage, is raised."""
    started = time.monotonic()
    for attempt in itertools.count(1):
        try:
            return fn()
        except UNAVAILABLE as exc:
            if time.monotonic() - started >= give_up_after:
                raise
            log.warning("Redis unreachable (%s); retrying", exc)
            time.sleep(backoff(attempt, 0.05, 2.0, 2.0))
    raise AssertionError("unreachable")  # pragma: no cover


def record_failure(
    store: Store,
    settings: Settings,
    job: Claimed,
    decision: Decision,
    error: JobError,
    elapsed: float | None = None,
) -> str:
    """Apply a retry decision to a failed attempt (that ran ``elapsed`` seconds, if
    known); returns the outcome."""
    delay_ms = int(decision.delay * 1000)
    ok = persistently(
        lambda: store.leasing.fail(
            job.id,
            job.token,
            dead=not decision.retry,
            delay_ms=delay_ms,
            reason=decision.reason.value,
            error_json=error.to_json(),
            ttl=settings.result_ttl,
            error_type=error.type,
            error_message=error.message,
        ),
        settings.lease,
    )
    if not ok:
        log.warning(
            "job %s %s: lease lost before its failure was recorded",
            job.name,
            job.id,
            extra=job_line(job.id, job.name, job.attempts, LOST, elapsed),
        )
        return LOST
    if decision.retry:
        log.warning(
            "job %s %s attempt %d failed (%s); retry in %.2fs",
            job.name,
            job.id,
            job.attempts,
            error,
            decision.delay,
            extra=job_line(job.id, job.name, job.attempts, RETRYING, elapsed),
        )
        return RETRYING
    log.error(
        "job %s %s dead after attempt %d (%s): %s",
        job.name,
        job.id,
        job.attempts,
        decision.reason.value,
        error,
        extra=job_line(job.id, job.name, job.attempts, DEAD, elapsed),
    )
    return DEAD


def _error_from(exc: BaseException) -> JobError:
    try:
        message = str(exc)
    except Exception:  # a job's own exception class may fail even at that
        message = f"<{type(exc).__qualname__}: str() failed>"
    trace = "".join(traceback.format_exception(exc))
    return JobError(_text(type(exc).__qualname__), _text(message), _text(trace))


def _text(raw: str) -> str:
    """``raw`` as JSON and Redis can carry it: a lone surrogate (which no codec takes)
    becomes ``?``."""
    try:
        raw.encode("utf-8")
        return raw
    except UnicodeEncodeError:
        return raw.encode("utf-8", "replace").decode("utf-8")


class Executor:
    """Runs claimed jobs in this process; keeps one event loop for ``async def`` jobs."""

    def __init__(self, store: Store, settings: Settings, *, log_jobs: bool = True) -> None:
        self.store = store
        self.settings = settings
        self.log_jobs = log_jobs
        self._loop: asyncio.AbstractEventLoop | None = None
        self.running: Claimed | None = None  # the job run now or last (see jobkit.progress)

    def _await(self, awaitable: Any) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(awaitable)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()

    def _drop_loop(self) -> None:
        """Start the next ``async def`` job on a fresh event loop."""
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_running():
            loop.close()

    def _dead(self, job: Claimed, reason: DeadReason, exc: BaseException) -> str:
        return record_failure(
            self.store, self.settings, job, Decision(False, 0, reason), _error_from(exc)
        )

    def run_or_lost(self, job: Claimed) -> Success | str:
        """:meth:`run`, or ``LOST`` when Redis stayed away longer than the lease while the
        outcome was being recorded: the supervisor stops renewing, the reaper takes over."""
        try:
            return self.run(job)
        except UNAVAILABLE as exc:
            log.error(
                "job %s %s: outcome not recorded (%s)",
                job.name,
                job.id,
                exc,
                extra=job_line(job.id, job.name, job.attempts, LOST),
            )
            return LOST

    def run(self, job: Claimed) -> Success | str:
        """Run ``job``. A success comes back unrecorded (the caller batches completions);
        any other outcome is recorded here. Never raises for what a job or payload does."""
        try:
            cls = registry.lookup(job.name)
        except UnknownJobError as exc:
            return self._dead(job, DeadReason.UNKNOWN_JOB, exc)
        if job.version == cls.version:  # a plain job: 1 == 1
            try:
                params = cls.Params.model_validate_json(job.params_json)
            except ValidationError as exc:
                return self._dead(job, DeadReason.INVALID_PAYLOAD, exc)
        else:
            upgraded = versions.upgraded(cls, job.params_json, job.version)
            if isinstance(upgraded, JobError):
                dead = Decision(False, 0, DeadReason.INVALID_PAYLOAD)
                return record_failure(self.store, self.settings, job, dead, upgraded)
            params = upgraded
        started = time.perf_counter()
        if self.log_jobs:
            log.info(
                "job %s %s started (attempt %d)",
                job.name,
                job.id,
                job.attempts,
                extra=job_line(job.id, job.name, job.attempts, STARTED),
            )
        # only a job dispatched under a span carries a trace: the others ask no more
        traced = tracing.begin(job, cls.__qualname__) if job.trace else None
        task = None
        try:
            task = cls(params, job_id=job.id, attempt=job.attempts)
            # what progress() writes with, should the job report (see jobkit.progress)
            self.running = job
            task._jobkit_run = self  # type: ignore[attr-defined]
            result = task.perform()
            if result is not None and inspect.isawaitable(result):
                result = self._await(result)
        # Every exception ends the attempt, SystemExit, KeyboardInterrupt, GeneratorExit
        # and the like included: they fail it as any other would (not in the default
        # `retry_on`, so dead with reason `exception`), and this child serves on.
        except BaseException as exc:
            if traced is not None:
                tracing.end(traced, exc)
            if not isinstance(exc, Exception):
                self._drop_loop()  # it may have stopped the event loop half way
            if task is not None:
                progress.flush(task)  # a value it reported last, before the outcome
            decision = cls.retry.decide(exc, job.attempts)
            elapsed = time.perf_counter() - started
            return record_failure(
                self.store, self.settings, job, decision, _error_from(exc), elapsed
            )
        if traced is not None:
            tracing.end(traced)
        if task._jobkit_run is not self:  # type: ignore[attr-defined]
            progress.flush(task)  # it reported: its last value before the outcome
        try:
            payload = to_json(result)
        except TypeError as exc:
            return self._dead(job, DeadReason.INVALID_RESULT, exc)
        # JOBKIT_MAX_PAYLOAD, or less if this Redis takes less in one argument (it would
        # refuse the completion, and close the connection, at every try)
        limit = min(self.settings.max_payload, self.store.argument_limit() - 4096)
        if len(payload) > limit:
            too_large = PayloadTooLarge("the result", len(payload), limit)
            return self._dead(job, DeadReason.INVALID_RESULT, too_large)
        ttl = cls.result_ttl or self.settings.result_ttl
        return Success(job, payload, ttl, time.perf_counter() - started, time.monotonic())

    def report(self, done: Sequence[Success], flags: Sequence[bool]) -> None:
        """Log the fate of completions once Redis has answered for them."""
        for item, ok in zip(done, flags, strict=True):
            job = item.job
            if not ok:
                log.warning(
                    "job %s %s finished in %.3fs but its lease was lost: result dropped",
                    job.name,
                    job.id,
                    item.elapsed,
                    extra=job_line(job.id, job.name, job.attempts, LOST, item.elapsed),
                )
            elif self.log_jobs:
                log.info(
                    "job %s %s succeeded in %.3fs",
                    job.name,
                    job.id,
                    item.elapsed,
                    extra=job_line(job.id, job.name, job.attempts, SUCCEEDED, item.elapsed),
                )


class Success(NamedTuple):
    """A job that returned, whose result is not yet recorded (built for every job)."""

    job: Claimed
    payload: bytes
    ttl: int
    elapsed: float
    finished: float  # monotonic

    def completion(self) -> Completion:
        return (self.job.id, self.job.token, self.payload, self.ttl)
