"""How ``jobkit worker`` and ``jobkit scheduler`` log: text lines (the default) or one
JSON object per line (``--log-format json``, ``JOBKIT_LOG_FORMAT=json``).

Every JSON line has ``time``, ``level``, ``logger`` and ``message``; a line about one job
adds :data:`JOB_FIELDS` (``job_id``, ``job_class``, ``queue``, ``attempt``, ``duration``
in seconds or null, ``outcome``), passed by the caller as ``extra=job_line(...)``. URLs
in a message or traceback are shown with their secrets masked (see :mod:`jobkit.redact`),
in either format: a connection error may quote the URL it was given.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import orjson

from jobkit.backend.keys import queue_of
from jobkit.errors import ConfigurationError
from jobkit.redact import redacted

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
JOB_FIELDS = ("job_id", "job_class", "queue", "attempt", "duration", "outcome")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"
_URL = re.compile(r"\b[a-z][a-z+]*://[^\s'\"<>]+", re.IGNORECASE)


class LogFormat(str, Enum):
    """What a log line looks like."""

    TEXT = "text"
    JSON = "json"

    def __str__(self) -> str:
        return self.value


def job_line(
    job_id: str, name: str, attempt: int, outcome: str, duration: float | None = None
) -> dict[str, Any]:
    """The ``extra`` of a log line about one job: its :data:`JOB_FIELDS`."""
    return {
        "job_id": job_id,
        "job_class": name,
        "queue": queue_of(job_id),
        "attempt": attempt,
        "duration": None if duration is None else round(duration, 6),
        "outcome": outcome,
    }


def masked(text: str) -> str:
    """``text`` with every URL in it shown without its secrets."""
    return _URL.sub(lambda m: redacted(m[0]), text) if "://" in text else text


class TextFormatter(logging.Formatter):
    """The classic line, URLs masked."""

    def format(self, record: logging.LogRecord) -> str:
        return masked(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": masked(record.getMessage()),
            "pid": record.process,
        }
        for name in JOB_FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["traceback"] = masked(self.formatException(record.exc_info))
        return orjson.dumps(line, default=str).decode()


def log_format(raw: str) -> LogFormat:
    """``text`` or ``json`` (any case); ConfigurationError otherwise."""
    try:
        return LogFormat(raw.strip().lower())
    except ValueError:
        raise ConfigurationError(
            f"unknown log format {raw!r} (--log-format or JOBKIT_LOG_FORMAT); use text or json"
        ) from None


def setup_logging(level: str, fmt: str | LogFormat = LogFormat.TEXT) -> None:
    """Log to stderr at ``level`` (a name of :data:`LEVELS`, any case) in ``fmt``."""
    name = level.strip().upper()
    if name not in LEVELS:
        raise ConfigurationError(
            f"unknown log level {level!r} (--log-level or JOBKIT_LOG_LEVEL); "
            f"use one of {', '.join(LEVELS)}"
        )
    handler = logging.StreamHandler(sys.stderr)
    if log_format(str(fmt)) is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(TEXT_FORMAT))
    logging.basicConfig(level=name, handlers=[handler])
