"""Payload versions: a job class's ``version`` and ``upgrade()`` (see BaseJob), and what a
worker does with a job stored under another version than its class's.

The version travels with the job only when it is above 1 (see enqueue.lua and
claim.lua), so a job of a class that never declared one costs nothing more to claim or
run; a job stored without one (before versions existed) is version 1.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ValidationError

from jobkit.models import JobError

if TYPE_CHECKING:
    from jobkit.job import BaseJob

# the error type a dead-lettered job's record shows (reason invalid_payload): a stable
# word to search for, whatever upgrade() or validation raised
ERROR_TYPE = "PayloadVersion"


def check_class(cls: type[BaseJob[Any]], where: str) -> None:
    """Refuse a ``version`` that is not a whole number from 1, when the class is defined
    (a worker could never tell which payloads it may read)."""
    version = cls.version
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TypeError(f"{where}.version must be a whole number from 1, not {version!r}")


def upgraded(cls: type[BaseJob[Any]], params_json: str, stored: int) -> BaseModel | JobError:
    """The params of a job stored as version ``stored`` of ``cls``, upgraded to the
    class's version and validated; or, when that cannot be done, the error to
    dead-letter it with (invalid_payload), naming both versions: a payload newer than
    the class (an older worker meets it), an ``upgrade()`` that raised or returned no
    dict, params that do not validate once upgraded."""
    head = f"payload version {stored}, {cls.__qualname__} is version {cls.version}"
    if stored > cls.version:
        return JobError(ERROR_TYPE, f"{head}: a newer payload than this worker's class reads")
    try:
        raw = orjson.loads(params_json)
        if not isinstance(raw, dict):
            raise TypeError(f"params are a JSON {type(raw).__name__}, not an object")
        params = cls.upgrade(raw, stored)
        if not isinstance(params, dict):
            raise TypeError(f"it returned a {type(params).__name__}, not a dict")
    except Exception as exc:  # a user's upgrade() may raise anything: the job is dead
        return _failed(f"{head}: upgrade() raised {exc!r}", exc)
    try:
        # validated as JSON, as a same-version job's params are: the same rules apply
        return cls.Params.model_validate_json(orjson.dumps(params))
    except (ValidationError, TypeError) as exc:  # TypeError: a value JSON cannot carry
        return _failed(f"{head}: the upgraded params are invalid: {exc}", exc)


def _failed(message: str, exc: BaseException) -> JobError:
    return JobError(ERROR_TYPE, message, "".join(traceback.format_exception(exc)))
