"""The worker supervisor: forks N long-lived children, renews their leases, enforces
timeouts and memory limits, replaces dead children, reaps expired leases, promotes
due scheduled jobs, and shuts down gracefully on SIGTERM."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import time
import types
from dataclasses import dataclass, field

import orjson
import redis

from jobkit import registry
from jobkit.connection import connect
from jobkit.errors import UnknownJobError
from jobkit.keys import worker_lanes
from jobkit.models import Claimed, JobError
from jobkit.retry import NO_RETRY
from jobkit.settings import Settings
from jobkit.store import Lease, Store
from jobkit.worker.child import Child
from jobkit.worker.execute import record_failure
from jobkit.worker.limits import ChildState, rss_bytes
from jobkit.worker.slot import Slots
from jobkit.workers import WorkerRegistry

log = logging.getLogger("jobkit.worker")

TICK = 0.05  # seconds between checks of timeouts, children's messages and due jobs
PIPE_SIZE = 1 << 20


@dataclass
class WorkerOptions:
    """What `jobkit worker` was asked to do."""

    queues: list[str]
    tags: list[str] = field(default_factory=list)
    concurrency: int = 1
    grace: float = 30.0
    prefetch: int = 1
    threads: int = 1  # runner threads per child
    max_memory_mb: float = 0.0  # 0: no limit
    log_jobs: bool = True  # one INFO line per job start and end
    job_timeout: float = 0.0  # default hard limit for jobs that set none (0: none)
    name: str = ""


class Supervisor:
    """One `jobkit worker` process."""

    def __init__(self, settings: Settings, options: WorkerOptions) -> None:
        self.settings = settings
        self.options = options
        self.name = options.name or f"{socket.gethostname()}.{os.getpid()}"
        # `--tags '*'`: children discover the tagged lanes in Redis as they appear
        self.all_tags = "*" in options.tags
        tags = [] if self.all_tags else options.tags
        self.groups = [worker_lanes(q, tags) for q in options.queues]
        self.store: Store = connect(settings)
        self.workers = WorkerRegistry(self.store)
        self.children: dict[int, ChildState] = {}
        self.stopping = False
        self.grace_deadline = 0.0
        self.counts = {"succeeded": 0, "retrying": 0, "dead": 0, "lost": 0}
        self.started_at = time.time()
        self._next = {"beat": 0.0, "reap": 0.0, "promote": 0.0}
        self._redis_down_since: float | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self._announce()
        for _ in range(self.options.concurrency):
            self._spawn()
        try:
            while self.children or not self.stopping:
                self._tick()
        finally:
            self._safely(lambda: self.workers.gone(self.name))
        log.info("worker %s stopped (%s)", self.name, self._summary())
        return 0

    def _announce(self) -> None:
        log.info(
            "worker %s: queues %s, tags %s, concurrency %d, lease %.1fs",
            self.name,
            ",".join(self.options.queues),
            ",".join(self.options.tags) or "-",
            self.options.concurrency,
            self.settings.lease,
        )
        self._safely(self._warn_about_redis)
        self._safely(self.store.load_scripts)

    def _warn_about_redis(self) -> None:
        try:
            config = self.store.redis.config_get("maxmemory-policy")
            config.update(self.store.redis.config_get("appendonly"))
            config.update(self.store.redis.config_get("save"))
        except redis.ResponseError:
            return  # CONFIG is often disabled on managed Redis: nothing to check
        if config.get("maxmemory-policy", "noeviction") != "noeviction":
            log.warning(
                "Redis maxmemory-policy is %s: Redis may evict jobs; use noeviction",
                config["maxmemory-policy"],
            )
        if config.get("appendonly") != "yes" and not config.get("save"):
            log.warning("Redis has no persistence (no AOF, no RDB): a restart loses jobs")

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        if self.stopping:
            if signum == signal.SIGINT:  # a second Ctrl-C: stop waiting
                self.grace_deadline = 0.0
            return
        self.stopping = True
        self.grace_deadline = time.monotonic() + self.options.grace
        log.info(
            "worker %s: %s received, finishing running jobs (grace %.0fs)",
            self.name,
            signal.Signals(signum).name,
            self.options.grace,
        )
        for pid in self.children:
            self._signal_child(pid, signal.SIGTERM)

    def _spawn(self) -> None:
        read_fd, write_fd = os.pipe()
        slots = Slots(self.options.threads)
        pid = os.fork()
        if pid == 0:  # the child
            os.close(read_fd)
            for state in self.children.values():
                os.close(state.fd)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            code = 1
            try:
                code = Child(
                    self.settings,
                    self.name,
                    self.groups,
                    write_fd,
                    slots,
                    self.options.prefetch,
                    self.options.log_jobs,
                    self.all_tags,
                ).run()
            except BrokenPipeError:
                code = 0  # we are gone: the child's leases lapse and get reaped
            except Exception:
                log.exception("worker child crashed")
            finally:
                os._exit(code)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        state = ChildState(pid=pid, fd=read_fd, slots=slots)
        self.children[pid] = state
        with contextlib.suppress(OSError):  # room for a tick's worth of messages
            fcntl.fcntl(read_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        log.debug("child %d started", pid)

    @staticmethod
    def _signal_child(pid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    # -- the loop -------------------------------------------------------------------------

    def _tick(self) -> None:
        # Children's messages are read once per tick, not as they come: a busy child
        # sends a batch every few milliseconds and waking for each costs CPU per job.
        time.sleep(TICK)
        for state in list(self.children.values()):
            self._read(state)
        self._collect_exited()
        now = time.monotonic()
        self._enforce_timeouts(now)
        self._safely(self._mark_started)
        if self.stopping and now >= self.grace_deadline:
            for state in self.children.values():
                if state.kill_reason is None:
                    log.warning("grace period over: killing child %d", state.pid)
                    state.kill_reason = "shutdown"
                    self._signal_child(state.pid, signal.SIGKILL)
        self._safely(lambda: self._periodic(now))

    def _read(self, state: ChildState) -> None:
        chunks = []
        while True:
            try:
                data = os.read(state.fd, PIPE_SIZE)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
        state.reader.feed(b"".join(chunks), state.held, self.counts)

    def _mark_started(self) -> None:
        """Tell Redis which attempts began since the last tick: only those count as a
        crash if their lease lapses (a job prefetched and never started does not)."""
        fresh: list[tuple[str, str]] = []
        for state in self.children.values():
            state.marked.intersection_update(state.held)  # forget jobs no longer held
            for job_id in state.running():
                if job_id not in state.marked:
                    state.marked.add(job_id)
                    fresh.append((job_id, state.job(job_id).token))
        if fresh:
            self.store.mark_started(fresh)

    def _periodic(self, now: float) -> None:
        if now >= self._next["promote"]:
            _, wait_ms = self.store.promote()
            soon = TICK if wait_ms < 0 else min(TICK, wait_ms / 1000)
            self._next["promote"] = now + soon
        if now >= self._next["beat"]:
            self._next["beat"] = now + self.settings.heartbeat
            self._renew_leases()
            self._beat()
            self._check_memory()
        if now >= self._next["reap"]:
            self._next["reap"] = now + min(1.0, self.settings.lease / 4)
            for job_id, outcome in self.store.reap(self.settings.max_crashes):
                if outcome == "returned":
                    log.info("job %s: lease expired before it started; back in its queue", job_id)
                elif outcome == "invalid":
                    log.error("job %s: invalid record; dead-lettered (invalid_record)", job_id)
                else:
                    log.warning("job %s: lease expired (worker lost); %s", job_id, outcome)
        if self._redis_down_since is not None:
            log.info("Redis reachable again after %.1fs", now - self._redis_down_since)
            self._redis_down_since = None

    def _safely(self, fn: object) -> None:
        """Run a Redis chore; an outage is logged once and retried on later ticks."""
        try:
            fn()  # type: ignore[operator]
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if self._redis_down_since is None:
                self._redis_down_since = time.monotonic()
                log.error("Redis unreachable: %s; retrying", exc)
            time.sleep(min(1.0, 0.1 + (time.monotonic() - self._redis_down_since) / 10))

    def _renew_leases(self) -> None:
        held = [(job_id, s.job(job_id).token) for s in self.children.values() for job_id in s.held]
        lease_ms = int(self.settings.lease * 1000)
        for (job_id, _), lease in zip(held, self.store.heartbeat(lease_ms, held), strict=True):
            if lease is Lease.LOST:  # not ENDED: its outcome is recorded, the child tells us
                log.warning("job %s: lease lost (expired or taken over)", job_id)

    def _beat(self) -> None:
        jobs = [
            {"id": job_id, "name": s.job(job_id).name}
            for s in self.children.values()
            for job_id in s.running()
        ]
        rss = sum(rss_bytes(pid) for pid in self.children) + rss_bytes(os.getpid())
        ttl = max(10, int(self.settings.heartbeat * 3))
        self.workers.beat(
            self.name,
            ttl,
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "queues": ",".join(self.options.queues),
                "tags": ",".join(self.options.tags),
                "concurrency": self.options.concurrency,
                "started_at": int(self.started_at),
                "state": "stopping" if self.stopping else "running",
                "jobs": orjson.dumps(jobs).decode(),
                "rss_mb": round(rss / 2**20, 1),
                **{k: v for k, v in self.counts.items()},
            },
        )

    def _check_memory(self) -> None:
        limit = self.options.max_memory_mb * 2**20
        if not limit:
            return
        for state in self.children.values():
            rss = rss_bytes(state.pid)
            if rss > limit and not state.recycling:
                log.warning(
                    "child %d uses %.0f MB > %.0f MB: replacing it after its job",
                    state.pid,
                    rss / 2**20,
                    self.options.max_memory_mb,
                )
                state.recycling = True
                self._signal_child(state.pid, signal.SIGTERM)

    def _enforce_timeouts(self, now: float) -> None:
        for state in self.children.values():
            job_id = state.overdue(now, self.options.job_timeout)
            if job_id and state.kill_reason is None:
                log.error(
                    "job %s %s exceeded its timeout: killing child %d",
                    state.job(job_id).name,
                    job_id,
                    state.pid,
                )
                state.kill_reason = "timeout"
                state.timed_out = job_id
                self._signal_child(state.pid, signal.SIGKILL)

    # -- children that exited -----------------------------------------------------------

    def _collect_exited(self) -> None:
        for pid in list(self.children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == 0:
                continue
            state = self.children.pop(pid)
            self._read(state)  # messages written just before it died
            os.close(state.fd)
            self._settle(state, status)
            if not self.stopping:
                if state.kill_reason is None and not state.recycling:
                    log.error(
                        "child %d died unexpectedly (%s); replacing it", pid, _describe(status)
                    )
                    time.sleep(0.2)  # a child that dies at start must not spin the CPU
                self._spawn()

    def _settle(self, state: ChildState, status: int) -> None:
        """Decide the fate of every job a dead child still held.

        The job it was running crashed it (or timed out); the others never started, or
        finished without their result recorded, so they go back to their queue.
        """
        running = state.running()
        for job_id in state.held:
            held = state.job(job_id)
            job = Claimed(job_id, held.token, held.name, "", held.attempt, held.timeout, "")
            if job_id not in running or state.kill_reason == "shutdown":
                self._safely(lambda j=job: self.store.requeue(j.id, j.token, uncount=True))
                log.info("job %s %s requeued (its worker child stopped)", job.name, job_id)
            elif state.kill_reason == "timeout" and job_id != state.timed_out:
                # a bystander in another thread of the killed child: not its fault
                self._safely(lambda j=job: self.store.requeue(j.id, j.token, uncount=True))
                log.warning(
                    "job %s %s requeued (another job's timeout killed its child)", job.name, job_id
                )
            elif state.kill_reason == "timeout":
                self._record_timeout(job)
            else:
                # a crash: end the lease now so the reaper counts it without waiting
                self._safely(lambda j=job: self.store.mark_crashed([(j.id, j.token)]))
                log.error("job %s %s crashed its worker (%s)", job.name, job_id, _describe(status))

    def _record_timeout(self, job: Claimed) -> None:
        try:
            policy = registry.lookup(job.name).retry
        except UnknownJobError:
            policy = NO_RETRY
        decision = policy.decide_timeout(job.attempts)
        limit = job.timeout or self.options.job_timeout
        error = JobError("JobTimeout", f"attempt exceeded its {limit:g}s timeout and was killed")
        outcome = record_failure(self.store, self.settings, job, decision, error)
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    def _summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.counts.items())


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
