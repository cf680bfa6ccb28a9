"""The audit log of every write through the HTTP API (``GET /audit``, ``jobkit audit``):
who (the role), what, on what, how many jobs, when. Kept in Redis, capped at about
``JOBKIT_AUDIT_MAXLEN`` entries (see :mod:`jobkit.backend.audit`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from jobkit.backend.audit import AuditEntry, AuditLog
from jobkit.connection import get_settings
from jobkit.errors import InvalidQuery

if TYPE_CHECKING:
    from jobkit.backend.store import Store

__all__ = ["AuditEntry", "audit_entries", "audit_page", "record"]

_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
MAX_LIMIT = 1000


def record(
    store: Store,
    role: str,
    action: str,
    target: str,
    count: int,
    detail: str = "",
    client: str = "",
) -> str:
    """Append one write to the log; the entry's id."""
    log = AuditLog(store, get_settings().audit_maxlen)
    return log.append(role, action, target, count, detail, client)


def audit_entries(store: Store, limit: int = 100, before: str | None = None) -> list[AuditEntry]:
    """The newest ``limit`` entries (1 to :data:`MAX_LIMIT`), or those older than the
    entry ``before``. Raises :class:`InvalidQuery` for a bad limit or entry id."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery(f"limit must be from 1 to {MAX_LIMIT}, not {limit}")
    if before is not None and not _ENTRY_ID.match(before):
        raise InvalidQuery(f"before: {before[:40]!r} is not an entry id (like 1733540000000-0)")
    return AuditLog(store).entries(limit, before)


def audit_page(store: Store, limit: int = 100, before: str | None = None) -> dict[str, Any]:
    """The one JSON shape of ``jobkit audit --json`` and ``GET /audit``: ``{"entries":
    [newest first], "next_before": the id to pass as ``before`` for the next page, or
    None when this page is the last}``."""
    entries = audit_entries(store, limit, before)
    more = len(entries) == limit
    return {
        "entries": [e.as_dict() for e in entries],
        "next_before": entries[-1].id if entries and more else None,
    }
