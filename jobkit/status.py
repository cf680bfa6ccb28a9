"""The names of the job state machine, once: statuses and their groups, how an attempt
ended, why a job was dead-lettered, what a cancel did, where a record was read.

Lua writes these words too (``scripts/*.lua``); ``tests/unit/test_status_words.py`` holds
every status and reason literal in the scripts to these enums.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """Where a job is in its life.

    ``scheduled -> queued -> running -> succeeded | retrying -> queued ... | dead``;
    ``waiting -> queued`` once every job it depends on succeeded (or ``cancelled`` /
    ``dead`` when one failed);
    ``unknown`` is what a handle reports for an id Redis does not hold.
    """

    SCHEDULED = "scheduled"
    WAITING = "waiting"  # for the jobs it depends on (dispatch(depends_on=...))
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


ACTIVE_STATUSES = frozenset(
    {Status.SCHEDULED, Status.WAITING, Status.QUEUED, Status.RUNNING, Status.RETRYING}
)
TERMINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.DEAD, Status.CANCELLED})


class DeadReason(str, Enum):
    """Why a job ended in the dead-letter set."""

    EXCEPTION = "exception"
    TIMEOUT = "timeout"
    MEMORY = "memory"  # its child grew past --max-memory while running it, and was killed
    CRASHED = "crashed"
    INVALID_PAYLOAD = "invalid_payload"
    UNKNOWN_JOB = "unknown_job"
    INVALID_RESULT = "invalid_result"
    INVALID_RECORD = "invalid_record"
    # a job it depended on ended dead or cancelled (its on_failure said "fail"; the
    # default cancels it, with this reason too)
    DEPENDENCY_FAILED = "dependency_failed"

    def __str__(self) -> str:
        return self.value


class OnFailure(str, Enum):
    """What a job waiting for others does when one of them ends dead or cancelled."""

    CANCEL = "cancel"  # it is cancelled (the default), reason dependency_failed
    FAIL = "fail"  # it is dead-lettered, reason dependency_failed

    def __str__(self) -> str:
        return self.value


class CancelOutcome(str, Enum):
    """What a cancel did (``JobHandle.cancel()``, ``jobkit cancel``, the HTTP route).

    True for the two that stop the job, false for the refusals, so ``if handle.cancel():``
    reads as it did when cancel returned a bool."""

    CANCELLED = "cancelled"  # it had not started: withdrawn, it never runs
    REQUESTED = "requested"  # it runs: its worker kills it within about a second
    FINISHED = "finished"  # refused: it has finished already
    UNKNOWN = "unknown"  # refused: no such job (never was, or its record expired)

    def __bool__(self) -> bool:
        return self in _STOPS

    def __str__(self) -> str:
        return self.value


_STOPS = frozenset({CancelOutcome.CANCELLED, CancelOutcome.REQUESTED})


class Source(str, Enum):
    """Where a job's record was read: Redis, or the SQL history archive once Redis no
    longer holds the job (its record expired, or was purged)."""

    REDIS = "redis"
    ARCHIVE = "archive"

    def __str__(self) -> str:
        return self.value


class Outcome(str, Enum):
    """How one attempt ended, as a worker tells it: its log lines, its child's report to
    the supervisor, the done / failed counts of ``jobkit workers``."""

    SUCCEEDED = "succeeded"
    RETRYING = "retrying"  # it failed; another attempt is due (after a back-off)
    DEAD = "dead"  # it failed for good: dead-lettered
    LOST = "lost"  # its outcome could not be recorded: the lease was lost, or Redis away
    CANCELLED = "cancelled"  # stopped by a cancel (counted by the supervisor, which kills it)

    def __str__(self) -> str:
        return self.value


# what a child reports for a job it ran (a cancel is the supervisor's), in the order the
# counts are shown
CHILD_OUTCOMES = (Outcome.SUCCEEDED, Outcome.RETRYING, Outcome.DEAD, Outcome.LOST)
FAILED_OUTCOMES = frozenset({Outcome.RETRYING, Outcome.DEAD, Outcome.LOST})


class EventReason(str, Enum):
    """Why an event says an attempt left ``running`` without failing, or a job came back
    (beside the :class:`DeadReason` of a job dead-lettered): ``events`` entries' reason."""

    CRASHED = "crashed"  # its lease lapsed while it ran: the worker died (requeued or dead)
    UNSTARTED = "unstarted"  # its lease lapsed before it began: back with no attempt used
    HANDED_BACK = "handed_back"  # its worker claimed it ahead and gave it back unstarted
    REQUEUED = "requeued"  # its worker stopped (SIGTERM past the grace) and put it back
    REVIVED = "revived"  # a dead job sent back (retry)
    RETRIED = "retried"  # a retrying job sent back before its back-off ended

    def __str__(self) -> str:
        return self.value


# reasons of an attempt that ended without failing (the rates count it as no failure)
NOT_FAILED = frozenset({EventReason.UNSTARTED, EventReason.HANDED_BACK, EventReason.REQUEUED})
PURGED = "purged"  # the to-status of an event whose job was deleted (purged, drained)
