"""The worker supervisor: forks N long-lived children, renews their leases, enforces
timeouts and memory limits, replaces dead children, reaps expired leases, promotes
due scheduled jobs, and shuts down gracefully on SIGTERM.

Its periodic Redis work lives in :mod:`~jobkit.worker.chores` and its kill policy, with
what becomes of a dead child's jobs, in :mod:`~jobkit.worker.settle`; this module owns
the processes: signals, forks, the tick loop and the children's pipes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import signal
import socket
import time
import types
from collections import deque
from dataclasses import dataclass, field

from jobkit.backend.keys import worker_lanes
from jobkit.backend.store import Store
from jobkit.backend.worker_registry import WorkerRegistry
from jobkit.connection import connect
from jobkit.outage import Guard
from jobkit.settings import Settings
from jobkit.worker.child import Child
from jobkit.worker.child_limits import ChildState
from jobkit.worker.chores import TICK, Chores
from jobkit.worker.lifeline import Lifeline, orphaned
from jobkit.worker.protocol import OUTCOMES, retired
from jobkit.worker.settle import Settler, describe, signal_child
from jobkit.worker.slot import Slots
from jobkit.worker.strays import become_subreaper, end_strays

log = logging.getLogger("jobkit.worker")

PIPE_SIZE = 1 << 20
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
RESPAWN_FIRST = 0.2  # a child that died unexpectedly is replaced after this ...
RESPAWN_CAP = 5.0  # ... doubling with each such death in the last RESPAWN_WINDOW s
RESPAWN_WINDOW = 30.0


@dataclass
class WorkerOptions:
    """What `jobkit worker` was asked to do."""

    queues: list[str]
    weights: dict[str, float] = field(default_factory=dict)  # by queue; empty: strict order
    tags: list[str] = field(default_factory=list)
    concurrency: int = 1
    grace: float = 30.0
    prefetch: int = 1
    threads: int = 1  # runner threads per child
    max_memory_mb: float = 0.0  # 0: no limit
    max_jobs_per_child: int = 0  # a child retires after this many jobs (0: never)
    max_child_age: float = 0.0  # seconds; an older child retires after its job (0: never)
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
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.started_at = time.time()
        self.guard = Guard(log)
        self.settler = Settler(self)
        self.chores = Chores(self)
        self.lifeline = Lifeline()
        self.respawns: list[float] = []  # when to start a child in place of a dead one
        self.deaths: deque[float] = deque()  # recent unexpected deaths (monotonic)
        self.adopted: set[int] = set()  # strays re-parented to us, ended, not yet reaped

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info(
            "worker %s: queues %s, tags %s, concurrency %d, lease %.1fs",
            self.name,
            ",".join(self.options.queues),
            ",".join(self.options.tags) or "-",
            self.options.concurrency,
            self.settings.lease,
        )
        become_subreaper()  # what a job forks stays below us, to be ended (see strays)
        self.chores.connect(time.monotonic())  # Redis's config checked before any job runs
        for _ in range(self.options.concurrency):
            self._spawn()
        try:
            while self.children or not self.stopping:
                # each part of a tick guards itself; this is the net under a bug, so the
                # children are still watched and reaped (logged once per kind, backed off)
                try:
                    self._tick()
                except Exception as exc:
                    time.sleep(self.guard.failures.failed("supervising", exc))
        finally:
            end_strays(set())  # nothing a job started outlives the worker
            self._reap_strays()
            self.guard.call("leaving the worker registry", lambda: self.workers.gone(self.name))
        log.info("worker %s stopped (%s)", self.name, self._summary())
        return 0

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
            signal_child(pid, signal.SIGTERM)

    def _spawn(self) -> None:
        """Start a child, unless we are stopping.

        SIGTERM and SIGINT are blocked from just before the check of ``stopping`` until
        the child is registered, so a stop cannot fall between the two: it either came
        first (no fork) or finds the child registered, and signals it. A handler that was
        already pending when we blocked may still run in between; it set ``stopping``,
        and the check after the fork hands the new child its SIGTERM."""
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            if self.stopping:
                return
            fds: tuple[int, ...] = ()
            try:
                fds = read_fd, write_fd = os.pipe()
                slots = Slots(self.options.threads)
                parent = os.getpid()
                pid = os.fork()
            except OSError as exc:  # out of processes, memory or descriptors: later
                self._could_not_spawn(exc, fds)
                return
            if pid == 0:
                self._become_child(parent, read_fd, write_fd, slots)  # never returns
            os.close(write_fd)
            os.set_blocking(read_fd, False)
            self.children[pid] = ChildState(
                pid=pid, fd=read_fd, slots=slots, exit_fd=exit_watch(pid)
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if self.stopping:
            signal_child(pid, signal.SIGTERM)
        with contextlib.suppress(OSError):  # room for a tick's worth of messages
            fcntl.fcntl(read_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        log.debug("child %d started", pid)

    def _could_not_spawn(self, exc: OSError, fds: tuple[int, ...]) -> None:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        delay = self._respawn_delay()
        log.error("could not start a worker child (%s); trying again in %.1fs", exc, delay)
        self.respawns.append(time.monotonic() + delay)
        self.respawns.sort()

    def _become_child(self, parent: int, read_fd: int, write_fd: int, slots: Slots) -> None:
        """In the new child: run it and exit; never returns. SIGTERM and SIGINT stay
        blocked until :class:`Child` has its own handlers in place."""
        code = 1
        try:
            self.lifeline.hold(parent)
            os.close(read_fd)
            for state in self.children.values():
                os.close(state.fd)
                if state.exit_fd is not None:
                    os.close(state.exit_fd)
            code = Child(
                self.settings,
                self.name,
                self.groups,
                write_fd,
                slots,
                self.options.prefetch,
                self.options.log_jobs,
                self.all_tags,
                self.options.max_jobs_per_child,
                weights=self.options.weights,
                argument_limit=self.store.argument_limit(),
            ).run()
        except BrokenPipeError:
            orphaned()  # the supervisor is gone: its leases lapse and get reaped
        except BaseException:
            log.exception("worker child crashed")
        finally:
            os._exit(code)

    # -- the loop -------------------------------------------------------------------------

    def _tick(self) -> None:
        # Children's messages are read once per tick, not as they come: a busy child
        # sends a batch every few milliseconds and waking for each costs CPU per job.
        # A child's exit ends the wait, so a retired child is replaced at once.
        exits = [state.exit_fd for state in self.children.values() if state.exit_fd is not None]
        if exits:
            watch = select.poll()  # not select(): descriptors past 1024 with many children
            for fd in exits:
                watch.register(fd, select.POLLIN)
            watch.poll(TICK * 1000)
        else:
            time.sleep(TICK)
        for state in list(self.children.values()):
            self._read(state)
        exited = self._collect_exited()
        now = time.monotonic()
        while self.respawns and self.respawns[0] <= now and not self.stopping:
            self.respawns.pop(0)
            self._spawn()
        if exited:  # what the dead child's jobs forked was re-parented to us: end it
            # (once its replacement is serving: a look at the process table takes ms)
            self.adopted.update(end_strays(set(self.children)))
        if self.adopted:
            self._reap_strays()
        self.settler.enforce_timeouts(now)
        if self.stopping and now >= self.grace_deadline:
            self.settler.end_grace()
        self.chores.run(now)

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
        fresh = dict.fromkeys(self.counts, 0)
        state.reader.feed(b"".join(chunks), state.held, fresh)
        for outcome, n in fresh.items():
            if n:  # the worker's totals, and this child's own
                self.counts[outcome] += n
                state.counts[outcome] = state.counts.get(outcome, 0) + n

    def _reap_strays(self) -> None:
        """Collect the exit of processes re-parented to us (see strays), not children."""
        for pid in list(self.adopted):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            self.adopted.discard(pid)

    def _collect_exited(self) -> bool:
        """Settle each child that exited and have it replaced; whether any had."""
        exited = False
        for pid in list(self.children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == 0:
                continue
            exited = True
            state = self.children.pop(pid)
            self._read(state)  # messages written just before it died
            os.close(state.fd)
            if state.exit_fd is not None:
                os.close(state.exit_fd)
            self.settler.settle(state, status)
            if self.stopping:
                continue
            delay = 0.0
            if retired(status):
                log.info(
                    "child %d ran its %d jobs: replacing it", pid, self.options.max_jobs_per_child
                )
            elif state.kill_reason is None and not state.recycling:
                delay = self._respawn_delay()
                log.error(
                    "child %d died unexpectedly (%s); replacing it in %.1fs",
                    pid,
                    describe(status),
                    delay,
                )
            self.respawns.append(time.monotonic() + delay)
            self.respawns.sort()
        return exited

    def _respawn_delay(self) -> float:
        """A child that dies at start must not spin the CPU: the more died lately, the
        longer the wait before the next one starts."""
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths[0] < now - RESPAWN_WINDOW:
            self.deaths.popleft()
        return float(min(RESPAWN_CAP, RESPAWN_FIRST * 2 ** (len(self.deaths) - 1)))

    def _summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.counts.items())


def exit_watch(pid: int) -> int | None:
    """A descriptor that turns readable when child ``pid`` exits (a pidfd, Linux 5.3 and
    later); None where the system has none: the tick then sleeps its full length."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None
