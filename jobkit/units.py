"""Sizes and durations as people write them in options and ``JOBKIT_*`` variables."""

from __future__ import annotations

import re

_NUMBER = r"\s*(\d+(?:\.\d*)?|\.\d+)\s*"
_SIZE = re.compile(_NUMBER + r"([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)
_DURATION = re.compile(_NUMBER + r"([smhd]?)\s*", re.IGNORECASE)
_MB_PER = {"k": 1 / 1024, "": 1.0, "m": 1.0, "g": 1024.0, "t": 1024.0**2}
_SECONDS_PER = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def megabytes(raw: str | float) -> float:
    """A size in MB (2**20 bytes): ``512MB``, ``1GB``, ``1.5g``, ``300`` (MB), ``512MiB``;
    ValueError, saying what is accepted, for anything else."""
    if isinstance(raw, int | float):
        return _non_negative(float(raw), raw)
    found = _SIZE.fullmatch(raw)
    if not found or (found[2] == "" and raw.strip()[-1:].lower() == "b"):  # "300b": bytes?
        raise ValueError(
            f"{raw!r} is not a size: use MB (300), or a number with KB, MB, GB or TB (512MB, 1GB)"
        )
    return float(found[1]) * _MB_PER[found[2].lower()]


def seconds(raw: str | float) -> float:
    """A duration in seconds: ``90``, ``90s``, ``30m``, ``2h``, ``1d``; ValueError, saying
    what is accepted, for anything else."""
    if isinstance(raw, int | float):
        return _non_negative(float(raw), raw)
    found = _DURATION.fullmatch(raw)
    if not found:
        raise ValueError(
            f"{raw!r} is not a duration: use seconds (90), or a number with s, m, h or d (30m, 2h)"
        )
    return float(found[1]) * _SECONDS_PER[found[2].lower()]


def _non_negative(value: float, raw: object) -> float:
    if not value >= 0:  # also NaN
        raise ValueError(f"{raw!r} is negative")
    return value
