"""The fleet's figures in one object (``GET /stats``): lanes' ready jobs, counts by state
and lifetime totals, and the history archive's lag per queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobkit.backend.archive_feed import ArchiveFeed

if TYPE_CHECKING:
    from jobkit.backend.store import Store


def stats(store: Store) -> dict[str, Any]:
    """``{"queues": ready per lane, "running", "scheduled", "dead", "totals", "problems",
    "by_queue", "archive_lag": per queue}``."""
    lag = {q: x.behind for q, x in ArchiveFeed(store, "stats").lag().items()}
    return {
        "queues": store.reads.queue_sizes(store.reads.known_lanes()),
        **store.reads.counts().as_dict(),
        "archive_lag": lag,
    }
