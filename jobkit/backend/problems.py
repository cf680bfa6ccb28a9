"""Keys Redis holds with the wrong type, named for whoever reads them.

A read across queues goes on past a key it cannot read (a list where a zset belongs,
a string where a worker's hash belongs): the command that asked lists the rest and names
the key, rather than failing with Redis's ``WRONGTYPE`` message, which names none and
reads like a connection problem. Every read that skips a key builds its message here,
so ``jobkit info``, the listings and ``GET /doctor`` say it the same way::

    {jobkit:t}:dead: holds a list, not a zset
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import redis

T = TypeVar("T")


@dataclass(frozen=True)
class Found(Generic[T]):
    """What a read found, and the keys it had to skip (one message each, see the module
    doc): an empty ``problems`` means nothing was skipped."""

    items: list[T]
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Failed:
    """A key whose read Redis refused: the key, the type the read wanted, and the error."""

    key: str
    want: str
    error: Exception


def refused(reply: Any) -> bool:
    """Whether a pipelined reply is Redis refusing the command (a key of another type)."""
    return isinstance(reply, redis.ResponseError)


def name_keys(client: Any, failed: Sequence[Failed]) -> list[str]:
    """One message per key of ``failed``, saying what type it holds (one TYPE per key, in
    one pipeline, read only when some read failed)."""
    if not failed:
        return []
    pipe = client.pipeline(transaction=False)
    for f in failed:
        pipe.type(f.key)
    found = pipe.execute(raise_on_error=False)
    out = []
    for f, kind in zip(failed, found, strict=True):
        wrong = str(f.error).startswith("WRONGTYPE")
        if wrong and isinstance(kind, str) and kind not in ("none", f.want):
            out.append(f"{f.key}: holds a {kind}, not a {f.want}")
        else:  # changed since it was read, or another refusal: Redis's own words
            out.append(f"{f.key}: {f.error}")
    return out


def unique(problems: Iterable[str]) -> list[str]:
    """``problems`` without repeats, in their order (two reads may meet one key)."""
    return list(dict.fromkeys(problems))
