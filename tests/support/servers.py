"""The session's Redis Cluster and Sentinel set (``conftest.py`` makes fixtures of them), and
helpers to place keys on chosen masters of a cluster.

jobkit's keys on a cluster are ``{<prefix>:<queue>}:...``: everything of one queue shares the
hash tag, so one master serves a queue. Tests that need queues on different masters take their
names from :func:`spread_names`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from redis.crc import key_slot

from tests.support.cluster_server import ClusterServers
from tests.support.sentinel_server import SentinelSet
from tests.support.server_process import Address


def running_cluster() -> Iterator[ClusterServers]:
    """Body of the ``redis_cluster`` fixture: one cluster, stopped when the generator closes."""
    with ClusterServers() as cluster:
        yield cluster


def running_sentinels() -> Iterator[SentinelSet]:
    """Body of the ``redis_sentinels`` fixture: one Sentinel set, stopped when it closes."""
    with SentinelSet() as sentinels:
        yield sentinels


def spread_names(cluster: ClusterServers, prefix: str, n: int = 3, stem: str = "q") -> list[str]:
    """``n`` queue names ``q`` whose hash tags ``{<prefix>:<q>}`` land on ``n`` different
    masters, as the slot map stands now (a reshard or failover can change it).

    The names are the first of ``<stem>0``, ``<stem>1``, ... that do, so they are the same
    from run to run while the slot map is (another ``stem`` gives another set). Slots come
    from the cluster's own CLUSTER KEYSLOT.
    """
    slot_map = cluster.slot_map()
    masters = {slot_range.master for slot_range in slot_map}
    if not 1 <= n <= len(masters):
        raise ValueError(f"{n} names on different masters, but the cluster has {len(masters)}")
    chosen: dict[Address, str] = {}
    for index in itertools.count():
        name = f"{stem}{index}"
        slot = cluster.key_slot(f"{{{prefix}:{name}}}")
        owner = next(r.master for r in slot_map if r.start <= slot <= r.end)
        chosen.setdefault(owner, name)
        if len(chosen) == n:
            return list(chosen.values())
    raise AssertionError("unreachable")


def key_in_slot(slot: int, prefix: str = "k") -> str:
    """The first key ``<prefix><i>`` that hashes to ``slot`` (computed here, with the same
    CRC16 as Redis: a search over keys is too many round trips)."""
    for index in itertools.count():
        key = f"{prefix}{index}"
        if key_slot(key.encode()) == slot:
            return key
    raise AssertionError("unreachable")
