"""The options of ``dispatch()`` checked and turned into what a job record holds:
``delay`` and ``at`` as milliseconds, ``priority`` within its range; and Celery's
spelling of arguments and options turned into jobkit's."""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel

from jobkit.errors import DispatchError

MAX_PRIORITY = 1000

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
# Due times are read back as datetimes, which end with year 9999: a later one would
# make the job unreadable. A delay keeps a day clear of that end, as it is added to
# Redis's clock, not ours.
_LATEST_MS = (datetime.max.replace(tzinfo=timezone.utc) - _EPOCH) // _MS
_DELAY_MARGIN_MS = 86_400_000


def seconds(value: float | timedelta | None) -> float:
    if value is None:
        return 0.0
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def delay_ms(delay: object) -> int:
    """``delay`` (seconds or a timedelta) in ms; refused unless finite, not negative,
    and due before datetimes end."""
    seconds = math.nan
    if isinstance(delay, timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, numbers.Real) and not isinstance(delay, bool):
        try:
            seconds = float(delay)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
    else:
        raise DispatchError(f"delay must be seconds or a timedelta, not {type(delay).__name__}")
    latest = _LATEST_MS - _DELAY_MARGIN_MS - time.time() * 1000
    if not 0 <= seconds * 1000 <= latest:  # NaN fails both comparisons
        raise DispatchError(
            f"delay must be a finite number of seconds, at least 0 and due before the year "
            f"10000 (at most {latest / 1000:.4g}), not {delay!r}"
        )
    return int(seconds * 1000)


def epoch_ms(at: object) -> int:
    """``at`` in ms since the epoch; naive means local time, as ``datetime.now()`` gives."""
    if not isinstance(at, datetime):
        raise DispatchError(f"at must be a datetime, not {type(at).__name__}")
    try:
        aware = at if at.tzinfo is not None else at.astimezone()
        ms = (aware - _EPOCH) // _MS  # exact, and no overflow for any zone's year 9999
    except (OverflowError, ValueError, OSError) as exc:
        raise DispatchError(f"at={at!r} cannot be placed in time: {exc}") from exc
    if ms > _LATEST_MS:
        raise DispatchError(f"at={at!r} is after the last datetime (9999-12-31 UTC)")
    return ms


def priority(priority: object) -> int:
    if isinstance(priority, int) and not isinstance(priority, bool):  # noqa: SIM102
        if -MAX_PRIORITY <= priority <= MAX_PRIORITY:  # two rules, two lines
            return priority
    raise DispatchError(f"priority must be an integer within ±{MAX_PRIORITY}, not {priority!r}")


def by_field_order(
    owner: str, model: type[BaseModel], args: Sequence[Any], params: Mapping[str, Any]
) -> dict[str, Any]:
    """Positional ``args`` named by ``model``'s fields in order, with ``params`` (Celery's
    ``delay(*args)`` on a job class); too many, or one given twice, is a DispatchError."""
    fields = list(model.model_fields)
    if len(args) > len(fields):
        raise DispatchError(
            f"{owner} takes at most {len(fields)} positional argument(s) "
            f"({', '.join(fields) or 'none'}), not {len(args)}"
        )
    named = dict(zip(fields, args, strict=False))
    twice = sorted(set(named) & set(params))
    if twice:
        raise DispatchError(f"{owner}: {', '.join(twice)} given twice")
    return {**named, **params}


def celery_options(
    countdown: float | timedelta | None,
    eta: datetime | None,
    queue: str | None,
    priority: int | None,
    task_id: str | None,
) -> dict[str, Any]:
    """``apply_async``'s options as ``dispatch()`` names them: ``countdown`` is its
    ``delay``, ``eta`` its ``at``, ``task_id`` its ``job_id``."""
    return {"delay": countdown, "at": eta, "queue": queue, "priority": priority,
            "job_id": task_id}  # fmt: skip
