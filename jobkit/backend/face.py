"""What a Lua script's header must say, as its Python face declares it (see calls.py;
tests/unit/test_calls.py reads each header against its face)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Face:
    """What a script's header must say: its ARGV names (fixed, then each repeated
    group's), and its reply's (fixed, each repeated group's, an optional last element)."""

    argv: tuple[str, ...] = ()
    each: tuple[str, ...] = ()
    returns: tuple[str, ...] = ()
    returns_each: tuple[str, ...] = ()
    returns_tail: tuple[str, ...] = ()
