"""The faces of the upkeep scripts (pause.lua, drain.lua, trim.lua, recount.lua,
repair.lua, register.lua, worker.lua): queues, indexes and the worker registry, the only
place their field order is written (see calls.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from jobkit.backend.face import Face


class PauseArgs(NamedTuple):
    """pause.lua."""

    action: str  # 'pause' | 'resume'
    queue: str


class DrainArgs(NamedTuple):
    """drain.lua."""

    queue: str


class TrimArgs(NamedTuple):
    """trim.lua."""

    oldest: int
    limit: int


class RecountArgs(NamedTuple):
    """recount.lua."""

    group: str


class RepairArgs(NamedTuple):
    """repair.lua: check (``fix`` 0) or mend one batch of records, or of the entries of
    the index they are ``listed_in``, then the ids."""

    fix: int
    lease_ms: int
    listed_in: str  # '': the ids are of records

    def argv(self, ids: Iterable[str]) -> list[Any]:
        return [*self, *ids]


class RegisterReply(NamedTuple):
    """register.lua: where a registry of another type was kept ('' if none was), and
    how many queues were new to the registry."""

    kept: str
    added: int

    @classmethod
    def parse(cls, raw: Sequence[Any]) -> RegisterReply:
        kept = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0] or "")
        return cls(kept, int(raw[1]))


def triples(raw: Sequence[Any]) -> list[tuple[str, str, str]]:
    """A flat reply of triples (repair.lua's id, index, state) as triples."""
    return [(str(raw[i]), str(raw[i + 1]), str(raw[i + 2])) for i in range(0, len(raw), 3)]


class WorkerArgs(NamedTuple):
    """worker.lua: a worker's beat, leaving, or the prune of stale ones."""

    name: str
    action: str  # 'beat' | 'gone' | 'prune'
    ttl: float

    def argv(self, fields: Iterable[tuple[str, Any]] = ()) -> list[Any]:
        out: list[Any] = list(self)
        for pair in fields:
            out += pair
        return out


_FLAG = ("flag",)  # as calls.py's: a 1 / 0 answer
UPKEEP_FACES: dict[str, Face] = {
    "worker": Face(WorkerArgs._fields, ("field", "value"), returns=("pruned",)),
    "pause": Face(PauseArgs._fields, returns=_FLAG),
    "drain": Face(DrainArgs._fields, returns=("count",)),
    "recount": Face(RecountArgs._fields, returns=_FLAG),
    "trim": Face(TrimArgs._fields, returns=("count",)),
    "repair": Face(RepairArgs._fields, ("id",), returns_each=("id", "index", "state")),
    "register": Face(each=("queue",), returns=RegisterReply._fields),
}
