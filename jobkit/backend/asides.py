"""What the scripts set aside: a shared key of a queue (``running``, ``queue:<lane>``, ...)
found holding the wrong type is renamed to ``aside:<name>:<ms>`` by the script that met
it, which goes on with an empty key, and noted in the queue's ``asides`` hash (keys.py):
field = the name it was renamed to, value = JSON ``{key, found, want, kept, at, note}``.

Those notes are written by the scripts and may be read by anyone: every field here is
parsed defensively (a note that is no JSON object is shown as its text), and what they
say is user data to whoever renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Aside:
    """One key set aside: its queue, the key it was, the type it held and the one wanted,
    where it is kept now, when (epoch ms; None if the note says no time) and a note."""

    queue: str
    key: str
    found: str
    want: str
    kept: str
    at_ms: int | None
    note: str

    @property
    def at(self) -> datetime | None:
        """When it was set aside (UTC)."""
        if self.at_ms is None:
            return None
        return datetime.fromtimestamp(self.at_ms / 1000, timezone.utc)

    def as_dict(self) -> dict[str, Any]:
        """``{"queue", "key", "found", "want", "kept", "at", "note"}``, ``at`` ISO 8601."""
        at = self.at
        return {"queue": self.queue, "key": self.key, "found": self.found, "want": self.want,
                "kept": self.kept, "at": at.isoformat() if at else None,
                "note": self.note}  # fmt: skip


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _ms(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse(queue: str, kept: str, raw: Any) -> Aside:
    """One field of a queue's ``asides`` hash (``kept``: the name the key was renamed to)
    and its value, as an :class:`Aside`."""
    try:
        note = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        note = None
    if not isinstance(note, dict):
        return Aside(queue, "?", "?", "?", kept, None, _text(raw))
    return Aside(queue, _text(note.get("key")) or "?", _text(note.get("found")) or "?",
                 _text(note.get("want")) or "?", _text(note.get("kept")) or kept,
                 _ms(note.get("at")), _text(note.get("note")))  # fmt: skip


def parse_hash(queue: str, fields: dict[str, Any]) -> list[Aside]:
    """Every entry of a queue's ``asides`` hash, oldest first."""
    found = [parse(queue, kept, raw) for kept, raw in fields.items()]
    return sorted(found, key=lambda a: (a.at_ms or 0, a.kept))
