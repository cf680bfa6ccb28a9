"""The fault schedule, its injection, and how long the system takes to recover from each.

Kinds (``--faults``): ``child`` (SIGKILL a worker child), ``supervisor`` (SIGKILL a
supervisor's whole group), ``lone_supervisor`` (SIGKILL the supervisor only: its children
are left to notice), ``scheduler``, ``redis`` (SIGKILL redis-server, restart it from its
AOF), ``drop`` (the proxy swallows one reply), ``stall`` (the proxy holds all traffic longer
than the socket timeout) and ``reset`` (the proxy resets every connection). Killed
processes are replaced at once, as a process manager would.

Recovery is measured two ways:

- every fault is followed by a *canary*: a job dispatched straight to redis-server on a
  queue the workers check first; the time from the fault until it succeeded is how long
  until jobs flow again (after a Redis restart it includes the restart);
- a kill also times how long until the jobs its victim held are released: requeued,
  reaped or finished (after a whole supervisor dies that is its lease running out).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from jobkit import Status
from jobkit import scripts as jobkit_scripts
from jobkit.keys import Keys
from jobkit.store import Store
from stress.cluster import Cluster, Kill
from stress.jobs import Book, Canary
from stress.proxy import Drop, FaultProxy

log = logging.getLogger("stress")

KINDS = ("child", "supervisor", "lone_supervisor", "scheduler", "redis", "drop", "stall", "reset")
# mean seconds between two faults of a kind
EVERY = {
    "child": 0.2,
    "supervisor": 4.0,
    "lone_supervisor": 6.0,
    "scheduler": 5.0,
    "redis": 10.0,
    "drop": 1.0,
    "stall": 9.0,
    "reset": 5.0,
}
# the replies worth losing: each makes a client wonder whether its transition happened
DROP_TARGETS = ("enqueue", "claim", "complete", "fail", "heartbeat", None)
CANARY_PATIENCE = 90.0
CANARY_SEQ = 10_000_000  # canaries' seq numbers start here, apart from the plan's


def parse_kinds(text: str) -> tuple[str, ...]:
    """``all``, ``none`` or a comma-separated list of :data:`KINDS`."""
    if text == "all":
        return KINDS
    if text in ("", "none"):
        return ()
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
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

    @property
    def end_ms(self) -> int:
        return self.at_ms + int(self.duration * 1000)


class Injector:
    """Injects a schedule of faults into a running cluster and measures recovery."""

    def __init__(self, cluster: Cluster, proxy: FaultProxy, topo_stall: float, seed: int):
        self.cluster = cluster
        self.proxy = proxy
        self.stall_seconds = topo_stall
        self.rng = random.Random(seed)
        self.events: list[FaultEvent] = []
        self.canaries: list[str] = []  # ids of canaries jobkit accepted
        self.canary_refusals = 0
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._drops = self._drop_targets()
        url = cluster.server.url + "?socket_timeout=2&socket_connect_timeout=2"
        self.direct = redis.Redis.from_url(url, decode_responses=True)
        self.store = Store(redis.Redis.from_url(url, decode_responses=True))
        self.keys = Keys()
        self.book = Book(cluster.book)
        self.began = time.monotonic()

    @staticmethod
    def _drop_targets() -> Iterator[bytes | None]:
        while True:
            for name in DROP_TARGETS:
                yield None if name is None else script_sha(name)

    # -- the schedule ----------------------------------------------------------------------

    def run(self, plan: list[tuple[float, str]]) -> None:
        """Inject every fault of ``plan`` at its time, replacing killed processes meanwhile."""
        self.began = time.monotonic()
        for offset, kind in plan:
            while (left := self.began + offset - time.monotonic()) > 0:
                self.cluster.replace_exited()
                time.sleep(min(0.02, left))
            try:
                self.inject(kind)
            except Exception:  # a fault that could not be injected must not end the run
                log.exception("could not inject %s", kind)
        self.proxy.cancel_drops()

    def inject(self, kind: str) -> None:
        event = FaultEvent(kind, round(time.monotonic() - self.began, 3), int(time.time() * 1000))
        held: dict[str, str] = {}
        if kind == "child":
            picked = self.cluster.pick_child(self.rng)
            if picked is None:
                return
            held = self._held_by_pid(picked[1])
            self._kill(event, self.cluster.kill_child(*picked))
        elif kind in ("supervisor", "lone_supervisor"):
            live = self.cluster.live_supervisors()
            if not live:
                return
            slot, proc = self.rng.choice(live)
            held = self._held_by_worker(proc.name)
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
        elif kind == "drop":
            target = next(self._drops)
            event.drop = self.proxy.drop_next_reply(target)
            event.victim = "any command" if target is None else _script_of(target)
        elif kind == "stall":
            self.proxy.stall(self.stall_seconds)
            event.duration = self.stall_seconds
        elif kind == "reset":
            event.detail = f"{self.proxy.reset_all()} connections"
        with self._lock:
            self.events.append(event)
        self._measure(event, held)

    def _kill(self, event: FaultEvent, kill: Kill) -> None:
        event.victim = f"{kill.name} pid {','.join(map(str, kill.pids))}"
        if kill.orphans:
            event.detail = f"children left: {','.join(map(str, kill.orphans))}"

    def wait(self, timeout: float) -> None:
        """Wait for the recovery measurements still running."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def last_end(self) -> float:
        """Monotonic time when the last fault's effect ended (stall over, Redis back)."""
        if not self.events:
            return self.began
        return max(self.began + e.at + e.duration for e in self.events)

    # -- recovery --------------------------------------------------------------------------

    def _held_by_pid(self, pid: int) -> dict[str, str]:
        """The job a worker child runs now, with its lease token."""
        try:
            job_id = str(self.direct.get(self.book.pid(pid)) or "")
            if not job_id:
                return {}
            status, lease = self.direct.hmget(self.keys.job(job_id), "status", "lease")
        except redis.RedisError:
            return {}
        return {job_id: str(lease or "")} if status == Status.RUNNING.value else {}

    def _held_by_worker(self, name: str) -> dict[str, str]:
        """Running jobs a supervisor's children hold, with their lease tokens."""
        try:
            ids = [str(i) for i in self.direct.zrange(self.keys.running, 0, -1)]
            pipe = self.direct.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(self.keys.job(job_id), "worker", "lease")
            rows = pipe.execute()
        except redis.RedisError:
            return {}
        pairs = zip(ids, rows, strict=True)
        return {job_id: lease or "" for job_id, (worker, lease) in pairs if worker == name}

    def _measure(self, event: FaultEvent, held: dict[str, str]) -> None:
        """Start the canary, and the watch on the victim's jobs, each in a thread."""
        event.held = len(held)
        started = time.monotonic()

        def canary() -> None:
            event.recovery = self._canary(started)

        def release() -> None:
            event.released = self._until_released(held, started)

        for target in (canary, release) if held else (canary,):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _until_released(self, held: dict[str, str], started: float) -> float | None:
        left = dict(held)
        while left and time.monotonic() - started < CANARY_PATIENCE:
            for job_id, lease in list(left.items()):
                try:
                    status, now = self.direct.hmget(self.keys.job(job_id), "status", "lease")
                except redis.RedisError:
                    break
                if status != Status.RUNNING.value or (now or "") != lease:
                    del left[job_id]
            time.sleep(0.05)
        return None if left else round(time.monotonic() - started, 3)

    def _canary(self, started: float) -> float | None:
        """Seconds from ``started`` until a canary dispatched now has succeeded."""
        with self._lock:
            seq = CANARY_SEQ + len(self.canaries) + self.canary_refusals
        job_id = None
        while job_id is None and time.monotonic() - started < CANARY_PATIENCE:
            try:
                job_id = Canary.dispatch(store=self.store, seq=seq).id
            except redis.RedisError as exc:  # Redis restarting: the dispatch was not accepted
                with self._lock:
                    self.canary_refusals += 1
                    if self.canary_refusals <= 3:
                        log.warning("canary dispatch refused: %s: %s", type(exc).__name__, exc)
                time.sleep(0.05)
        if job_id is None:
            return None
        with self._lock:
            self.canaries.append(job_id)
        while time.monotonic() - started < CANARY_PATIENCE:
            try:
                record = self.store.get(job_id)
            except redis.RedisError:
                record = None
            if record is not None and record.status is Status.SUCCEEDED:
                return round(time.monotonic() - started, 3)
            if record is not None and record.status is Status.DEAD:
                return None
            time.sleep(0.02)
        return None


def _script_of(sha: bytes) -> str:
    for name in DROP_TARGETS:
        if name is not None and script_sha(name) == sha:
            return f"{name}.lua"
    return sha.decode()
