"""Templates of the dashboard (Jinja2, from package data) and the filters they use.

Autoescape is on for every template: everything a job carries (params, results, error
messages, tracebacks, ids, class names) is user data and reaches the page as text. No
template marks user data safe; JSON for the charts goes through ``tojson``, which escapes
``<``, ``>`` and ``&`` as well.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cache
from typing import Any
from urllib.parse import quote

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape


def ago(value: datetime | float | int | None, now: float | None = None) -> str:
    """How long ago: "12s ago", "3m ago", "5h ago", "2d ago" ("in 4m" for the future)."""
    if value is None:
        return "-"
    at = value.timestamp() if isinstance(value, datetime) else float(value)
    seconds = (datetime.now(timezone.utc).timestamp() if now is None else now) - at
    text = span(abs(seconds))
    return f"in {text}" if seconds < 0 else f"{text} ago"


def span(seconds: float | None) -> str:
    """A duration in the largest unit that keeps it short: 850ms, 12s, 3m, 5h, 2d."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size * 1.5 or (unit == "m" and seconds >= 120):
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"


def ms(value: int | float | None) -> str:
    return "-" if value is None else span(value / 1000)


def when(value: datetime | str | float | None) -> str:
    """A time as UTC, to the second (ISO text is parsed first; a number is epoch s)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, (int, float)):
        at = datetime.fromtimestamp(value, tz=timezone.utc)
    elif isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        at = value
    return at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def zoned(value: str | None) -> str:
    """An ISO time in its own zone, to the minute, with its offset ("2026-12-08 02:00
    +01:00"): a schedule's times read as the schedule says them."""
    if not value:
        return "-"
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return value
    offset = at.strftime("%z")
    shown = f"{offset[:3]}:{offset[3:]}" if offset else ""
    return f"{at.strftime('%Y-%m-%d %H:%M')} {shown}".strip()


def pretty(value: Any) -> str:
    """A JSON value as indented text (escaped by the template like any text)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except TypeError:
        return str(value)


def path(value: str) -> str:
    """One URL path segment: every reserved character quoted (job ids and schedule keys
    hold ':' and '#')."""
    return quote(str(value), safe="")


def number(value: int | float | None) -> str:
    if value is None:
        return "?"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{int(value):,}"


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("jobkit.web.dashboard", "templates"),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=ago, span=span, ms=ms, when=when, zoned=zoned, pretty=pretty, path=path,
                       number=number)  # fmt: skip
    return env


def render(template: str, **context: Any) -> str:
    """``template`` rendered with ``context``."""
    return environment().get_template(template).render(**context)
