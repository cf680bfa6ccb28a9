"""The queues' shards of jobkit's data, as the harness reads them straight from Redis."""

from __future__ import annotations

import redis

from jobkit.backend.keys import Keys, Shard


def shards(client: redis.Redis) -> list[Shard]:
    """Every queue's shard (the queue registry jobkit keeps)."""
    keys = Keys()
    return [keys.shard(str(q)) for q in sorted(client.smembers(keys.queues))]
