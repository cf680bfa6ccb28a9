"""One stress run, start to verdict: Redis and the proxy (or a Redis Cluster), workers
and schedulers, producers following the plan while faults are injected, the drain, then
the checker. Every process started is SIGKILLed (whole group) at the end, on error and on
Ctrl-C.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import redis

import jobkit
from stress.checker import Context, Verdict, judge
from stress.cluster import Cluster, Endpoints, Exit, Topology
from stress.evidence import Kills, Windows, leftovers
from stress.faults import NODE_KINDS, FaultEvent, Injector, schedule
from stress.jobs import Book
from stress.procs import Procs, RedisProc
from stress.proxy import FaultProxy, ProxyCounters
from stress.rediscluster import ClusterRedis, MasterKill
from stress.shards import Client, connect
from stress.workload import Kind, Shape, plan, write_plan

log = logging.getLogger("stress")
BOOK = "stress"
QUEUES = 3  # on a cluster, jobs go to this many queues, each on a master of its own


@dataclass(frozen=True)
class Config:
    """Everything a run is asked to do (the CLI builds one)."""

    jobs: int = 10_000
    faults: tuple[str, ...] = NODE_KINDS
    fsync: str = "always"
    seed: int = 1
    topo: Topology = field(default_factory=Topology)
    produce_seconds: float = 90.0  # producers spread their dispatches over this long
    fault_seconds: float = 120.0  # faults are injected for this long
    drain_timeout: float = 300.0  # after the faults, the jobs must all end within this
    shape: Shape = field(default_factory=Shape)
    workdir: Path | None = None
    keep: bool = False  # keep logs and the AOF even when the run passed
    cluster: bool = False  # a 3-master Redis Cluster instead of one redis-server


def short(config: Config) -> Config:
    """The CI setting, about a minute: two supervisors, short jobs and delays, 25 s of
    faults (the caller picks the job count: 1,000 by default)."""
    return replace(
        config,
        topo=replace(config.topo, supervisors=2, children=3, producers=2),
        produce_seconds=15.0,
        fault_seconds=25.0,
        drain_timeout=90.0,
        shape=Shape(slow_seconds=(0.2, 1.0), delay_seconds=(0.5, 3.0)),
    )


@dataclass
class Outcome:
    """What the report prints."""

    config: Config
    verdict: Verdict
    events: list[FaultEvent]
    proxy: ProxyCounters
    drained: bool
    drain_seconds: float | None  # last fault's end -> every job final
    run_seconds: float
    redis_starts: int
    master_kills: list[MasterKill]
    queues: tuple[str, ...]
    exits: list[Exit]
    workdir: Path
    kinds: dict[str, int]  # accepted jobs by kind

    @property
    def passed(self) -> bool:
        return self.drained and self.verdict.passed


def run(config: Config) -> Outcome:
    """Run the whole thing; raises only when the harness itself cannot work."""
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="jobkit-stress-"))
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    (workdir / "redis").mkdir(exist_ok=True)
    procs = Procs(workdir / "logs")
    proxy: FaultProxy | None = None
    masters: ClusterRedis | None = None
    server: RedisProc | None = None
    outcome: Outcome | None = None
    try:
        if config.cluster:
            masters = ClusterRedis(workdir / "redis")
            masters.start()
            endpoints = Endpoints(masters.url, masters.url, masters.queues(QUEUES))
        else:
            server = RedisProc(procs, workdir / "redis", config.fsync)
            server.start()
            proxy = FaultProxy(("127.0.0.1", server.port)).start()
            endpoints = Endpoints(proxy.url, server.url)
        jobkit.configure(redis_url=endpoints.direct_url)  # the harness's own dispatches
        cluster = Cluster(procs, endpoints, config.topo, BOOK, server)
        outcome = _run(config, workdir, cluster, proxy, masters)
        return outcome
    finally:
        if proxy is not None:
            proxy.stop()
        procs.kill_all()
        if masters is not None:
            masters.stop()
        if outcome is not None and outcome.passed and not config.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(
    config: Config,
    workdir: Path,
    cluster: Cluster,
    proxy: FaultProxy | None,
    masters: ClusterRedis | None,
) -> Outcome:
    began = time.monotonic()
    topo = config.topo
    rng = random.Random(config.seed)
    queues = cluster.endpoints.queues
    cluster.start()
    cluster.wait_ready()
    log.info("%d supervisors x %d children, %d schedulers ready", topo.supervisors,
             topo.children, topo.schedulers)  # fmt: skip

    dealt = plan(config.jobs, topo.producers, config.produce_seconds, config.shape, rng, queues)
    plans, outs = [], []
    for index, batches in enumerate(dealt):
        plans.append(workdir / f"plan{index}.json")
        outs.append(workdir / f"acks{index}.jsonl")
        write_plan(plans[-1], batches)
    injector = Injector(
        cluster, proxy, masters, topo.socket_timeout + 1.0, config.seed, workdir / "faults.jsonl"
    )
    cluster.start_producers(plans, outs, tag=f"{config.seed}-{int(time.time())}")
    faults = ",".join(config.faults) or "none"
    log.info("producing %d jobs to %s over %.0fs; faults %s for %.0fs", config.jobs,
             ",".join(queues), config.produce_seconds, faults,
             config.fault_seconds)  # fmt: skip
    injector.run(schedule(config.faults, config.fault_seconds, rng))
    log.info("faults over (%d injected); draining", len(injector.events))

    direct = connect(cluster.endpoints.direct_url, socket_timeout=10)
    drained_at = _drain(cluster, direct, injector.last_end + config.drain_timeout)
    injector.wait(30.0)
    accepted, unacked = _acks(outs)
    for job_id in injector.recovery.canaries:
        accepted[job_id] = Kind.CANARY
    for job_id in injector.probes:
        accepted[job_id] = Kind.PROBE
    unacked += injector.probe_refusals
    ctx = Context(
        Kills(cluster.kills),
        Windows(injector.events, topo.socket_timeout, topo.lease),
        topo.max_crashes,
    )
    verdict, _ = judge(direct, Book(BOOK), accepted, ctx, unacked)
    for pid in cluster.orphans_alive():
        verdict.fail("no_orphans", str(pid), "a child of a supervisor killed alone still runs")
    for ex in cluster.exits:
        verdict.fail("no_unexpected_exits", ex.name, f"exit code {ex.code}: {ex.log_tail[-300:]}")
    for line in cluster.child_deaths_not_ours():
        verdict.fail("no_unexpected_exits", "-", line)
    for producer in cluster.producers:
        if producer.exit_code() != 0:
            detail = f"exit code {producer.exit_code()}: {producer.log_tail(5)[-300:]}"
            verdict.fail("no_unexpected_exits", producer.name, detail)
    direct.close()
    kinds: dict[str, int] = {}
    for kind in accepted.values():
        kinds[kind.value] = kinds.get(kind.value, 0) + 1
    return Outcome(
        config=config,
        verdict=verdict,
        events=injector.events,
        proxy=proxy.counters if proxy is not None else ProxyCounters(),
        drained=drained_at is not None,
        drain_seconds=None if drained_at is None else round(drained_at - injector.last_end, 2),
        run_seconds=round(time.monotonic() - began, 1),
        redis_starts=cluster.server.starts if cluster.server is not None else 0,
        master_kills=masters.kills if masters is not None else [],
        queues=queues,
        exits=cluster.exits,
        workdir=workdir,
        kinds=kinds,
    )


def _drain(cluster: Cluster, direct: Client, deadline: float) -> float | None:
    """Wait until producers are done and nothing is queued, running or scheduled (twice
    in a row, 0.25 s apart); the monotonic time it happened, or None at ``deadline``."""
    quiet = 0
    last_note = 0.0
    while time.monotonic() < deadline:
        cluster.replace_exited()
        try:
            left = sum(leftovers(direct).values())
        except redis.RedisError:
            left = -1
        if cluster.producers_done() and left == 0:
            quiet += 1
            if quiet == 2:
                return time.monotonic() - 0.25
        else:
            quiet = 0
        if time.monotonic() - last_note > 5:
            last_note = time.monotonic()
            log.info("draining: %s entries left, producers done: %s", left,
                     cluster.producers_done())  # fmt: skip
        time.sleep(0.25)
    return None


def _acks(outs: list[Path]) -> tuple[dict[str, Kind], int]:
    """Ids the producers were told were accepted (by kind), and calls that raised."""
    accepted: dict[str, Kind] = {}
    unacked = 0
    for out in outs:
        try:
            lines = out.read_bytes().splitlines()
        except OSError:
            continue
        for line in lines:
            record: dict[str, Any] = orjson.loads(line)
            if record.get("unacked"):
                unacked += 1
            elif "id" in record:
                accepted[record["id"]] = Kind(record["kind"])
    return accepted, unacked
