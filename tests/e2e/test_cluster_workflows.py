"""Jobs that wait for others on a real Redis Cluster: a chain whose steps live in queues
on three different masters, and a failure cancelling a dependant on another master. Each
script runs on one shard; what crosses shards goes as a notice a worker delivers."""

from __future__ import annotations

import jobkit
from jobkit import Status
from tests.conftest import StartWorker, wait_until
from tests.e2e.test_cluster import ClusterEnv, cenv  # noqa: F401 - the fixture
from tests.support import flow_jobs as f

FLOWS = ("-A", "tests.support.flow_jobs")


def test_a_chain_across_three_masters(cenv: ClusterEnv, start_worker: StartWorker) -> None:  # noqa: F811
    a, b, c = cenv.queues  # one queue per master
    flow = jobkit.chain(
        jobkit.Signature(f.extract.job, {"day": "abcd"}, queue=a),
        jobkit.Signature(f.transform.job, {"factor": 3}, queue=b),
        jobkit.Signature(f.load.job, {}, queue=c),
    ).dispatch()
    owners = {cenv.cluster.node_for_key(cenv.keys.of_job(j.id).base) for j in flow.jobs}
    assert len(owners) == 3
    start_worker(queues=",".join(cenv.queues), concurrency=2, extra=FLOWS)
    assert flow.result(timeout=30) == (4 + 2 + 3) * 3


def test_a_failure_cancels_a_dependant_on_another_master(
    cenv: ClusterEnv,  # noqa: F811
    start_worker: StartWorker,
) -> None:
    a, b, _ = cenv.queues
    broken = f.fails.job.dispatch_params({"why": "x"}, queue=a)
    waiting = f.square.job.dispatch(n=1, depends_on=[broken], queue=b)
    start_worker(queues=",".join(cenv.queues), extra=FLOWS)
    wait_until(lambda: waiting.refresh().status is Status.CANCELLED, timeout=30,
               what="the dependant to be cancelled")  # fmt: skip
    record = waiting.record
    assert record is not None and record.reason == "dependency_failed"
