"""The Redis Cluster and Sentinel fixtures themselves, against real servers: the topology they
promise, keys placed on chosen masters, slots moved under a client, and failovers.

The fixtures live for the whole session, so a test that kills or moves something puts the
servers back (``heal``, slots moved home) before it ends, pass or fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster as ClusterClient

from tests.conftest import wait_until
from tests.support.cluster_server import SLOTS, ClusterServers
from tests.support.sentinel_server import SentinelSet
from tests.support.server_process import command, node_client
from tests.support.servers import key_in_slot, spread_names

PREFIX = "jobkit"
FAILOVER_LIMIT = 10.0


@pytest.fixture
def cluster_client(redis_cluster: ClusterServers) -> Iterator[ClusterClient]:
    """A cluster client on an empty cluster."""
    redis_cluster.flushall()
    client = redis_cluster.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def sentinel_client(redis_sentinels: SentinelSet) -> Iterator[redis.Redis]:
    """A client on the Sentinel set's primary, the database flushed."""
    client = redis_sentinels.client()
    client.flushall()
    try:
        yield client
    finally:
        client.close()


def test_cluster_has_three_masters_each_with_one_replica(redis_cluster: ClusterServers) -> None:
    masters = redis_cluster.masters()
    replicas = [redis_cluster.replicas_of(master) for master in masters]
    assert len(masters) == 3
    assert [len(of_one) for of_one in replicas] == [1, 1, 1]
    assert sum(r.end - r.start + 1 for r in redis_cluster.slot_map()) == SLOTS
    every_node = set(masters) | {replica for of_one in replicas for replica in of_one}
    assert every_node == set(redis_cluster.startup_nodes)
    assert redis_cluster.url == f"redis://{redis_cluster.startup_nodes[0]}"


def test_spread_names_land_on_three_masters(
    redis_cluster: ClusterServers, cluster_client: ClusterClient
) -> None:
    names = spread_names(redis_cluster, PREFIX)
    keys = [f"{{{PREFIX}:{name}}}:x" for name in names]
    owners = [redis_cluster.node_for_key(key) for key in keys]
    assert len(set(owners)) == 3
    assert set(owners) == set(redis_cluster.masters())
    # The hash tag alone decides: other keys of the same queue sit with the first.
    assert redis_cluster.node_for_key(f"{{{PREFIX}:{names[0]}}}:y") == owners[0]

    for key in keys:
        cluster_client.set(key, key)
    for key, owner in zip(keys, owners, strict=True):
        assert cluster_client.get(key) == key
        with node_client(owner) as direct:
            assert direct.get(key) == key


def test_flushall_empties_every_master(
    redis_cluster: ClusterServers, cluster_client: ClusterClient
) -> None:
    for name in spread_names(redis_cluster, PREFIX):
        cluster_client.set(f"{{{PREFIX}:{name}}}:x", "1")
    redis_cluster.flushall()
    for master in redis_cluster.masters():
        with node_client(master) as direct:
            assert direct.dbsize() == 0


def test_move_slot_keeps_the_key_readable(
    redis_cluster: ClusterServers, cluster_client: ClusterClient
) -> None:
    key = f"{{{PREFIX}:{spread_names(redis_cluster, PREFIX, 1)[0]}}}:moved"
    slot = redis_cluster.key_slot(key)
    home = redis_cluster.node_for_key(key)
    away = next(master for master in redis_cluster.masters() if master != home)
    cluster_client.set(key, "v")  # the client now maps the slot to its home
    try:
        redis_cluster.move_slot(slot, away.port)
        assert redis_cluster.node_for_key(key) == away
        with node_client(away) as direct:
            assert direct.get(key) == "v"
        assert cluster_client.get(key) == "v"  # MOVED followed
    finally:
        redis_cluster.move_slot(slot, home.port)
    assert cluster_client.get(key) == "v"


def test_reshard_moves_the_lowest_slots_of_a_master(
    redis_cluster: ClusterServers, cluster_client: ClusterClient
) -> None:
    source, target = redis_cluster.masters()[1], redis_cluster.masters()[0]
    lowest = min(r.start for r in redis_cluster.slot_map() if r.master == source)
    moved = range(lowest, lowest + 5)
    key = key_in_slot(lowest)
    cluster_client.set(key, "v")
    try:
        redis_cluster.reshard(source.port, target.port, slots=len(moved))
        assert {redis_cluster.master_of_slot(slot) for slot in moved} == {target}
        assert redis_cluster.master_of_slot(moved[-1] + 1) == source
        assert cluster_client.get(key) == "v"
    finally:
        redis_cluster.move_slots(moved, source.port)
    assert redis_cluster.master_of_slot(lowest) == source
    assert cluster_client.get(key) == "v"


def test_killing_a_master_promotes_its_replica(
    redis_cluster: ClusterServers, cluster_client: ClusterClient
) -> None:
    key = f"{{{PREFIX}:{spread_names(redis_cluster, PREFIX, 1)[0]}}}:survives"
    master = redis_cluster.node_for_key(key)
    (replica,) = redis_cluster.replicas_of(master)
    cluster_client.set(key, "v")
    with node_client(master) as direct:
        assert command(direct, "WAIT", 1, 5000) == 1  # the replica has the key
    try:
        started = time.monotonic()
        redis_cluster.kill(master.port)
        redis_cluster.wait_ok()
        took = time.monotonic() - started
        assert took < FAILOVER_LIMIT, f"failover took {took:.1f}s"
        assert redis_cluster.node_for_key(key) == replica
        assert wait_until(lambda: cluster_client.get(key), what="a read after the failover")
    finally:
        redis_cluster.heal()
    # The old master is back, as the replica of the one that replaced it.
    assert redis_cluster.replicas_of(replica) == [master]
    assert len(redis_cluster.masters()) == 3


def test_sentinel_set_writes_go_to_the_primary(
    redis_sentinels: SentinelSet, sentinel_client: redis.Redis
) -> None:
    hosts = ",".join(f"{host}:{port}" for host, port in redis_sentinels.sentinels)
    assert redis_sentinels.url == f"redis+sentinel://{hosts}/{redis_sentinels.service}"
    sentinel_client.set("k", "v")
    with node_client(redis_sentinels.primary()) as primary:
        assert command(primary, "ROLE")[0] == "master"
        assert primary.get("k") == "v"


def _write(client: redis.Redis, key: str) -> bool:
    """Whether a write succeeded (a client may need a try or two to find a new primary)."""
    try:
        return bool(client.set(key, "v"))
    except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
        return False


def test_sentinel_failover_after_the_primary_dies(
    redis_sentinels: SentinelSet, sentinel_client: redis.Redis
) -> None:
    sentinel_client.set("before", "v")
    # the replica has the key: asked in short WAITs (each under the client's socket
    # timeout), as a replica an earlier test failed over may still be resyncing
    wait_until(lambda: command(sentinel_client, "WAIT", 1, 500) == 1, timeout=60,
               what="the replica to acknowledge the write")  # fmt: skip
    try:
        started = time.monotonic()
        old = redis_sentinels.kill_primary()
        new = redis_sentinels.wait_failover(old)
        took = time.monotonic() - started
        assert new != old
        assert took < FAILOVER_LIMIT, f"failover took {took:.1f}s"
        wait_until(lambda: _write(sentinel_client, "after"), what="a write after the failover")
        assert sentinel_client.get("before") == "v"
        with node_client(new) as primary:
            assert primary.get("after") == "v"
    finally:
        redis_sentinels.heal()
    # The old primary is back, as a replica of the new one.
    with node_client(old) as back:
        assert command(back, "ROLE")[:3] == ["slave", new.host, new.port]
