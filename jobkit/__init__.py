"""jobkit: typed, reliable background jobs on Redis.

>>> from jobkit import BaseJob
>>> class Hello(BaseJob):
...     class Params(BaseModel):
...         who: str
...     def perform(self) -> str:
...         return f"hello {self.params.who}"
>>> Hello.dispatch(who="world").result(timeout=10)   # with `jobkit worker` running
"""

from jobkit.imports import no_collection as _no_collection

with _no_collection():  # redis-py and pydantic come with it: see jobkit/imports.py
    from jobkit.app import Queue
    from jobkit.connection import configure, get_settings, get_store
    from jobkit.cron import Cron, cron
    from jobkit.errors import (
        ConfigurationError,
        DispatchError,
        HistoryUnavailable,
        InvalidLimit,
        InvalidName,
        InvalidProgress,
        InvalidQuery,
        InvalidTransition,
        JobFailed,
        JobkitError,
        JobNotFound,
        JobTimeout,
        NotDurable,
        PayloadTooLarge,
        RegistryError,
        ReplyLost,
        RetryLater,
        SerializationError,
        UnknownJobError,
        UnknownQueue,
        UnknownSchedule,
    )
    from jobkit.handle import JobHandle
    from jobkit.job import BaseJob, NoParams, get_job
    from jobkit.models import JobError, Progress
    from jobkit.retry import Retry
    from jobkit.settings import Settings
    from jobkit.status import (
        ACTIVE_STATUSES,
        TERMINAL_STATUSES,
        CancelOutcome,
        DeadReason,
        Outcome,
        Source,
        Status,
    )
    from jobkit.tasks import Task, task
    from jobkit.workflow import Flow, Signature, chain, group

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "BaseJob",
    "CancelOutcome",
    "ConfigurationError",
    "Cron",
    "DeadReason",
    "DispatchError",
    "Flow",
    "HistoryUnavailable",
    "InvalidLimit",
    "InvalidName",
    "InvalidProgress",
    "InvalidQuery",
    "InvalidTransition",
    "JobError",
    "JobFailed",
    "JobHandle",
    "JobNotFound",
    "JobTimeout",
    "JobkitError",
    "NoParams",
    "NotDurable",
    "Outcome",
    "PayloadTooLarge",
    "Progress",
    "Queue",
    "RegistryError",
    "ReplyLost",
    "Retry",
    "RetryLater",
    "SerializationError",
    "Settings",
    "Signature",
    "Source",
    "Status",
    "Task",
    "UnknownJobError",
    "UnknownQueue",
    "UnknownSchedule",
    "chain",
    "configure",
    "cron",
    "get_job",
    "get_settings",
    "get_store",
    "group",
    "task",
]

__version__ = "0.1.0"
