"""Fleet-wide limits a job class declares, checked when the class is defined and enforced
in Redis: ``concurrency`` and ``rate_limit`` by claim.lua, ``unique`` / ``unique_for`` by
enqueue.lua.

Why in the scripts and not in the worker: a limit across every worker needs one place
that sees every claim, and the claim script is that place. A job held back by a limit is
never leased, so nothing has to raise inside ``perform()`` and no attempt is used.

Why per queue: the counts live in the shard of the queue the job was sent to, beside its
ready set, so each check is part of the one script of its transition, on one slot, also
on a Redis Cluster. A class dispatched to two queues gets its limit in each.

The limits travel with the job: enqueue writes them into the job's hash as one field,
``limits`` = ``"<concurrency>,<interval ms>,<unique ms>"`` (0 / 0 / -1 for none), which
:func:`encode` builds and ``_lib.lua`` parses. A class without limits writes nothing, and
the scripts pay one absent field per job for the check.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jobkit.errors import InvalidLimit

_PERIODS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|m|h)\s*$")


@dataclass(frozen=True, slots=True)
class Limits:
    """A class's limits as the scripts take them; the zero value is no limit at all."""

    concurrency: int = 0  # running attempts at once in a queue; 0: any number
    interval_ms: int = 0  # least time between two claims in a queue; 0: no rate limit
    unique_ms: int = -1  # -1: not unique; 0: while queued or running; >0: also at most this

    def encode(self) -> str:
        """The ``limits`` field of the job hash, or '' for a class with none."""
        if self == _NONE:
            return ""
        return f"{self.concurrency},{self.interval_ms},{self.unique_ms}"

    @property
    def unique(self) -> bool:
        return self.unique_ms >= 0


_NONE = Limits()


def parse_rate(text: object, where: str) -> int:
    """``"100/m"`` (``s``, ``m`` or ``h``) as the least interval between two starts, in
    ms, rounded up so the rate is never exceeded."""
    match = _RATE.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidLimit(f"{where} must be '<count>/<s|m|h>' (say '100/m'), not {text!r}")
    count, period = int(match[1]), _PERIODS_MS[match[2]]
    if count < 1 or period / count < 1:
        raise InvalidLimit(
            f"{where} must allow from 1 start per period to 1 per millisecond, not {text!r}"
        )
    return math.ceil(period / count)


def _concurrency(value: object, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidLimit(f"{where} must be a whole number from 1 up (or None), not {value!r}")
    return value


def _unique_ms(unique: object, unique_for: object, where: str) -> int:
    if not isinstance(unique, bool):
        raise InvalidLimit(f"{where}.unique must be True or False, not {unique!r}")
    if unique_for is None:
        return 0 if unique else -1
    if isinstance(unique_for, timedelta):
        seconds = unique_for.total_seconds()
    elif isinstance(unique_for, int | float) and not isinstance(unique_for, bool):
        seconds = float(unique_for)
    else:
        seconds = math.nan
    if not (seconds * 1000 >= 1 and math.isfinite(seconds)):
        raise InvalidLimit(
            f"{where}.unique_for must be a positive timedelta or seconds, not {unique_for!r}"
        )
    return math.ceil(seconds * 1000)


def of_class(cls: Any, where: str) -> Limits:
    """The limits ``cls`` declares (``concurrency``, ``rate_limit``, ``unique``,
    ``unique_for``); :class:`InvalidLimit` names the bad one."""
    rate = cls.rate_limit
    return Limits(
        _concurrency(cls.concurrency, f"{where}.concurrency"),
        0 if rate is None else parse_rate(rate, f"{where}.rate_limit"),
        _unique_ms(cls.unique, cls.unique_for, where),
    )
