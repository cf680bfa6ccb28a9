"""An idle wait on queues of several slots, on a Redis Cluster: one BLPOP per slot, and the
wait returns with the first token while the other BLPOPs run out their timeout. A token one
of those pops after the wait returned was meant for the next wait: it must be pushed back,
or the job it announces waits for the next wait's timeout (a worker sits idle beside it).
"""

from __future__ import annotations

import time

from jobkit.backend.cluster import ClusterWire
from jobkit.backend.keys import Keys
from jobkit.backend.transport import make_client
from tests.conftest import PREFIX
from tests.support.cluster_server import ClusterServers
from tests.support.servers import spread_names

WAIT = 2.0  # what an idle worker child blocks for


def test_a_token_popped_after_a_wait_returned_goes_to_the_next_wait(
    redis_cluster: ClusterServers,
) -> None:
    """The second wait gets the token the first wait's leftover BLPOP popped, at once."""
    redis_cluster.wait_ok()
    keys = Keys(PREFIX)
    wakes = [keys.shard(queue).wake(queue) for queue in spread_names(redis_cluster, PREFIX, 2)]
    url = "redis+cluster://" + ",".join(str(node) for node in redis_cluster.startup_nodes)
    wire = ClusterWire(make_client(url, {"decode_responses": True}))
    client = redis_cluster.client()
    try:
        for wake in wakes:
            client.delete(wake)
        client.lpush(wakes[0], "1")
        (first,) = wire.wait_then(wakes, WAIT, [])
        assert tuple(first) == (wakes[0], "1")

        client.lpush(wakes[1], "1")  # the first wait's BLPOP on this list still blocks
        began = time.monotonic()
        (second,) = wire.wait_then(wakes, WAIT, [])
        waited = time.monotonic() - began
        assert second is not None, f"the token was lost: the wait ran out its {WAIT:g}s"
        assert tuple(second) == (wakes[1], "1")
        assert waited < WAIT / 2
        assert [client.llen(wake) for wake in wakes] == [0, 0]
    finally:
        client.close()
        wire.client.close()
