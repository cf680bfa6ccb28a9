"""jobkit: typed, reliable background jobs on Redis.

>>> from jobkit import BaseJob
>>> class Hello(BaseJob):
...     class Params(BaseModel):
...         who: str
...     def perform(self) -> str:
...         return f"hello {self.params.who}"
>>> Hello.dispatch(who="world").result(timeout=10)   # with `jobkit worker` running
"""

from jobkit.connection import configure, get_settings, get_store
from jobkit.errors import (
    ConfigurationError,
    DispatchError,
    InvalidLimit,
    InvalidName,
    InvalidTransition,
    JobFailed,
    JobkitError,
    JobNotFound,
    JobTimeout,
    NotDurable,
    PayloadTooLarge,
    RegistryError,
    RetryLater,
    SerializationError,
    UnknownJobError,
)
from jobkit.handle import JobHandle
from jobkit.job import BaseJob, NoParams, get_job
from jobkit.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    CancelOutcome,
    DeadReason,
    JobError,
    Status,
)
from jobkit.retry import Retry
from jobkit.schedule import Cron, cron
from jobkit.settings import Settings

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "BaseJob",
    "CancelOutcome",
    "ConfigurationError",
    "Cron",
    "DeadReason",
    "DispatchError",
    "InvalidLimit",
    "InvalidName",
    "InvalidTransition",
    "JobError",
    "JobFailed",
    "JobHandle",
    "JobNotFound",
    "JobTimeout",
    "JobkitError",
    "NoParams",
    "NotDurable",
    "PayloadTooLarge",
    "RegistryError",
    "Retry",
    "RetryLater",
    "SerializationError",
    "Settings",
    "Status",
    "UnknownJobError",
    "configure",
    "cron",
    "get_job",
    "get_settings",
    "get_store",
]

__version__ = "0.1.0"
