"""The faces of the dependency scripts (depend.lua, wait.lua, release.lua): their
arguments and replies, the only place their field order is written (see calls.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from jobkit.backend.face import Face


class DependArgs(NamedTuple):
    """depend.lua, on the shard of the job waited for."""

    dep: str
    job: str
    takes: str  # '1': the waiting job takes the result


class DependReply(NamedTuple):
    """depend.lua's answer: 'waiting' (recorded), or how ``dep`` ended already."""

    status: str  # 'waiting' | 'succeeded' | 'dead' | 'cancelled' | 'unknown'
    result: str  # the result JSON, when it succeeded and the job takes it

    @classmethod
    def parse(cls, raw: Any) -> DependReply:
        return cls(str(raw[0]), str(raw[1]))


class WaitArgs(NamedTuple):
    """wait.lua: the new job's record, then the ids it waits for."""

    id: str
    name: str
    lane: str
    params: str | bytes
    priority: int
    max_attempts: int
    timeout: float
    ttl: int
    limits: str  # '' for none
    on_failure: str  # 'cancel' | 'fail'
    takes: str  # the params field that takes results ('' none)
    gather: str  # '1': every dependency's result, as a list

    def argv(self, deps: Iterable[str]) -> list[Any]:
        return [*self, *deps]


class WaitReply(NamedTuple):
    """wait.lua's answer: whether it stored the job, and the job's status now."""

    created: bool
    status: str

    @classmethod
    def parse(cls, raw: Any) -> WaitReply:
        return cls(bool(int(raw[0])), str(raw[1]))


class Notice(NamedTuple):
    """One release.lua group: ``job`` waits for ``dep``, which ended ``outcome``."""

    job: str
    dep: str
    outcome: str  # 'succeeded' | 'dead' | 'cancelled'
    result: str  # its result JSON when the job takes it, else ''


def release_argv(notices: Iterable[Notice]) -> list[str]:
    """release.lua's ARGV: the notices' fields, flat."""
    return [field for n in notices for field in n]


FLOW_FACES: dict[str, Face] = {
    "depend": Face(DependArgs._fields, returns=DependReply._fields),
    "wait": Face(WaitArgs._fields, ("dep",), returns=WaitReply._fields),
    "release": Face(each=Notice._fields, returns_each=("flag",)),
}
