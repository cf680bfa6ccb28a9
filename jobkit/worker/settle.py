"""The supervisor's kill policy, and what becomes of the jobs of a child that is gone.

The supervisor kills a child whose job overran its timeout, grew past the memory limit
while running a job, or was cancelled, and every child still busy when a graceful stop's
grace period ends. It asks a child that is over the memory limit between jobs, or older
than ``--max-child-age``, to exit after its current job (never killing it). When a child
is gone, for whatever reason, each job it still held is settled here: the job it was
running crashed it (or timed out, outgrew the memory limit, was cancelled), the others go
back to their queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from typing import TYPE_CHECKING

from jobkit import registry
from jobkit.errors import UnknownJobError
from jobkit.logs import job_line
from jobkit.models import Claimed, DeadReason, JobError
from jobkit.retry import NO_RETRY
from jobkit.status import Outcome
from jobkit.worker.child_limits import ChildState, KillReason, rss_bytes
from jobkit.worker.execute import record_failure
from jobkit.worker.protocol import Held
from jobkit.worker.strays import kill_tree

if TYPE_CHECKING:
    from jobkit.worker.supervisor import Supervisor

log = logging.getLogger("jobkit.worker")

CANCELLED = Outcome.CANCELLED.value  # counted beside the children's (protocol.OUTCOMES)
REQUEUED, CRASHED = "requeued", "crashed"  # what log lines say became of an attempt


def describe(status: int) -> str:
    """How a child ended, from its wait status."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def signal_child(pid: int, signum: int) -> None:
    """Send ``signum`` to a child that may have exited already."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


class Settler:
    """Kills children by policy and settles the jobs of children that are gone."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor

    # -- kill policy ------------------------------------------------------------------

    def enforce_timeouts(self, now: float) -> None:
        """Kill every child running a job past its timeout."""
        for state in self.sup.children.values():
            handle = state.overdue(now, self.sup.options.job_timeout)
            if handle is None or state.kill_reason is not None:
                continue
            job = state.job(handle)
            log.error(
                "job %s %s exceeded its timeout: killing child %d",
                job.name if job else "?",
                job.id if job else "?",
                state.pid,
            )
            state.kill_reason = KillReason.TIMEOUT
            state.blamed = {handle}
            kill_tree(state.pid)  # with what its job forked

    def end_grace(self) -> None:
        """The grace period of a graceful stop is over: kill whoever is still busy."""
        for state in self.sup.children.values():
            if state.kill_reason is None:
                log.warning("grace period over: killing child %d", state.pid)
                state.kill_reason = KillReason.SHUTDOWN
                signal_child(state.pid, signal.SIGKILL)

    def check_limits(self, now: float) -> None:
        """Kill every child over ``--max-memory`` that runs a job (the job is charged);
        ask one over it between jobs, or older than ``--max-child-age``, to exit after
        its current job."""
        options = self.sup.options
        limit = options.max_memory_mb * 2**20
        for state in self.sup.children.values():
            if state.kill_reason is not None:
                continue
            rss = rss_bytes(state.pid) if limit else 0
            if rss > limit:
                self._over_memory(state, rss)
            elif options.max_child_age and now - state.born >= options.max_child_age:
                self._recycle(state, f"is {now - state.born:.0f}s old (--max-child-age)")

    def _over_memory(self, state: ChildState, rss: int) -> None:
        used, limit = rss / 2**20, self.sup.options.max_memory_mb
        running = state.running()
        if not running:
            self._recycle(state, f"uses {used:.0f} MB > {limit:g} MB between jobs")
            return
        names = ", ".join(f"{j.name} {j.id}" for h in running if (j := state.job(h)))
        log.error(
            "child %d uses %.0f MB > %g MB running %s: killing it", state.pid, used, limit, names
        )
        state.kill_reason = KillReason.MEMORY
        state.blamed = set(running)
        state.note = f"its worker child used {used:.0f} MB, over the {limit:g} MB limit"
        kill_tree(state.pid)

    def _recycle(self, state: ChildState, why: str) -> None:
        """Ask a child to exit after its current job; a new one takes its place."""
        if state.recycling:
            return
        log.info("child %d %s: replacing it after its current job", state.pid, why)
        state.recycling = True
        signal_child(state.pid, signal.SIGTERM)

    def cancel(self, state: ChildState, handle: str, job: Held) -> None:
        """A job of ``state``'s was cancelled: kill its child if it runs the job (one it
        holds unstarted is stopped once it starts, or cancelled when claimed again)."""
        if handle in state.cancelled or handle not in state.running():
            return
        log.warning("job %s %s cancelled: killing child %d", job.name, job.id, state.pid)
        state.cancelled.add(handle)
        state.kill_reason = state.kill_reason or KillReason.CANCEL
        kill_tree(state.pid)

    # -- settling ---------------------------------------------------------------------

    def settle(self, state: ChildState, status: int) -> None:
        """Decide the fate of every job a dead child still held.

        The job it was running crashed it (or timed out); the others never started, or
        finished without their result recorded, so they go back to their queue. Each
        decision is one Redis call of its own: one that fails is logged, and the job's
        lease lapses and is reaped later instead.
        """
        running = state.running()
        reason = state.kill_reason
        for handle, job in state.jobs():
            claimed = Claimed(job.id, job.token, job.name, "", job.attempt, job.timeout, "")
            if handle not in running:
                self._requeue(claimed, "its worker child stopped")
            elif handle in state.cancelled:
                self._cancelled(claimed)
            elif reason is KillReason.SHUTDOWN:
                self._requeue(claimed, "its worker child stopped")
            elif reason is not None and handle not in state.blamed:
                # a bystander in another thread of the killed child: not its fault
                self._requeue(claimed, f"another job's {reason.value} killed its child")
            elif reason is KillReason.TIMEOUT or reason is KillReason.MEMORY:
                self._killed(claimed, reason, state.note, time.monotonic() - running[handle])
            else:
                self._crashed(job, status)

    def _requeue(self, job: Claimed, why: str) -> None:
        failed = self.sup.guard.call(
            "requeueing a job",
            lambda: self.sup.store.leasing.requeue(job.id, job.token, uncount=True),
        )
        if failed is not None:
            return
        log.info(
            "job %s %s requeued (%s)",
            job.name,
            job.id,
            why,
            extra=job_line(job.id, job.name, job.attempts, REQUEUED),
        )

    def _crashed(self, job: Held, status: int) -> None:
        # mark it started (it ran: its slot showed it) and end its lease now, so the
        # reaper counts the crash without waiting for the lease to run out
        self.sup.guard.call(
            "recording a crash",
            lambda: self.sup.store.leasing.mark_crashed([(job.id, job.token)]),
        )
        log.error(
            "job %s %s crashed its worker (%s)",
            job.name,
            job.id,
            describe(status),
            extra=job_line(job.id, job.name, job.attempt, CRASHED),
        )

    def _cancelled(self, job: Claimed) -> None:
        self.sup.guard.call("recording a cancel", lambda: self._end_cancelled(job))

    def _end_cancelled(self, job: Claimed) -> None:
        if not self.sup.store.leasing.end_cancelled(
            job.id, job.token, self.sup.settings.result_ttl
        ):
            log.warning("job %s %s: its attempt ended before its cancel", job.name, job.id)
            return
        self.sup.counts[CANCELLED] = self.sup.counts.get(CANCELLED, 0) + 1
        log.info(
            "job %s %s cancelled (attempt %d)",
            job.name,
            job.id,
            job.attempts,
            extra=job_line(job.id, job.name, job.attempts, CANCELLED),
        )

    def _killed(self, job: Claimed, reason: KillReason, note: str, elapsed: float) -> None:
        self.sup.guard.call(
            f"recording a {reason.value} kill", lambda: self._record(job, note, elapsed)
        )

    def _record(self, job: Claimed, note: str, elapsed: float) -> None:
        """Apply the job's retry policy to an attempt killed for its timeout, or for its
        memory when ``note`` says what it used."""
        try:
            policy = registry.lookup(job.name).retry
        except UnknownJobError:
            policy = NO_RETRY
        if note:
            decision = policy.decide_killed(job.attempts, DeadReason.MEMORY)
            error = JobError("MemoryLimit", f"{note} (--max-memory) and was killed")
        else:
            decision = policy.decide_killed(job.attempts, DeadReason.TIMEOUT)
            limit = job.timeout or self.sup.options.job_timeout
            error = JobError(
                "JobTimeout", f"attempt exceeded its {limit:g}s timeout and was killed"
            )
        outcome = record_failure(self.sup.store, self.sup.settings, job, decision, error, elapsed)
        self.sup.counts[outcome] = self.sup.counts.get(outcome, 0) + 1
