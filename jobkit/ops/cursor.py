"""The cursors of the job listings (``jobkit jobs``, live and ``--archived``, and
``GET /jobs``): short enough for one terminal line, and opaque to the caller.

A listing is ordered by one key that a job keeps while it is listed (see
:mod:`jobkit.ops.listing` and :mod:`jobkit.archive.lookup`), so where a page stopped is a
*position*, two whole numbers: the live listing's (time in ms, a hash of the id), the
archive's (time in µs, rows of that time already shown). The cursor carries it with the
listing's kind, its filters' digest (a cursor is refused by a listing with other filters)
and the ``since`` time the first page fixed, so "since 10m" means the same instant on
every page::

    L1.9f3a1c2b4d5e.-.lq3kaa01.2n9c8x7w1q       kind+version . digest . since . position

Numbers are base 36; ``-`` stands for no ``since``. About 45 characters, whatever the
queues, ids or filters.
"""

from __future__ import annotations

from typing import Protocol

from jobkit.errors import InvalidQuery

VERSION = "1"
Position = tuple[int, int]


class Filtered(Protocol):
    """What a cursor is bound to: a listing query with a cursor and a filters' digest."""

    @property
    def cursor(self) -> str | None: ...

    @property
    def since_ms(self) -> int | None: ...

    def digest(self) -> str: ...


def _b36(n: int) -> str:
    if n < 0:
        return "-" + _b36(-n)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def _int36(text: str) -> int:
    if not text or len(text) > 20:
        raise ValueError("not a number")
    return int(text, 36)  # takes a leading '-'


def seal(kind: str, query: Filtered, since_ms: int | None, position: Position) -> str:
    """The cursor of the page after this one: it goes on strictly after ``position``."""
    since = "-" if since_ms is None else _b36(since_ms)
    return ".".join((kind + VERSION, query.digest(), since, _b36(position[0]), _b36(position[1])))


def unseal(kind: str, query: Filtered, foreign: str) -> tuple[int | None, Position | None]:
    """The ``since`` time and the position of ``query``'s cursor; the query's own
    ``since`` and None for a first page. A cursor that is not one, or not of this kind
    of listing (``foreign`` says so), or of other filters, is :class:`InvalidQuery`."""
    if not query.cursor:
        return query.since_ms, None
    parts = query.cursor.strip().split(".")
    try:
        head, digest, since, at, tie = parts
        if head[:-1] != kind or not head.endswith(VERSION):
            raise ValueError(head)
        position = (_int36(at), _int36(tie))
        since_ms = None if since == "-" else _int36(since)
    except ValueError:
        shown = query.cursor[:40]
        raise InvalidQuery(f"{foreign}: {shown!r}") from None
    if digest != query.digest():
        raise InvalidQuery(
            "this cursor belongs to a listing with other filters (status, queue, name): "
            "give the same filters as the page it came from"
        )
    return since_ms, position
