"""The fault schedule, its injection, and how long the system takes to recover from each.

Kinds (``--faults``): ``child`` (SIGKILL a worker child), ``supervisor`` (SIGKILL a
supervisor's whole group), ``lone_supervisor`` (SIGKILL the supervisor only: its children
are left to notice), ``scheduler``, ``redis`` (SIGKILL redis-server, restart it from its
AOF), ``master`` (on a Redis Cluster: SIGKILL a master, its replica takes over, the
node rejoins as a replica; see :mod:`stress.rediscluster`), ``drop`` (the proxy swallows
one reply: of a script, of any command, or of a *probe*: a job the harness dispatches
through the proxy itself, so that the job whose enqueue reply is lost is one that runs
at once), ``stall`` (the proxy holds all traffic
longer than the socket timeout) and ``reset`` (the proxy resets every connection).
Killed processes are replaced at once, as a process manager would. On a cluster there
is no proxy and no lone redis-server: the kinds are :data:`CLUSTER_KINDS`.

Every fault is watched by :class:`stress.recovery.Recovery` (a canary job, and the jobs
a killed process held) to time the recovery from it.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import redis

from jobkit.backend import scripts as jobkit_scripts
from jobkit.backend.store import Store
from stress.cluster import Cluster, Kill
from stress.jobs import Book, Probe
from stress.proxy import Drop, FaultProxy
from stress.recovery import Recovery
from stress.rediscluster import FAILOVER_TIMEOUT, ClusterRedis, MasterKill

log = logging.getLogger("stress")

KINDS = (
    "child", "supervisor", "lone_supervisor", "scheduler", "redis", "master", "drop", "stall",
    "reset",
)  # fmt: skip
NODE_KINDS = tuple(k for k in KINDS if k != "master")  # one redis-server behind the proxy
CLUSTER_KINDS = ("child", "supervisor", "lone_supervisor", "scheduler", "master")
# mean seconds between two faults of a kind
EVERY = {
    "child": 0.2,
    "supervisor": 4.0,
    "lone_supervisor": 6.0,
    "scheduler": 5.0,
    "redis": 10.0,
    "master": 10.0,
    "drop": 1.0,
    "stall": 15.0,
    "reset": 5.0,
}
# the replies worth losing: each makes a client wonder whether its transition happened
DROP_TARGETS = ("enqueue", "claim", "complete", "fail", "heartbeat", None, "probe")
PROBE_SEQ = 20_000_000  # probes' seq numbers start here


def parse_kinds(text: str, available: tuple[str, ...] = NODE_KINDS) -> tuple[str, ...]:
    """``all`` (every kind ``available``), ``none``, or a comma-separated list of them."""
    if text == "all":
        return available
    if text in ("", "none"):
        return ()
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in available]
    if unknown:
        raise ValueError(
            f"fault kind(s) {', '.join(unknown)} not available here; "
            f"available: {', '.join(available)}"
        )
    return kinds


def schedule(kinds: tuple[str, ...], seconds: float, rng: random.Random) -> list[tuple[float, str]]:
    """(offset in seconds, kind) for every fault, in time order; intervals vary ±50 %."""
    events = []
    for kind in kinds:
        t = rng.uniform(0.3, 1.0) * EVERY[kind]
        while t < seconds:
            events.append((round(t, 3), kind))
            t += rng.uniform(0.5, 1.5) * EVERY[kind]
    return sorted(events)


def script_sha(name: str) -> bytes:
    return hashlib.sha1(jobkit_scripts.source(name).encode()).hexdigest().encode()


@dataclass
class FaultEvent:
    """One injected fault and what it cost."""

    kind: str
    at: float  # seconds since the fault phase began
    at_ms: int  # epoch ms (host clock, which Redis TIME also reads)
    victim: str = ""
    duration: float = 0.0  # Redis down / traffic stalled, seconds
    recovery: float | None = None  # fault -> canary succeeded
    released: float | None = None  # kill -> every job the victim held released
    held: int = 0  # jobs the victim held
    detail: str = ""
    drop: Drop | None = field(default=None, repr=False)
    failover: MasterKill | None = field(default=None, repr=False)  # a master kill's healing

    @property
    def end_ms(self) -> int:
        return self.at_ms + int(self.duration * 1000)

    def settle(self) -> None:
        """A master kill's duration: until the failover was over (known once healed)."""
        if self.failover is not None:
            took = self.failover.failover
            self.duration = took if took is not None else FAILOVER_TIMEOUT
            if self.failover.rejoined is not None:
                self.detail = f"rejoined as a replica after {self.failover.rejoined:.1f}s"
            if self.failover.error:
                self.detail = f"did not heal: {self.failover.error}"


class Injector:
    """Injects a schedule of faults into a running cluster and measures recovery."""

    def __init__(
        self,
        cluster: Cluster,
        proxy: FaultProxy | None,
        masters: ClusterRedis | None,
        topo_stall: float,
        seed: int,
        log_path: Path,
    ) -> None:
        self.cluster = cluster
        self.proxy = proxy  # one redis-server: drops, stalls, resets
        self.masters = masters  # a Redis Cluster: master kills
        self.stall_seconds = topo_stall
        self.rng = random.Random(seed)
        self.events: list[FaultEvent] = []
        self._drops = self._drop_targets()
        self.probes: list[str] = []  # ids of probes jobkit accepted
        self.probe_refusals = 0
        self._probe_threads: list[threading.Thread] = []
        self.recovery = Recovery(cluster.endpoints.direct_url, Book(cluster.book))
        self.log_path = log_path  # one JSON line per fault, for reading logs against
        self.began = time.monotonic()

    @staticmethod
    def _drop_targets() -> Iterator[str | None]:
        while True:
            yield from DROP_TARGETS

    # -- the schedule ----------------------------------------------------------------------

    def run(self, plan: list[tuple[float, str]]) -> None:
        """Inject every fault of ``plan`` at its time, replacing killed processes meanwhile."""
        self.began = time.monotonic()
        for offset, kind in plan:
            # a reply lost during a stall is one its client gave up on already: the drop
            # waits for traffic to flow
            while (left := self.began + offset - time.monotonic()) > 0 or (
                kind == "drop" and self.proxy is not None and self.proxy.stalled
            ):
                self.cluster.replace_exited()
                time.sleep(min(0.02, max(left, 0.001)))
            try:
                self.inject(kind)
            except Exception:  # a fault that could not be injected must not end the run
                log.exception("could not inject %s", kind)
        if self.proxy is not None:
            self.proxy.cancel_drops()
        if self.masters is not None:  # the last killed master rejoins before the drain
            while not self.masters.wait_healed(0.05):
                self.cluster.replace_exited()
        self.settle()

    def inject(self, kind: str) -> None:
        event = FaultEvent(kind, round(time.monotonic() - self.began, 3), int(time.time() * 1000))
        held: dict[str, str] = {}
        if kind == "child":
            picked = self.cluster.pick_child(self.rng)
            if picked is None:
                return
            held = self.recovery.held_by_pid(picked[1])
            self._kill(event, self.cluster.kill_child(*picked))
        elif kind in ("supervisor", "lone_supervisor"):
            live = self.cluster.live_supervisors()
            if not live:
                return
            slot, proc = self.rng.choice(live)
            held = self.recovery.held_by_worker(proc.name)
            if kind == "supervisor":
                self._kill(event, self.cluster.kill_supervisor(slot))
            else:
                self._kill(event, self.cluster.kill_supervisor_alone(slot))
        elif kind == "scheduler":
            slot = self.rng.choice(sorted(self.cluster.schedulers))
            self._kill(event, self.cluster.kill_scheduler(slot))
        elif kind == "redis":
            kill, down = self.cluster.kill_redis()
            self._kill(event, kill)
            event.duration = round(down, 3)
        elif kind == "master":
            if not self._kill_master(event):
                return
        elif kind in ("drop", "stall", "reset"):
            self._proxy_fault(kind, event)
        self.events.append(event)
        self.recovery.watch(event, held)
        line = {"kind": kind, "at": event.at, "at_ms": event.at_ms, "victim": event.victim,
                "duration": event.duration, "detail": event.detail}  # fmt: skip
        with self.log_path.open("ab") as out:
            out.write(orjson.dumps(line) + b"\n")
        (log.debug if kind == "child" else log.info)("fault: %s %s %s", kind, event.victim,
                                                     event.detail)  # fmt: skip

    def _kill_master(self, event: FaultEvent) -> bool:
        """SIGKILL a master of the cluster; False (nothing injected) while the last one
        killed has not rejoined."""
        if self.masters is None:
            raise RuntimeError("the master fault needs a Redis Cluster (--cluster)")
        kill = self.masters.kill_master(self.rng)
        if kill is None:
            log.info("fault: master skipped, the last master killed has not rejoined yet")
            return False
        self._kill(event, self.cluster.note(Kill("master", kill.address, [], kill.at_ms)))
        event.victim += f" ({', '.join(kill.queues) or 'no queue of the run'})"
        event.at_ms = kill.at_ms
        event.failover = kill
        return True

    def _proxy_fault(self, kind: str, event: FaultEvent) -> None:
        if self.proxy is None:
            raise RuntimeError(f"the {kind} fault needs the fault proxy (no --cluster)")
        if kind == "drop":
            self._drop(self.proxy, event)
        elif kind == "stall":
            self.proxy.stall(self.stall_seconds)
            event.duration = self.stall_seconds
        else:
            event.detail = f"{self.proxy.reset_all()} connections"

    def _drop(self, proxy: FaultProxy, event: FaultEvent) -> None:
        target = next(self._drops)
        if target is None:
            event.drop, event.victim = proxy.drop_next_reply(None), "any command"
        elif target != "probe":
            event.drop = proxy.drop_next_reply(script_sha(target))
            event.victim = f"{target}.lua"
        else:
            seq = PROBE_SEQ + len(self._probe_threads)
            params = Probe.Params(seq=seq).model_dump_json().encode()
            event.drop = proxy.drop_next_reply(params)  # its enqueue carries these
            event.victim = f"a probe's enqueue.lua ({params.decode()})"
            thread = threading.Thread(target=self._probe, args=(seq,), daemon=True)
            thread.start()
            self._probe_threads.append(thread)

    def _probe(self, seq: int) -> None:
        """Dispatch a job through the proxy (a fresh random id, as most dispatches have)
        while the reply of its enqueue is dropped."""
        store = Store(redis.Redis.from_url(self.cluster.jobkit_url, decode_responses=True))
        try:
            job_id = Probe.dispatch(store=store, seq=seq).id
        except redis.RedisError:
            self.probe_refusals += 1  # the caller was told: not owed
            return
        finally:
            store.redis.close()
        self.probes.append(job_id)

    def _kill(self, event: FaultEvent, kill: Kill) -> None:
        pids = f" pid {','.join(map(str, kill.pids))}" if kill.pids else ""
        event.victim = kill.name + pids
        if kill.orphans:
            event.detail = f"children left: {','.join(map(str, kill.orphans))}"

    def wait(self, timeout: float) -> None:
        """Wait for the probes and recovery measurements still running."""
        deadline = time.monotonic() + timeout
        for thread in self._probe_threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.recovery.finish(max(0.0, deadline - time.monotonic()))

    def settle(self) -> None:
        """Every master kill's duration, once it healed (see :meth:`FaultEvent.settle`)."""
        for event in self.events:
            event.settle()

    @property
    def last_end(self) -> float:
        """Monotonic time when the last fault's effect ended (stall over, Redis back)."""
        if not self.events:
            return self.began
        return max(self.began + e.at + e.duration for e in self.events)
