"""jobkit on one Redis node against a Redis Cluster of three masters, on the same machine.

Starts a plain redis-server (127.0.0.1, a free port, no persistence) and a cluster of
three masters and three replicas (``tests/cluster_server.py``), and measures jobkit on
each with three queues whose shards sit on three different masters of the cluster (the
same names on the one node). Runs alternate between the two (node, cluster, node, ...)
and the median of each mode's runs is printed. Every process started runs in a process
group of its own and is killed on the way out (also on Ctrl-C, SIGTERM or an error).

Run from the repository root::

    python benchmarks/cluster.py                          # 6,000 jobs, median of 3 runs
    python benchmarks/cluster.py --jobs 200 --runs 1 --json

Phases, each on emptied servers, with the job ``bench.stamp`` (returns the time its
``perform()`` started, and does nothing else):

1. dispatch: N ``dispatch()`` calls, the queues in turn, then N jobs through
   ``dispatch_many()``, 1,000 per call, the queues in turn; and the dispatching
   process's CPU per ``dispatch()`` (the client's cost of the transport);
2. processing: N jobs queued first, a third per queue, then one ``jobkit worker -q <queue>
   -c 1`` per queue spawned at once. One worker per queue keeps the three masters busy
   together: a single worker on all three would drain them in its queue order, one
   master at a time. Rates from the spawn, and from the first job's start to the last's;
   from the moment every queue's first job has run to the last job, the CPU of the
   worker trees (/proc) and of the redis-servers (INFO cpu) per job run meanwhile, and
   of each master per job of the queue(s) it serves;
3. pickup, as ``compare.py`` times it: one idle ``jobkit worker -q q0 -c 1``, jobs sent
   one at a time, 5 ms apart, after 20 warm-up jobs: dispatch to ``perform()`` start.
   Then a worker on all three queues (on the cluster it waits on three masters at once),
   jobs sent to the queues in turn: few of them, as on the cluster a token can be taken
   by a wait that has already been given up, and that job waits out the worker's idle
   block (see ``benchmarks/README.md``).

Before the phases, one second of idle servers gives the CPU their housekeeping takes (on
the cluster: the cluster bus and replication pings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python benchmarks/cluster.py`
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_jobs import Stamp  # noqa: E402
from benchmarks.cluster_report import ROWS, render  # noqa: E402
from benchmarks.compare import BenchError, Workers  # noqa: E402
from benchmarks.procs import log, percentile, prepare, timed  # noqa: E402
from jobkit import JobHandle, JobTimeout, configure, get_store  # noqa: E402
from jobkit.backend.keys import Keys  # noqa: E402
from tests.support.cluster_server import ClusterServers  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.server_process import Address, node_client  # noqa: E402
from tests.support.servers import spread_names  # noqa: E402

BATCH = 1000  # jobs per dispatch_many() call
WARMUP = 100  # dispatch() calls before the timed ones
LATENCY_JOBS = 300
LATENCY_WARMUP = 20
MULTI_LATENCY_JOBS = 30  # few: see the README on pickup by a worker on several queues
MULTI_WARMUP = 3
IDLE_GAP = 0.005  # pause before each pickup job, so the worker is back waiting
IDLE_SECONDS = 1.0
START_TIMEOUT = 60.0
PREFETCH = 16  # the worker's default, given explicitly


def server_cpu(address: Address) -> float:
    """A redis-server's CPU seconds so far, all its threads (INFO cpu: getrusage, finer
    than the clock ticks of /proc/<pid>/stat)."""
    with node_client(address) as client:
        info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def machine_busy() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system)


@dataclass
class Target:
    """One deployment under test: its URL, the queues, and the redis-server processes."""

    mode: str  # "node" or "cluster"
    url: str
    queues: list[str]
    masters: list[Address]  # masters[i] serves queues[i]; one node: the same thrice
    servers: list[Address]  # every redis-server, replicas included
    flushall: Callable[[], object]
    args: argparse.Namespace  # jobs, latency_jobs, multi_latency_jobs, log_dir
    global_keys: Address | None = None  # the master of the global slot, on a cluster

    @property
    def shards(self) -> list[Address]:
        """The distinct masters, in the order of the queues they serve."""
        return list(dict.fromkeys(self.masters))

    @property
    def replicas(self) -> list[Address]:
        return [address for address in self.servers if address not in self.masters]

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBKIT_")}
        env["JOBKIT_REDIS_URL"] = self.url
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return env

    def worker(self, queues: str) -> list[str]:
        return [
            sys.executable, "-m", "jobkit", "worker", "-A", "benchmarks.bench_jobs",
            "-q", queues, "-c", "1", "--prefetch", str(PREFETCH), "--no-log-jobs",
            "--log-level", "WARNING",
        ]  # fmt: skip

    def redis_cpu(self) -> dict[Address, float]:
        return {address: server_cpu(address) for address in self.servers}

    def succeeded(self) -> list[int]:
        """Jobs done per queue, from its stats (one HGET per queue: each on its shard)."""
        store = get_store()
        keys = [store.keys.shard(queue).stats for queue in self.queues]
        return [int(store.redis.hget(key, "succeeded") or 0) for key in keys]


def wait_result(handle: JobHandle, workers: Workers, timeout: float) -> float:
    """The job's result (a time stamp); fail fast if a worker died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return float(handle.result(timeout=1.0))
        except JobTimeout:
            workers.check()
            if time.monotonic() > deadline:
                raise BenchError(f"job {handle.id} not done within {timeout:.0f}s") from None


def bench_idle(t: Target) -> dict[str, float]:
    """CPU the idle servers take, masters and replicas, in ms per second."""
    before = t.redis_cpu()
    time.sleep(IDLE_SECONDS)
    after = t.redis_cpu()
    spent = sum(after.values()) - sum(before.values())
    return {"idle_redis_ms_per_s": spent / IDLE_SECONDS * 1000}


def bench_dispatch(t: Target) -> dict[str, float]:
    n, queues = t.args.jobs, t.queues
    for i in range(WARMUP):
        Stamp.dispatch(queue=queues[i % 3])
    t.flushall()

    def one_by_one() -> None:
        for i in range(n):
            Stamp.dispatch(queue=queues[i % 3])

    cpu = time.process_time()  # ns resolution: psutil's cpu_times() counts 10 ms ticks
    rate = n / timed(one_by_one)
    client_cpu = time.process_time() - cpu
    t.flushall()
    params: list[dict[str, Any]] = [{}] * min(BATCH, n)

    def bulk() -> None:
        for call, start in enumerate(range(0, n, BATCH)):
            Stamp.dispatch_many(params[: min(BATCH, n - start)], queue=queues[call % 3])

    bulk_rate = n / timed(bulk)
    t.flushall()
    return {
        "dispatch_per_s": rate,
        "dispatch_client_cpu_us": client_cpu / n * 1e6,
        "bulk_per_s": bulk_rate,
    }


def bench_processing(t: Target) -> dict[str, float]:
    t.flushall()
    per_queue = t.args.jobs // 3
    n = per_queue * 3
    firsts: list[JobHandle] = []
    lasts: list[JobHandle] = []
    for queue in t.queues:
        handles: list[JobHandle] = []
        for start in range(0, per_queue, BATCH):
            count = min(BATCH, per_queue - start)
            handles += Stamp.dispatch_many([{}] * count, queue=queue)
        firsts.append(handles[0])
        lasts.append(handles[-1])
    workers = Workers(t.args.log_dir, f"{t.mode}-process")
    timeout = START_TIMEOUT + n / 100
    try:
        me = psutil.Process()
        own_before = sum(me.cpu_times()[:2])
        before, busy, spawned = t.redis_cpu(), machine_busy(), time.perf_counter()
        spawned_wall = time.time()
        workers.start([t.worker(queue) for queue in t.queues], t.env)
        first = min(wait_result(handle, workers, timeout) for handle in firsts)
        worker_cpu, redis_cpu, done = workers.cpu_seconds(), t.redis_cpu(), t.succeeded()
        last = max(wait_result(handle, workers, timeout) for handle in lasts)
        elapsed = time.perf_counter() - spawned
        worker_cpu_end, redis_cpu_end = workers.cpu_seconds(), t.redis_cpu()
        servers = sum(redis_cpu_end.values()) - sum(before.values())
        own = sum(me.cpu_times()[:2]) - own_before + servers + worker_cpu_end
        other = (machine_busy() - busy - own) / elapsed  # other processes, cores
    finally:
        workers.kill()
    if (succeeded := sum(t.succeeded())) != n:
        raise BenchError(f"{t.mode}: {succeeded} jobs succeeded, not {n}")
    ran = [per_queue - d for d in done]  # jobs of each queue run between the two samples
    window = max(sum(ran), 1)
    spent = {a: redis_cpu_end[a] - redis_cpu[a] for a in t.servers}
    out = {
        "process_per_s": n / elapsed,
        "process_steady_per_s": (n - 1) / max(last - first, 1e-9),
        "startup_s": first - spawned_wall,
        "window_jobs": window,
        "worker_cpu_us": (worker_cpu_end - worker_cpu) / window * 1e6,
        "worker_cpu_all_us": worker_cpu_end / n * 1e6,
        "redis_cpu_us": sum(spent[a] for a in t.shards) / window * 1e6,
        "other_cores": max(0.0, other),
    }
    if t.replicas:
        out["replica_cpu_us"] = sum(spent[a] for a in t.replicas) / window * 1e6
    for i, address in enumerate(t.shards, 1):  # per job of the queue(s) it serves
        served = sum(r for r, m in zip(ran, t.masters, strict=True) if m == address)
        out[f"shard{i}_cpu_us"] = spent[address] / max(served, 1) * 1e6
    return out


def bench_pickup(t: Target, queues: list[str], jobs: int, warmup: int) -> list[float]:
    """Pickup times (ms, sorted) of ``jobs`` jobs sent one at a time to ``queues`` in
    turn, with one idle worker on all of them."""
    t.flushall()
    workers = Workers(t.args.log_dir, f"{t.mode}-pickup")
    pickup: list[float] = []
    try:
        workers.start([t.worker(",".join(queues))], t.env)
        wait_result(Stamp.dispatch(queue=queues[0]), workers, START_TIMEOUT)
        for i in range(warmup + jobs):
            time.sleep(IDLE_GAP)
            sent = time.time()
            handle = Stamp.dispatch(queue=queues[i % len(queues)])
            started = wait_result(handle, workers, 10.0)
            if i >= warmup:
                pickup.append((started - sent) * 1000)
    finally:
        workers.kill()
    return sorted(pickup)


def measure(t: Target) -> dict[str, float]:
    configure(redis_url=t.url)
    get_store().load_scripts()  # cached, as on a long-lived Redis: no NOSCRIPT on the hot path
    figures = bench_idle(t)
    log(f"  {t.mode}: dispatch x{t.args.jobs:,} over {len(t.queues)} queues ...")
    figures.update(bench_dispatch(t))
    log(f"  {t.mode}: processing {t.args.jobs:,} jobs, one worker per queue ...")
    figures.update(bench_processing(t))
    log(f"  {t.mode}: idle pickup, worker on one queue, {t.args.latency_jobs} jobs ...")
    one = bench_pickup(t, t.queues[:1], t.args.latency_jobs, LATENCY_WARMUP)
    log(f"  {t.mode}: idle pickup, worker on three queues, {t.args.multi_latency_jobs} jobs ...")
    three = bench_pickup(t, t.queues, t.args.multi_latency_jobs, MULTI_WARMUP)
    figures.update(
        pickup_p50_ms=percentile(one, 50),
        pickup_p99_ms=percentile(one, 99),
        pickup3_p50_ms=percentile(three, 50),
        pickup3_max_ms=three[-1],
    )
    t.flushall()
    return figures


# -- the two deployments ----------------------------------------------------------------


def node_target(server: RedisServer, queues: list[str], args: argparse.Namespace) -> Target:
    address = Address("127.0.0.1", server.port)
    flushall = server.client().flushall
    return Target("node", server.url, queues, [address] * 3, [address], flushall, args)


def cluster_target(cluster: ClusterServers, queues: list[str], args: argparse.Namespace) -> Target:
    url = "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in cluster.startup_nodes)
    keys = Keys("jobkit")  # the default prefix, as the benchmark's workers use it
    masters = [cluster.node_for_key(keys.shard(queue).base) for queue in queues]
    target = Target("cluster", url, queues, masters, cluster.startup_nodes, cluster.flushall, args)
    target.global_keys = cluster.node_for_key(keys.base)
    return target


def summarise(target: Target, runs: list[dict[str, float]]) -> dict[str, Any]:
    figures = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
    served = list(zip(target.queues, target.masters, strict=True))
    return {
        "url": target.url,
        "shards": [
            {
                "master": str(m),
                "queues": [q for q, o in served if o == m],
                "global_keys": m == target.global_keys,
            }
            for m in target.shards
        ],
        "replicas": [str(a) for a in target.replicas],
        "figures": figures,
        "runs": [{k: round(v, 3) for k, v in r.items()} for r in runs],
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=6000, help="N jobs per phase")
    parser.add_argument("--runs", type=int, default=3, help="runs per mode, interleaved")
    parser.add_argument(
        "--latency-jobs", type=int, default=LATENCY_JOBS, help="jobs timed for pickup"
    )
    parser.add_argument(
        "--multi-latency-jobs",
        type=int,
        default=MULTI_LATENCY_JOBS,
        help="jobs timed for pickup by a worker on all three queues",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.jobs < 3 or min(args.runs, args.latency_jobs, args.multi_latency_jobs) < 1:
        parser.error("--jobs must be at least 3, --runs and --*latency-jobs at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prepare()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="jobkit-cluster-bench-") as tmp,
            RedisServer() as server,
            ClusterServers() as cluster,
        ):
            args.log_dir = Path(tmp)
            queues = spread_names(cluster, "jobkit", 3)
            targets = [node_target(server, queues, args), cluster_target(cluster, queues, args)]
            runs: dict[str, list[dict[str, float]]] = {t.mode: [] for t in targets}
            for i in range(args.runs):
                log(f"run {i + 1}/{args.runs}")
                for target in targets:
                    runs[target.mode].append(measure(target))
            version = str(server.client().info("server")["redis_version"])
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    report: dict[str, Any] = {
        "machine": {
            "cores": os.cpu_count(),
            "load_avg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "python": platform.python_version(),
            "redis_version": version,
        },
        "settings": {
            "jobs": args.jobs,
            "runs": args.runs,
            "latency_jobs": args.latency_jobs,
            "multi_latency_jobs": args.multi_latency_jobs,
            "queues": queues,
            "worker": f"one `jobkit worker -q <queue> -c 1 --prefetch {PREFETCH}` per queue",
        },
        "modes": {t.mode: summarise(t, runs[t.mode]) for t in targets},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render(report, ROWS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
