"""jobkit's refusals as HTTP status codes, for any web framework (the API's routes, a
Flask app's error handler): a refusal is the caller's to fix, so it is a 4xx with a
message, never a 500; Redis or the archive out of reach is a 503.

==========================================================  =====
an unknown job, job class, schedule                            404
a transition the job's state refuses (retry a queued job)      409
params over ``JOBKIT_MAX_PAYLOAD``                             413
invalid params, options, names, filters, cursors               422
Redis or the history archive out of reach                      503
==========================================================  =====

Messages never quote a URL's password (``describe_failure`` masks it) nor a token.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from jobkit.backend.transport import UNAVAILABLE
from jobkit.connection import describe_failure
from jobkit.errors import (
    DispatchError,
    HistoryUnavailable,
    InvalidName,
    InvalidQuery,
    InvalidTransition,
    JobNotFound,
    PayloadTooLarge,
    RegistryError,
    SerializationError,
    UnknownQueue,
    UnknownSchedule,
)

_STATUS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], int], ...] = (
    ((JobNotFound, RegistryError, UnknownSchedule), 404),
    (InvalidTransition, 409),
    (PayloadTooLarge, 413),
    ((InvalidQuery, UnknownQueue, InvalidName, DispatchError, SerializationError), 422),
    (HistoryUnavailable, 503),
)


def status_of(exc: Exception) -> int | None:
    """The status code of a refusal (None: not one; a bug, left to be a 500)."""
    if isinstance(exc, ValidationError):
        return 422
    for kinds, code in _STATUS:
        if isinstance(exc, kinds):
            return code
    if isinstance(exc, UNAVAILABLE):
        return 503
    return None


def detail_of(exc: Exception) -> Any:
    """What the body says about ``exc``."""
    if isinstance(exc, ValidationError):
        # without the inputs: they may hold what JSON cannot (NaN), which would fail the
        # response, and they are the caller's own anyway
        return exc.errors(include_url=False, include_input=False, include_context=False)
    if isinstance(exc, UNAVAILABLE):
        return describe_failure(exc)
    return str(exc)
