"""The opaque cursors of the job listings (``jobkit jobs``, live and ``--archived``, and
the HTTP API): urlsafe base64 of a small JSON object that carries the listing's filters
(a digest: a cursor is refused by a listing with other filters), the ``since`` time the
first page fixed, and what the listing itself needs to go on (its ``body``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from jobkit.errors import InvalidQuery

if TYPE_CHECKING:
    from jobkit.ops.listing import JobQuery

T = TypeVar("T")
VERSION = 1


def seal(query: JobQuery, since_ms: int | None, body: dict[str, Any]) -> str:
    """The cursor of the page after this one."""
    data = {"v": VERSION, "f": query.digest(), "s": since_ms, **body}
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def unseal(
    query: JobQuery, body: Callable[[dict[str, Any]], T], foreign: str
) -> tuple[int | None, T | None]:
    """The ``since`` time and the body (read by ``body``, which raises ValueError,
    TypeError, KeyError or IndexError at what it does not take) of ``query``'s cursor;
    the query's own ``since`` and None for a first page. A cursor that is not one, or not
    this listing's (``foreign`` says so), or of other filters, is :class:`InvalidQuery`."""
    if not query.cursor:
        return query.since_ms, None
    try:
        raw = query.cursor + "=" * (-len(query.cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(raw.encode()))
        since = data["s"]
        if data["v"] != VERSION or not (since is None or isinstance(since, int)):
            raise ValueError("unknown version")
        read = body(data)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise InvalidQuery(f"{foreign}: {query.cursor[:40]!r}") from None
    if data["f"] != query.digest():
        raise InvalidQuery(
            "this cursor belongs to a listing with other filters (status, queue, name): "
            "give the same filters as the page it came from"
        )
    return since, read
