"""The queues' shards of jobkit's data, as the harness reads them straight from Redis: one
redis-server, or a Redis Cluster where each queue's shard lives on the master of its hash
tag's slot.

Every read goes through one client of either kind (:func:`connect`), and key names come
from jobkit's :class:`~jobkit.backend.keys.Keys` and :class:`~jobkit.backend.keys.Shard`.
A SCAN on a cluster is sent to the one master that holds the shard's slot: a pattern
that names one shard can only match keys there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeAlias

import redis
from redis.cluster import RedisCluster

from jobkit.backend.keys import Keys, Shard
from jobkit.backend.transport import make_client

Client: TypeAlias = redis.Redis | RedisCluster


def connect(url: str, **options: Any) -> Client:
    """A client of ``url`` (``redis://`` or ``redis+cluster://``), replies decoded."""
    client: Client = make_client(url, {"decode_responses": True, **options})
    return client


def shards(client: Client) -> list[Shard]:
    """Every queue's shard (the queue registry jobkit keeps)."""
    keys = Keys()
    return [keys.shard(str(q)) for q in sorted(client.smembers(keys.queues))]


def scan_shard(client: Client, shard: Shard, pattern: str) -> Iterator[str]:
    """Keys of ``shard`` matching ``pattern`` (which must start with the shard's base)."""
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(shard.base)  # type: ignore[no-untyped-call]
        found = client.scan_iter(match=pattern, count=1000, target_nodes=node)
    else:
        found = client.scan_iter(match=pattern, count=1000)
    for key in found:
        yield str(key)
