"""The supervisor's kill policy, and what becomes of the jobs of a child that is gone.

The supervisor kills a child whose job overran its timeout, and every child still busy
when a graceful stop's grace period ends; it asks a child that grew past the memory limit
to exit after its job. When a child is gone, for whatever reason, each job it still held
is settled here: the job it was running crashed it (or timed out), the others go back
to their queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import TYPE_CHECKING

from jobkit import registry
from jobkit.errors import UnknownJobError
from jobkit.models import Claimed, JobError
from jobkit.retry import NO_RETRY
from jobkit.worker.execute import record_failure
from jobkit.worker.limits import ChildState, KillReason, rss_bytes
from jobkit.worker.protocol import Held
from jobkit.worker.strays import kill_tree

if TYPE_CHECKING:
    from jobkit.worker.supervisor import Supervisor

log = logging.getLogger("jobkit.worker")


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
            state.timed_out = handle
            kill_tree(state.pid)  # with what its job forked

    def end_grace(self) -> None:
        """The grace period of a graceful stop is over: kill whoever is still busy."""
        for state in self.sup.children.values():
            if state.kill_reason is None:
                log.warning("grace period over: killing child %d", state.pid)
                state.kill_reason = KillReason.SHUTDOWN
                signal_child(state.pid, signal.SIGKILL)

    def check_memory(self) -> None:
        """Ask every child over ``--max-memory`` to exit after its current job."""
        limit = self.sup.options.max_memory_mb * 2**20
        if not limit:
            return
        for state in self.sup.children.values():
            rss = rss_bytes(state.pid)
            if rss > limit and not state.recycling:
                log.warning(
                    "child %d uses %.0f MB > %.0f MB: replacing it after its job",
                    state.pid,
                    rss / 2**20,
                    self.sup.options.max_memory_mb,
                )
                state.recycling = True
                signal_child(state.pid, signal.SIGTERM)

    # -- settling ---------------------------------------------------------------------

    def settle(self, state: ChildState, status: int) -> None:
        """Decide the fate of every job a dead child still held.

        The job it was running crashed it (or timed out); the others never started, or
        finished without their result recorded, so they go back to their queue. Each
        decision is one Redis call of its own: one that fails is logged, and the job's
        lease lapses and is reaped later instead.
        """
        running = state.running()
        for handle, job in state.jobs():
            claimed = Claimed(job.id, job.token, job.name, "", job.attempt, job.timeout, "")
            if handle not in running or state.kill_reason is KillReason.SHUTDOWN:
                self._requeue(claimed, "its worker child stopped")
            elif state.kill_reason is KillReason.TIMEOUT and handle != state.timed_out:
                # a bystander in another thread of the killed child: not its fault
                self._requeue(claimed, "another job's timeout killed its child")
            elif state.kill_reason is KillReason.TIMEOUT:
                self._timeout(claimed)
            else:
                self._crashed(job, status)

    def _requeue(self, job: Claimed, why: str) -> None:
        failed = self.sup.guard.call(
            "requeueing a job", lambda: self.sup.store.requeue(job.id, job.token, uncount=True)
        )
        if failed is not None:
            return
        log.info("job %s %s requeued (%s)", job.name, job.id, why)

    def _crashed(self, job: Held, status: int) -> None:
        # mark it started (it ran: its slot showed it) and end its lease now, so the
        # reaper counts the crash without waiting for the lease to run out
        self.sup.guard.call(
            "recording a crash",
            lambda: self.sup.store.mark_crashed([(job.id, job.token)]),
        )
        log.error("job %s %s crashed its worker (%s)", job.name, job.id, describe(status))

    def _timeout(self, job: Claimed) -> None:
        self.sup.guard.call("recording a timeout", lambda: self._record_timeout(job))

    def _record_timeout(self, job: Claimed) -> None:
        try:
            policy = registry.lookup(job.name).retry
        except UnknownJobError:
            policy = NO_RETRY
        decision = policy.decide_timeout(job.attempts)
        limit = job.timeout or self.sup.options.job_timeout
        error = JobError("JobTimeout", f"attempt exceeded its {limit:g}s timeout and was killed")
        outcome = record_failure(self.sup.store, self.sup.settings, job, decision, error)
        self.sup.counts[outcome] = self.sup.counts.get(outcome, 0) + 1
