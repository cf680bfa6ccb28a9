"""The system under test: worker supervisors, schedulers and producers, each started as
``python -m ...`` in a process group of its own, and the kills the fault schedule asks
for; the Redis they use is named by :class:`Endpoints`.

On one redis-server (AOF) every jobkit process reaches Redis through the fault proxy;
only the jobs' bookkeeping, the canaries' dispatch and the checker talk to redis-server
directly. On a Redis Cluster (``--cluster``) there is no proxy: everyone talks to the
nodes (see :mod:`stress.rediscluster`).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from jobkit.backend.keys import Keys
from stress.procs import Proc, Procs, RedisProc, base_env
from stress.shards import connect


@dataclass(frozen=True)
class Topology:
    """How many of each process, and the jobkit settings they run with."""

    supervisors: int = 3
    children: int = 3
    schedulers: int = 2
    producers: int = 3
    lease: float = 10.0
    heartbeat: float = 1.0
    # Above the 2 s an idle worker child blocks on Redis (BLPOP), below a stall.
    socket_timeout: float = 3.0
    max_crashes: int = 4
    prefetch: int = 16


@dataclass(frozen=True)
class Endpoints:
    """Where the run's Redis is, and the queues its jobs go to."""

    jobkit_url: str  # every jobkit process: the fault proxy, or the cluster's nodes
    direct_url: str  # the real Redis: bookkeeping, canaries, the checker
    queues: tuple[str, ...] = ("default",)  # workers serve "canary" first, then these


@dataclass
class Kill:
    """One SIGKILL the harness sent: who, when (ms, the host clock Redis TIME also reads)."""

    kind: str
    name: str
    pids: list[int]
    at_ms: int
    group: int | None = None  # the whole process group was killed
    orphans: list[int] = field(default_factory=list)  # children left alive (leader only)


@dataclass
class Exit:
    """A process that ended without the harness killing it."""

    name: str
    code: int | None
    log_tail: str


class Cluster:
    """Starts, kills and replaces the processes of one run."""

    def __init__(
        self,
        procs: Procs,
        endpoints: Endpoints,
        topo: Topology,
        book: str,
        server: RedisProc | None = None,
    ) -> None:
        self.procs = procs
        self.endpoints = endpoints
        self.server = server  # one redis-server: the `redis` fault restarts it
        self.topo = topo
        self.book = book
        self.supervisors: dict[int, Proc] = {}
        self.schedulers: dict[int, Proc] = {}
        self.producers: list[Proc] = []
        self.generation = 0
        self.kills: list[Kill] = []
        self.exits: list[Exit] = []
        self._killed: set[int] = set()  # leader pids we killed: their exit is expected

    @property
    def jobkit_url(self) -> str:
        """The proxy (or the cluster): every jobkit client goes through it."""
        return self.endpoints.jobkit_url

    def env(self) -> dict[str, str]:
        # a socket timeout short enough for stalls and lost replies to bite (3 s is the
        # least jobkit takes: idle workers block 2 s in Redis on purpose)
        t = str(self.topo.socket_timeout)
        return base_env(
            JOBKIT_REDIS_URL=self.jobkit_url,
            JOBKIT_SOCKET_TIMEOUT=t,
            JOBKIT_SOCKET_CONNECT_TIMEOUT=t,
            JOBKIT_MAX_CRASHES=str(self.topo.max_crashes),
            STRESS_DIRECT_URL=self.endpoints.direct_url,
            STRESS_BOOK=self.book,
        )

    # -- starting ------------------------------------------------------------------------

    def start(self) -> None:
        for slot in range(self.topo.supervisors):
            self.start_supervisor(slot)
        for slot in range(self.topo.schedulers):
            self.start_scheduler(slot)

    def start_supervisor(self, slot: int) -> Proc:
        self.generation += 1
        name = f"s{slot}g{self.generation}"
        args = [
            "jobkit", "worker", "-A", "stress.jobs",
            "-q", ",".join(["canary", *self.endpoints.queues]),
            "-c", str(self.topo.children),
            "--prefetch", str(self.topo.prefetch),
            "--lease", str(self.topo.lease),
            "--heartbeat", str(self.topo.heartbeat),
            "--grace", "5",
            "--name", name,
        ]  # fmt: skip
        proc = self.supervisors[slot] = self.procs.python(name, args, self.env())
        return proc

    def start_scheduler(self, slot: int) -> Proc:
        self.generation += 1
        name = f"sched{slot}g{self.generation}"
        args = ["jobkit", "scheduler", "-A", "stress.jobs"]
        proc = self.schedulers[slot] = self.procs.python(name, args, self.env())
        return proc

    def start_producers(self, plans: list[Path], outs: list[Path], tag: str) -> None:
        for index, (plan, out) in enumerate(zip(plans, outs, strict=True)):
            args = ["stress.producer", str(plan), str(out), tag]
            self.producers.append(self.procs.python(f"producer{index}", args, self.env()))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Every supervisor forked all its children and registered in Redis."""
        client = connect(self.endpoints.direct_url)
        keys = Keys()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready = all(
                    len(p.children()) >= self.topo.children and client.exists(keys.worker(p.name))
                    for p in self.supervisors.values()
                )
                if ready:
                    return
                for proc in [*self.supervisors.values(), *self.schedulers.values()]:
                    if not proc.alive():
                        raise RuntimeError(f"{proc.name} exited at start:\n{proc.log_tail()}")
                time.sleep(0.1)
        finally:
            client.close()
        raise RuntimeError("workers did not become ready in time")

    # -- kills ---------------------------------------------------------------------------

    def note(self, kill: Kill) -> Kill:
        """Record a kill (the checker matches crashes against them)."""
        self.kills.append(kill)
        return kill

    def live_supervisors(self) -> list[tuple[int, Proc]]:
        return [(s, p) for s, p in sorted(self.supervisors.items()) if p.alive()]

    def pick_child(self, rng: random.Random) -> tuple[Proc, int] | None:
        """A worker child of a live supervisor, at random."""
        candidates = [(p, c) for _, p in self.live_supervisors() for c in p.children()]
        return rng.choice(candidates) if candidates else None

    def kill_child(self, proc: Proc, child: int) -> Kill:
        """SIGKILL one worker child; its supervisor must notice and replace it."""
        at = _now_ms()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        return self.note(Kill("child", proc.name, [child], at))

    def kill_supervisor(self, slot: int) -> Kill:
        """SIGKILL a supervisor's whole group: it and its children, mid-job."""
        proc = self.supervisors[slot]
        pids = proc.group()
        at = _now_ms()
        self._killed.add(proc.pid)
        proc.kill_group()
        return self.note(Kill("supervisor", proc.name, pids, at, group=proc.pid))

    def kill_supervisor_alone(self, slot: int) -> Kill:
        """SIGKILL the supervisor only: its children must notice and stop by themselves."""
        proc = self.supervisors[slot]
        children = proc.children()
        at = _now_ms()
        self._killed.add(proc.pid)
        proc.kill_leader()
        return self.note(Kill("lone_supervisor", proc.name, [proc.pid], at, orphans=children))

    def kill_scheduler(self, slot: int) -> Kill:
        proc = self.schedulers[slot]
        at = _now_ms()
        self._killed.add(proc.pid)
        proc.kill_group()
        return self.note(Kill("scheduler", proc.name, [proc.pid], at, group=proc.pid))

    def kill_redis(self) -> tuple[Kill, float]:
        """SIGKILL redis-server and start it again from its AOF; (kill, seconds down)."""
        if self.server is None:
            raise RuntimeError("no redis-server of this run to kill")
        proc = self.server.proc
        pid = proc.pid if proc else 0
        kill = self.note(Kill("redis", "redis-server", [pid], _now_ms(), group=pid))
        return kill, self.server.restart()

    # -- watching ------------------------------------------------------------------------

    def replace_exited(self) -> None:
        """Start a new process for every supervisor or scheduler that is gone; one that
        ended without our kill is recorded as a finding."""
        for table, start in ((self.supervisors, self.start_supervisor),
                             (self.schedulers, self.start_scheduler)):  # fmt: skip
            for slot, proc in list(table.items()):
                if proc.alive():
                    continue
                if proc.pid not in self._killed:
                    self.exits.append(Exit(proc.name, proc.exit_code(), proc.log_tail()))
                    self._killed.add(proc.pid)  # recorded once
                start(slot)

    def producers_done(self) -> bool:
        return all(not p.alive() for p in self.producers)

    def orphans_alive(self) -> list[int]:
        """Children of supervisors killed alone that still run."""
        alive = []
        for kill in self.kills:
            for pid in kill.orphans:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, 0)
                    if _state(pid) not in ("Z", "X", ""):
                        alive.append(pid)
        return alive

    def child_deaths_not_ours(self) -> list[str]:
        """Worker children the supervisors saw die that the harness did not kill."""
        ours = {pid for k in self.kills for pid in k.pids}
        found = []
        for proc in self.procs.groups:
            if not proc.name.startswith("s") or proc.name.startswith("sched"):
                continue
            with contextlib.suppress(OSError):
                lines = proc.log_path.read_text(errors="replace").splitlines()
                for line in lines:
                    m = _DIED.search(line)
                    if m and int(m.group(1)) not in ours:
                        why = _last_error(lines, m.group(1))
                        found.append(f"{proc.name}: {m.group(0)}{': ' + why if why else ''}")
        return found


_DIED = re.compile(r"child (\d+) died unexpectedly \(([^)]*)\)")
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


def _last_error(lines: list[str], pid: str) -> str:
    """The exception a process logged last (the final line of its last traceback)."""
    error = ""
    mine = False
    for line in lines:
        if f"[{pid}]" in line:
            mine = True
        elif line[:4].isdigit():  # another process's log line
            mine = False
        elif mine and _ERROR_LINE.match(line):
            error = line.strip()[:200]
    return error


def _now_ms() -> int:
    return int(time.time() * 1000)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]
