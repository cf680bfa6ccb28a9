"""The one exception tree of jobkit.

::

    JobkitError
    ├── ConfigurationError        bad settings, unknown JOBKIT_* variable, no Redis to use
    ├── RegistryError             duplicate or unknown job name
    │   └── UnknownJobError       a payload names a job no module registered
    ├── InvalidName               a job name, job id, queue or tag outside its alphabet
    ├── DispatchError             a dispatch option out of range (delay, at, priority)
    ├── InvalidLimit              a job class's concurrency, rate_limit or unique_for
    ├── InvalidProgress           progress() given a fraction outside 0..1, or a message
    │                             that is not text
    ├── PayloadTooLarge           params or a result over JOBKIT_MAX_PAYLOAD bytes
    ├── JobNotFound               an id that Redis does not know
    ├── UnknownQueue              a queue no job was sent to and no worker serves
    ├── UnknownSchedule           a schedule key no loaded job class declares
    ├── JobTimeout                JobHandle.result() waited longer than asked
    ├── JobFailed                 JobHandle.result() on a dead or cancelled job
    ├── InvalidTransition         e.g. retrying a job that is not dead
    ├── InvalidQuery              a listing's limit or cursor out of range (jobkit jobs)
    ├── HistoryUnavailable        the history archive's database could not be read
    ├── SerializationError        a result or payload that is not JSON
    ├── NotDurable                a durable dispatch that too few replicas acknowledged
    ├── ReplyLost                 a call that may not be sent twice lost its reply: it may
    │                             or may not have run (also a redis ConnectionError)
    └── RetryLater                raised by perform() to ask for another attempt later

``pydantic.ValidationError`` is raised as is for invalid params (a keyword that is
neither a field nor an option among them): users already know it.
Everything else ``dispatch()`` refuses is one of ``InvalidName``, ``DispatchError``,
``PayloadTooLarge`` or ``SerializationError``, and nothing is written. The first three
are also ``ValueError``s, as a bad argument is in Python.
"""

from __future__ import annotations

from datetime import timedelta


class JobkitError(Exception):
    """Base of every error jobkit raises."""


class ConfigurationError(JobkitError):
    """Settings are invalid or incomplete."""


class RegistryError(JobkitError):
    """A job class could not be registered or looked up."""


class UnknownJobError(RegistryError):
    """A payload names a job that no imported module registered."""


class InvalidName(JobkitError, ValueError):
    """A job name, job id, queue or tag uses characters outside its alphabet, or is too
    long (the alphabets are in :mod:`jobkit.names`)."""


class DispatchError(JobkitError, ValueError):
    """``dispatch()`` was given an option out of range or of the wrong type (``delay``,
    ``at``, ``priority``), or params that are not a mapping; nothing was written."""


class InvalidLimit(JobkitError, ValueError):
    """A job class declares a limit jobkit cannot enforce: ``concurrency`` not a whole
    number from 1 up, ``rate_limit`` not ``"<count>/<s|m|h>"`` (or faster than one start
    per millisecond), ``unique_for`` not a positive duration. Raised when the class is
    defined."""


class InvalidProgress(JobkitError, ValueError):
    """``BaseJob.progress()`` was given a fraction that is not a number from 0 to 1 (a
    bool, NaN or an infinity included), or a message that is not a string; nothing was
    recorded."""


class PayloadTooLarge(JobkitError, ValueError):
    """A job's params or result, as JSON, is larger than ``JOBKIT_MAX_PAYLOAD`` bytes."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(
            f"{what} is {size:,} bytes of JSON, over the limit of {limit:,} bytes "
            "(JOBKIT_MAX_PAYLOAD); pass large data by reference (a URL, a file path, a key)"
        )
        self.size = size
        self.limit = limit


class JobNotFound(JobkitError):
    """No job with this id exists (it never did, or its record expired)."""


class UnknownQueue(JobkitError, ValueError):
    """A queue named in an operation (pause, resume, purge) that the queue registry does
    not hold: no job was ever sent to it and no worker serves it."""


class UnknownSchedule(JobkitError, ValueError):
    """A cron schedule named in an operation (pause, resume, run now) by a key that no
    schedule of the loaded job classes has."""


class InvalidQuery(JobkitError, ValueError):
    """A job listing asked for what it cannot give: a limit out of range, or a cursor
    that is not one, or that a listing with other filters returned."""


class HistoryUnavailable(JobkitError):
    """The history archive's database (``JOBKIT_HISTORY_URL``, or the default SQLite
    file) could not be read or written: unreachable, busy, refused, or not a database
    (an archiver keeps its batch and tries again later). The message names it with any
    password masked."""


class JobTimeout(JobkitError):
    """Waiting for a job's result took longer than the caller allowed."""


class JobFailed(JobkitError):
    """The job ended without a result (dead-lettered or cancelled)."""

    def __init__(self, job_id: str, status: str, error: str | None) -> None:
        super().__init__(f"job {job_id} ended {status}: {error or 'no error recorded'}")
        self.job_id = job_id
        self.status = status
        self.error = error


class InvalidTransition(JobkitError):
    """The requested state change does not apply to the job's current state."""


class SerializationError(JobkitError):
    """A value could not be turned into JSON, or into JSON a worker could read back (NaN
    or infinity, nesting or numbers beyond what the worker's parser accepts)."""


class NotDurable(JobkitError):
    """A dispatch with ``JOBKIT_DURABLE_REPLICAS`` set was acknowledged by fewer replicas
    than asked within ``JOBKIT_DURABLE_TIMEOUT``. The primary has the jobs (they may run),
    but a failover now could lose them: they are not acknowledged. ``job_ids`` names them;
    dispatching again with a chosen ``job_id`` never creates a job twice."""

    def __init__(
        self, job_ids: list[str], acknowledged: int, required: int, timeout_ms: int
    ) -> None:
        more = len(job_ids) - 3
        shown = ", ".join(job_ids[:3]) + (f" and {more} more" if more > 0 else "")
        super().__init__(
            f"{len(job_ids)} job(s) ({shown}) reached the primary but {acknowledged} of "
            f"{required} replica(s) acknowledged them within {timeout_ms} ms "
            "(JOBKIT_DURABLE_REPLICAS): they may exist and run, but are not durable, "
            "as a failover now could lose them"
        )
        self.job_ids = job_ids
        self.acknowledged = acknowledged
        self.required = required


class RetryLater(JobkitError):
    """Raise from ``perform()`` to run the job again after ``delay`` (counts as an attempt)."""

    def __init__(self, delay: float | timedelta = 0.0, reason: str = "") -> None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        super().__init__(reason or f"retry in {seconds:g}s")
        self.delay = seconds


class ReplyLost(JobkitError):
    """The connection failed after a call that may not be sent twice went out (retry,
    purge, cancel, drain): it may or may not have run. Look at the job before trying again.
    What jobkit raises is also a ``redis.ConnectionError``, so code that handles Redis
    going away handles this too."""
