"""The audit log in Redis: one capped stream (``audit`` in :mod:`jobkit.backend.keys`, in
the global slot) of every write an operator made through the HTTP API. An entry's id is
the Redis time it was written; its fields are plain text (see :class:`AuditEntry`).

One XADD per write, with ``MAXLEN ~``: the log keeps about the last ``maxlen`` entries
however many operators act, and Redis trims it as it writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobkit.backend.store import Store

FIELDS = ("role", "action", "target", "count", "detail", "client")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One write: when (Redis time), which role, what (an action and what it was on), how
    many jobs it touched, anything else it said, and the client's address."""

    id: str
    at: datetime
    role: str
    action: str
    target: str
    count: int
    detail: str
    client: str

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out


class AuditLog:
    """Appends to and reads the audit stream of one store."""

    def __init__(self, store: Store, maxlen: int = 10_000) -> None:
        self.store = store
        self.maxlen = maxlen

    def append(
        self, role: str, action: str, target: str, count: int, detail: str = "", client: str = ""
    ) -> str:
        """Record one write; the entry's id."""
        values = (role, action, target, str(count), detail, client)
        flat = [x for pair in zip(FIELDS, values, strict=True) for x in pair]
        key = self.store.keys.audit
        return str(self.store.redis.execute_command("XADD", key, "MAXLEN", "~", self.maxlen,
                                                    "*", *flat))  # fmt: skip

    def entries(self, limit: int = 100, before: str | None = None) -> list[AuditEntry]:
        """The last ``limit`` entries, newest first; with ``before`` (an entry id), those
        older than it."""
        high = "+" if before is None else "(" + before
        raw = self.store.redis.xrevrange(self.store.keys.audit, high, "-", count=limit)
        return [entry for entry in map(_parse, raw) if entry is not None]


def _parse(raw: Any) -> AuditEntry | None:
    try:
        entry_id, fields = raw
        entry_id = str(entry_id)
        ms = int(entry_id.partition("-")[0])
        return AuditEntry(
            id=entry_id,
            at=datetime.fromtimestamp(ms / 1000, tz=timezone.utc),
            role=str(fields.get("role", "")),
            action=str(fields.get("action", "")),
            target=str(fields.get("target", "")),
            count=int(fields.get("count") or 0),
            detail=str(fields.get("detail", "")),
            client=str(fields.get("client", "")),
        )
    except (TypeError, ValueError, AttributeError):
        return None  # an entry something else wrote: not ours to show
