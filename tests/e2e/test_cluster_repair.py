"""`jobkit doctor` and `jobkit repair` on a Redis Cluster, shard by shard: three queues
on three masters lose every index at once while their workers run; doctor finds what
each lost (its records found by SCAN on the master owning the queue's slot), repair
puts it back, a second repair changes nothing and every job ends once."""

from __future__ import annotations

import pytest

from tests.conftest import StartWorker
from tests.e2e.test_cluster import ClusterEnv, cenv  # noqa: F401  (the fixture)
from tests.integration.test_doctor_repair import APP, lose_and_rebuild, place_jobs

pytestmark = pytest.mark.slow


def test_every_lost_index_of_three_shards_is_found_and_rebuilt(
    cenv: ClusterEnv,  # noqa: F811
    start_worker: StartWorker,
) -> None:
    owners = {cenv.cluster.node_for_key(cenv.keys.shard(q).base) for q in cenv.queues}
    assert len(owners) == 3  # one queue per master
    for queue in cenv.queues:  # one slot each: a queue's jobs wait behind its long one
        start_worker(queues=queue, concurrency=1, extra=APP)
    placed = [place_jobs(cenv.client, queue) for queue in cenv.queues]
    lost = ["queue", "scheduled", "dead", "finished", "created"]
    lose_and_rebuild(cenv.url, cenv.client, cenv.keys, placed, lost)
