"""Times as the archive's databases take them, written without a datetime per value.

Rows (see :mod:`jobkit.archive.rows`) carry times as epoch milliseconds, as Redis holds
them. SQLite stores a time as the text SQLAlchemy writes (``2026-11-30 02:00:00.123000``,
UTC wall time); PostgreSQL's ``COPY`` takes the same text with the zone
(``...+00:00``). Building it from a cached second (``time.gmtime`` once per second seen)
costs a fraction of a ``datetime`` made and formatted per value. Values that are
``datetime`` already (tests, callers of :class:`~jobkit.archive.writer.Writer`) are
written as SQLAlchemy would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

SECONDS_KEPT = 4096  # seconds' text cached, then the cache starts over
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class TimeText:
    """Epoch ms (or a datetime) as a database's text for a UTC time; None stays None."""

    def __init__(self, zone: str, datetimes: Callable[[datetime], Any]) -> None:
        self._zone = zone  # what follows the fraction: "" (SQLite) or "+00:00"
        self._datetimes = datetimes  # how a datetime value is written
        self._seconds: dict[int, str] = {}

    def __call__(self, value: int | datetime | None) -> Any:
        if value is None:
            return None
        if isinstance(value, datetime):
            return self._datetimes(value)
        second, ms = divmod(value, 1000)
        head = self._seconds.get(second)
        if head is None:
            if len(self._seconds) >= SECONDS_KEPT:
                self._seconds.clear()
            head = self._seconds[second] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        return f"{head}.{ms:03d}000{self._zone}"


def converter(column_type: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """What a value of a column of ``column_type`` goes through before the driver: times
    as :class:`TimeText`, checked on a sample against what SQLAlchemy itself writes;
    other columns, SQLAlchemy's bind processor (None: none needed)."""
    processor = column_type.dialect_impl(dialect).bind_processor(dialect)
    if not isinstance(column_type, DateTime):
        return processor
    if dialect.name == "postgresql" and processor is None:
        return TimeText("+00:00", lambda value: value)
    if dialect.name == "sqlite" and processor is not None:
        text = TimeText("", processor)
        sample = datetime(2001, 2, 3, 4, 5, 6, 7000, tzinfo=timezone.utc)
        ms = (sample - _EPOCH) // timedelta(milliseconds=1)
        if text(ms) == processor(sample) and text(None) is None:
            return text
    # another database, or SQLAlchemy writes times otherwise: through a datetime
    return lambda value: _through_datetime(value, processor)


def _through_datetime(value: Any, processor: Callable[[Any], Any] | None) -> Any:
    if isinstance(value, int):
        value = datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    return processor(value) if processor is not None and value is not None else value
