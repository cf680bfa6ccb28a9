"""Workers on many hosts: a host cut off the network loses its jobs to the others, and
its late results are refused when it comes back.

Each host is a network namespace (:mod:`tests.support.netns`) running one ``jobkit worker``
supervisor; Redis runs in the root namespace, on the bridge all hosts share. Host 1 is
cut off while it runs jobs. It cannot renew their leases, so they lapse and the reapers of
hosts 2 and 3 requeue them; hosts 2 and 3 run them again and record their results. Host
1's children never notice: they finish the jobs and hold on to the results until the link
returns, then try to record them, and are refused because their fencing tokens are
stale. The worker logs the dropped results and serves on.

Only jobkit's public API is used (``dispatch``, handles, ``get_job``, the CLI), so the
test holds whatever the key layout. The Redis endpoint is a fixture, run twice: one
redis-server, and a Redis Cluster (three masters, three replicas) whose nodes listen on
and announce the bridge address. On the cluster the batch is spread over three queues
that every host serves, and each host has a queue of its own; each set of three sits on
three different masters, so waits, claims, reaping and results span several shards.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest

import jobkit
from jobkit import Status, get_job
from tests.conftest import PREFIX, REPO_ROOT, clean_env, run_cli, wait_until
from tests.support.cluster_server import ClusterServers
from tests.support.hosts_jobs import Slow, Where
from tests.support.netns import Hosts, Side, namespaces_available
from tests.support.redis_server import RedisServer
from tests.support.servers import spread_names

pytestmark = pytest.mark.slow

HOSTS = 3
CUT = 1  # the host that is cut off
LEASE = 2.0
HEARTBEAT = 0.3
SOCKET_TIMEOUT = 3.0  # jobkit's least: a cut-off host's calls fail this soon
CONNECT_TIMEOUT = 2.0
CONCURRENCY = 2  # children per host; prefetch 1: each child holds the job it runs, no more
# seconds each job sleeps: host 1's jobs, whichever it takes, still run when it is cut off
BATCH = [1.5, 2.0, 3.0] * 4
# after host 1 starts its jobs, its supervisor tells Redis within a tick (50 ms); a lease
# that lapses after that counts the attempt as a crash
MARK_MARGIN = 0.3


class Run(NamedTuple):
    """One line of a host's runs file: a job started or ended there."""

    event: str
    job_id: str
    attempt: int


@dataclass
class HostWorker:
    """A ``jobkit worker`` supervisor on one host, with its log and its runs file."""

    host: int
    name: str  # its HOST_NAME, and the prefix of its worker name
    queue: str  # the queue only this host serves
    proc: subprocess.Popen[bytes]
    log_path: Path
    runs_path: Path

    def alive(self) -> bool:
        """Whether the supervisor still runs."""
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL to the worker's whole process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def log_text(self) -> str:
        """The worker's log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        """The last lines of the log (attached to a failed test's report)."""
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(empty log)"

    def runs(self) -> list[Run]:
        """What jobs did on this host, as they noted it on its disk."""
        try:
            text = self.runs_path.read_text()
        except FileNotFoundError:
            return []
        found = []
        for line in text.splitlines():
            event, job_id, attempt, _ = line.split()
            found.append(Run(event, job_id, int(attempt)))
        return found

    def started(self) -> set[str]:
        """Jobs that started on this host."""
        return {run.job_id for run in self.runs() if run.event == "start"}

    def ended(self) -> set[str]:
        """Jobs that ended on this host (whether or not their result was recorded)."""
        return {run.job_id for run in self.runs() if run.event == "end"}

    def running(self) -> set[str]:
        """Jobs running on this host now."""
        return self.started() - self.ended()

    def dropped(self) -> set[str]:
        """Jobs whose result this worker logged as refused (its lease was lost)."""
        return {
            job_id
            for line in self.log_text().splitlines()
            if "result dropped" in line
            for job_id in self.started()
            if job_id in line
        }


@dataclass
class Endpoint:
    """The Redis every host and the test process use, and the queues the hosts serve."""

    kind: str
    url: str  # reachable from every host and from the root namespace
    shared: list[str]  # queues every host serves; the batch is spread over them
    own: list[str]  # host i's own queue is own[i - 1]

    def queues(self, i: int) -> list[str]:
        """What host ``i`` serves, in order: the shared queues, from the ``i``-th on (so
        the hosts start on different shards), then its own."""
        turn = i % len(self.shared)
        return [*self.shared[turn:], *self.shared[:turn], self.own[i - 1]]


@dataclass
class Fleet:
    """Hosts, each running a worker, and the Redis they share."""

    hosts: Hosts
    endpoint: Endpoint
    workers: dict[int, HostWorker]

    def totals(self) -> dict[str, Any]:
        """``jobkit info --json``'s fleet: what Redis holds now and its lifetime totals."""
        done = run_cli("info", "--json", url=self.endpoint.url)
        assert done.returncode == 0, done.stderr
        fleet: dict[str, Any] = orjson.loads(done.stdout)["fleet"]
        return fleet


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """Three hosts. Skipped only where the kernel refuses this process network namespaces
    (a container started without CAP_NET_ADMIN, an unprivileged user): the kernel's own
    words are given, and how to run the test (as root, or with --cap-add NET_ADMIN)."""
    ok, reason = namespaces_available()
    if not ok:
        pytest.skip(
            f"needs network namespaces to stand in for separate machines, which this "
            f"kernel refuses here ({reason}); run as root, or in a container started with "
            f"--cap-add NET_ADMIN"
        )
    with Hosts(HOSTS) as made:
        yield made
    assert all(proc.poll() is not None for proc in made.processes), "a process outlived us"
    assert made.leftovers() == [], "namespaces or links left behind"


@contextlib.contextmanager
def single_redis(hosts: Hosts) -> Iterator[Endpoint]:
    """One redis-server in the root namespace, listening on the bridge address too."""
    with RedisServer(bind=[hosts.root_address]) as server:
        url = f"redis://{hosts.root_address}:{server.port}/0"
        yield Endpoint("single", url, ["default"], [f"h{i}" for i in range(1, HOSTS + 1)])


@contextlib.contextmanager
def redis_cluster(hosts: Hosts) -> Iterator[Endpoint]:
    """A Redis Cluster in the root namespace, its nodes listening on and announcing the
    bridge address (the hosts reach nothing else, so every address in its slot map and
    MOVED replies must be that one); shared queues and own queues on three masters each."""
    with ClusterServers(host=hosts.root_address) as cluster:
        nodes = ",".join(str(node) for node in cluster.startup_nodes)
        yield Endpoint(
            "cluster",
            f"redis+cluster://{nodes}",
            shared=spread_names(cluster, PREFIX, HOSTS),
            own=spread_names(cluster, PREFIX, HOSTS, stem="own"),
        )


# Each kind of Redis the hosts may share, its servers bound to ``hosts.root_address``,
# yielding the URL jobkit takes.
ENDPOINTS: dict[str, Callable[[Hosts], contextlib.AbstractContextManager[Endpoint]]] = {
    "single": single_redis,
    "cluster": redis_cluster,
}


@pytest.fixture(params=sorted(ENDPOINTS))
def endpoint(request: pytest.FixtureRequest, hosts: Hosts) -> Iterator[Endpoint]:
    """The Redis under test, where every host can reach it."""
    with ENDPOINTS[request.param](hosts) as made:
        yield made


def start_worker(hosts: Hosts, endpoint: Endpoint, i: int, tmp_path: Path) -> HostWorker:
    """``python -m jobkit worker`` on host ``i``, serving the shared queues and its own."""
    name = f"h{i}"
    runs_path = tmp_path / f"runs-{name}.txt"
    args = [
        sys.executable, "-m", "jobkit", "worker",
        "-A", "tests.support.hosts_jobs",
        "-q", ",".join(endpoint.queues(i)),
        "-c", str(CONCURRENCY),
        "--prefetch", "1",
        "--lease", str(LEASE),
        "--heartbeat", str(HEARTBEAT),
        "--name", f"{name}-{os.getpid()}",
    ]  # fmt: skip
    env = clean_env(
        JOBKIT_REDIS_URL=endpoint.url,
        JOBKIT_SOCKET_TIMEOUT=str(SOCKET_TIMEOUT),
        JOBKIT_SOCKET_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT),
        PYTHONUNBUFFERED="1",
        HOST_NAME=name,
        HOST_RUNS=str(runs_path),
    )
    log_path = tmp_path / f"worker-{name}.log"
    proc = hosts.run(i, args, env=env, log_path=log_path, cwd=REPO_ROOT)
    return HostWorker(i, name, endpoint.own[i - 1], proc, log_path, runs_path)


@pytest.fixture
def fleet(
    request: pytest.FixtureRequest, hosts: Hosts, endpoint: Endpoint, tmp_path: Path
) -> Iterator[Fleet]:
    """A worker on every host, each seen to run a job of its own queue."""
    jobkit.configure(redis_url=endpoint.url, lease=LEASE, heartbeat=HEARTBEAT)
    workers = {i: start_worker(hosts, endpoint, i, tmp_path) for i in range(1, HOSTS + 1)}
    request.node.jobkit_workers = list(workers.values())  # logs attached to a failure
    try:
        for worker in workers.values():
            assert Where.dispatch(queue=worker.queue).result(timeout=30) == worker.name
        yield Fleet(hosts, endpoint, workers)
    finally:
        for worker in workers.values():  # before Redis stops, so the logs end quietly
            worker.kill()
        jobkit.get_store().redis.close()


def _two_running(worker: HostWorker) -> set[str] | None:
    """The jobs ``worker`` runs, once each of its children runs one."""
    running = worker.running()
    return running if len(running) == CONCURRENCY else None


@pytest.mark.parametrize("side", list(Side), ids=[side.value for side in Side])
def test_a_cut_off_host_loses_its_jobs_to_the_others_and_its_late_results_are_refused(
    fleet: Fleet, side: Side
) -> None:
    """Host 1 is cut off mid-job: hosts 2 and 3 finish its jobs; back, it is refused."""
    began = time.monotonic()
    lone = fleet.workers[CUT]
    ready_jobs = HOSTS  # one Where job per host, run by the fixture
    shared = fleet.endpoint.shared  # in equal runs: each queue gets jobs of every length
    handles = [
        Slow.dispatch(seconds=seconds, queue=shared[n * len(shared) // len(BATCH)])
        for n, seconds in enumerate(BATCH)
    ]
    held = wait_until(lambda: _two_running(lone), timeout=10, what="host 1 to run its jobs")
    time.sleep(MARK_MARGIN)
    fleet.hosts.cut(CUT, side)
    cut_at = time.monotonic()
    assert lone.started() == held  # host 1 finished nothing before the cut

    # Away from the network, host 1 renews nothing: its leases lapse, hosts 2 and 3
    # requeue and finish its jobs, and everything else.
    results = {handle.id: handle.result(timeout=30) for handle in handles}
    all_done = time.monotonic()
    assert all(handle.status is Status.SUCCEEDED for handle in handles)
    for job_id in held:
        assert results[job_id]["host"] != lone.name
        assert results[job_id]["attempt"] == 2, "the attempt on host 1 counts as a crash"
    ran = collections.Counter(result["host"] for result in results.values())
    assert ran[lone.name] == 0
    starts = collections.Counter(
        run.job_id for worker in fleet.workers.values() for run in worker.runs()
        if run.event == "start"
    )  # fmt: skip
    assert starts == {handle.id: 2 if handle.id in held else 1 for handle in handles}
    info = fleet.totals()
    assert info["totals"].get("succeeded") == ready_jobs + len(BATCH)
    assert (info["running"], info["dead"]) == (0, 0)

    # Host 1's children ran on, unaware: they finished the jobs, and hold the results.
    wait_until(lambda: held <= lone.ended(), timeout=5, what="host 1 to end its jobs")
    assert lone.dropped() == set()  # nothing reached Redis yet

    fleet.hosts.restore(CUT)
    restored = time.monotonic()
    wait_until(
        lambda: lone.dropped() >= held, timeout=25, what="host 1's late results to be refused"
    )
    refused_at = time.monotonic()
    for handle in handles:  # the results hosts 2 and 3 recorded stand
        assert get_job(handle.id).result(timeout=1) == results[handle.id]
    assert fleet.totals()["totals"].get("succeeded") == ready_jobs + len(BATCH)

    # Host 1's worker lived through it and serves again.
    assert lone.alive()
    assert Where.dispatch(queue=lone.queue).result(timeout=20) == lone.name
    info = fleet.totals()
    assert info["totals"].get("succeeded") == ready_jobs + len(BATCH) + 1
    assert (info["running"], info["dead"]) == (0, 0)
    assert all(worker.alive() for worker in fleet.workers.values())

    lease_lost = "lease lost (expired or taken over)" in lone.log_text()
    print(
        f"\n[{fleet.endpoint.kind}, {side.value} cut] "
        f"jobs recorded per host: {dict(sorted(ran.items()))}; host 1 held {len(held)} at "
        f"the cut (queues {sorted(job_id.split(':')[0] for job_id in held)}), late results "
        f"refused: {len(lone.dropped())}; "
        f"supervisor logged a lost lease: {lease_lost}; "
        f"batch done {all_done - cut_at:.1f}s after the cut, refusals "
        f"{refused_at - restored:.1f}s after the restore; test {time.monotonic() - began:.1f}s"
    )
