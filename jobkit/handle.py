"""``JobHandle``: what ``dispatch()`` returns and ``get_job()`` finds."""

from __future__ import annotations

import time
from typing import Any

from jobkit.backend.store import Store
from jobkit.connection import get_settings
from jobkit.errors import JobFailed, JobNotFound, JobTimeout
from jobkit.models import (
    TERMINAL_STATUSES,
    CancelOutcome,
    JobError,
    JobRecord,
    Progress,
    Source,
    Status,
)

# A result wait blocks on Redis in slices this long, so a lost wake-up costs at most this.
# Well under any client socket timeout (redis-py 8 defaults to 5 s): a blocking read
# that outlives it fails with TimeoutError instead of returning empty.
_WAIT_SLICE = 1.0
# How long a waiter's registration outlives its read of the status: one slice, and margin
# for a slow client between the read and its blocking call.
_WAITER_MS = int(_WAIT_SLICE * 1000) + 5000
_STATUS = {s.value: s for s in Status}  # a dict lookup: cheaper than Status(value)


class JobHandle:
    """A job by id. Reading ``status``/``attempts``/``error`` re-reads an unfinished job.

    A job Redis no longer holds (its record expired) is read from the history archive,
    when there is one: ``source`` says which answered."""

    def __init__(self, job_id: str, store: Store, *, status: str | None = None) -> None:
        self.id = job_id
        self._store = store
        self._record: JobRecord | None = None
        self._status = _STATUS.get(status or "", Status.UNKNOWN)

    def __repr__(self) -> str:
        return f"<JobHandle {self.id} {self._status.value}>"

    def refresh(self, *, wait_ms: int = 0) -> JobHandle:
        """Re-read the job from Redis (``wait_ms``: see :meth:`Reads.get`), or from the
        history archive if Redis holds no such job."""
        record = self._store.reads.get(self.id, wait_ms=wait_ms)
        if record is None:
            # Only a job Redis does not know costs a look at the archive (None, without
            # a database query, when there is no archive): never one Redis holds. Its
            # module is imported here, for a job Redis forgot: a worker and a process
            # that only dispatches never load it (about 1 ms of a start, measured).
            from jobkit.archive.lookup import archived_record

            record = archived_record(self.id)
        self._record = record
        self._status = self._record.status if self._record else Status.UNKNOWN
        return self

    def _current(self) -> JobRecord | None:
        if self._record is None or self._status not in TERMINAL_STATUSES:
            self.refresh()
        return self._record

    @property
    def record(self) -> JobRecord | None:
        """Everything stored about the job (None if unknown)."""
        return self._current()

    @property
    def source(self) -> Source | None:
        """Where the job was read: ``Source.REDIS``, or ``Source.ARCHIVE`` for a job Redis
        no longer holds (then ``status`` and ``result()`` are what the archive recorded);
        None for an unknown job."""
        rec = self._current()
        return rec.source if rec else None

    @property
    def status(self) -> Status:
        self._current()
        return self._status

    @property
    def attempts(self) -> int:
        rec = self._current()
        return rec.attempts if rec else 0

    @property
    def error(self) -> JobError | None:
        """The last attempt's error, if any."""
        rec = self._current()
        return rec.error if rec else None

    @property
    def progress(self) -> Progress | None:
        """How far the latest attempt said it got (``fraction``, ``message``, ``at``,
        ``attempt``), re-read while the job is unfinished; None before that attempt
        reported (a new attempt starts with none), or for an unknown job."""
        rec = self._current()
        return rec.progress if rec else None

    def cancel(self) -> CancelOutcome:
        """Stop the job: ``CANCELLED`` if it had not started (it never runs),
        ``REQUESTED`` if it runs (its worker kills it within about a second and it ends
        ``cancelled``, not retried; :meth:`result` raises :class:`JobFailed` then), or a
        refusal: ``FINISHED``, ``UNKNOWN``. The first two are true, the refusals false."""
        outcome = self._store.cancel(self.id, get_settings().result_ttl)
        self.refresh()
        return outcome

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job to finish and return its result.

        Blocks on Redis (no polling). Raises :class:`JobTimeout` after ``timeout``
        seconds, :class:`JobFailed` if it ended dead or cancelled, :class:`JobNotFound`
        for an unknown id. A job Redis no longer holds answers from the history archive.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            rec = self.refresh(wait_ms=_WAITER_MS)._record
            if rec is None:
                raise JobNotFound(f"no job {self.id}")
            if rec.source is Source.ARCHIVE and rec.status not in TERMINAL_STATUSES:
                # nothing will wake a wait: Redis lost the job before it ended
                raise JobNotFound(
                    f"no job {self.id} in Redis; the history archive last saw it {rec.status.value}"
                )
            if rec.status is Status.SUCCEEDED:
                return rec.result
            if rec.status in TERMINAL_STATUSES:
                raise JobFailed(
                    self.id, rec.status.value, str(rec.error) if rec.error else rec.reason
                )
            remaining = _WAIT_SLICE if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise JobTimeout(f"job {self.id} still {rec.status.value} after {timeout}s")
            # BLMOVE takes whole milliseconds; never 0, which would mean "forever"
            self._store.reads.wait_done(self.id, max(0.001, min(remaining, _WAIT_SLICE)))
