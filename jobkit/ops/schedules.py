"""Cron schedules as an operator sees them (``jobkit schedules``): each schedule's state,
next and last runs; pause, resume, run now.

Schedules are declared in code, so every function here takes the schedules the caller
loaded (:func:`jobkit.cron.collect` over the registered classes) and finds one by its
key; their state lives in Redis, in the schedule's hash in its job's queue shard.

- Pausing is a flag in that hash which ``cron_fire.lua`` checks: slots that fall due while
  it is set are skipped (the cursor moves past them, counted ``skipped``), so a resume
  fires the next slot and no backlog, whatever the misfire policy.
- Run now enqueues the schedule's job with its params under a fresh id (never a slot's,
  so no slot is taken or skipped for it), paused or not, and records it as the last run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jobkit.backend.cron import LastJob, ScheduleState, ScheduleStore
from jobkit.backend.problems import Found
from jobkit.backend.store import Store
from jobkit.cron import BoundSchedule
from jobkit.errors import UnknownSchedule

NEXT_RUNS = 3  # next run times shown per schedule
_KNOWN_SHOWN = 10  # schedule keys an UnknownSchedule error lists


def find_schedule(schedules: Sequence[BoundSchedule], key: str) -> BoundSchedule:
    """The schedule of ``schedules`` whose key is ``key``; :class:`UnknownSchedule`
    (naming some known keys) if none is."""
    for bound in schedules:
        if bound.key == key:
            return bound
    keys = sorted(b.key for b in schedules)
    known = ", ".join(keys[:_KNOWN_SHOWN]) or "none declared"
    if len(keys) > _KNOWN_SHOWN:
        known += f" and {len(keys) - _KNOWN_SHOWN} more"
    raise UnknownSchedule(f"unknown schedule {key!r} (schedules: {known})")


def pause_schedule(store: Store, bound: BoundSchedule) -> bool:
    """Pause ``bound``: its due slots are skipped until it is resumed (run now still
    works); False if it was paused already."""
    return ScheduleStore(store).pause(bound)


def resume_schedule(store: Store, bound: BoundSchedule) -> bool:
    """Resume ``bound``: its next slot fires, and none of those due while it was paused;
    False if it was not paused."""
    return ScheduleStore(store).resume(bound)


def run_schedule_now(store: Store, bound: BoundSchedule) -> str:
    """Enqueue ``bound``'s job now with the schedule's params, under a fresh id, and
    record it as the schedule's last run; the job's id."""
    job = bound.job.new_job(dict(bound.cron.params))  # validated as any dispatch
    store.register_queues([bound.job.queue])  # the views find its queue, as a dispatch's
    return ScheduleStore(store).run_now(bound, job)


def schedule_rows(store: Store, schedules: Sequence[BoundSchedule]) -> Found[dict[str, Any]]:
    """One row per schedule, as ``jobkit schedules --json`` prints it: its declaration,
    whether it is paused, its next run times and its last run with the job's outcome.
    Times are ISO 8601 in the schedule's zone. A schedule whose hash is of another type
    is shown as never run, and its key named in ``problems``."""
    sched = ScheduleStore(store)
    now = sched.now()
    found = sched.states(schedules)
    states = found.items
    last = sched.last_jobs([s.last_job for s in states])
    rows = [_row(b, st, job, now) for b, st, job in zip(schedules, states, last, strict=True)]
    return Found(rows, found.problems)


def _row(b: BoundSchedule, st: ScheduleState, job: LastJob | None, now: float) -> dict[str, Any]:
    def iso(t: float | None) -> str | None:
        return None if t is None else datetime.fromtimestamp(t, b.cron.zone).isoformat()

    # the last job is a slot's, or a run-now's (its own id: see run_now_id)
    by_cron = (
        st.last_job is not None
        and st.last_slot is not None
        and (st.last_job == b.job_id(st.last_slot))
    )
    trigger = None if st.last_job is None else "cron" if by_cron else "run now"
    last_run = st.last_slot if by_cron else st.last_fired_at
    after = max(now, st.cursor or 0)
    return {
        "schedule": b.key,
        "job": b.job.name,
        "queue": b.job.queue,
        "expr": b.cron.expr,
        "tz": b.cron.tz,
        "misfire": b.cron.misfire,
        "grace": b.cron.grace,
        "params": dict(b.cron.params),
        "paused": st.paused,
        "paused_at": iso(st.paused_at),
        # while paused, these slots are skipped as they fall due
        "next_runs": [d.isoformat() for d in b.cron.next_runs(NEXT_RUNS, after=after)],
        "last_run": iso(last_run),
        "last_trigger": trigger,
        "last_fired_at": iso(st.last_fired_at),
        "last_job": st.last_job,
        # a finished job's record expires after its result_ttl
        "last_status": job.status if job else ("expired" if st.last_job else None),
        "last_reason": job.reason if job else None,
        "last_error": job.error if job else None,
        "last_finished_at": iso(job.finished_at) if job else None,
        "fired": st.fired,
        "skipped": st.skipped,
        "runs_now": st.runs_now,
    }
