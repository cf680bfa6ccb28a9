"""The verdict on a run: for every dispatched id, what jobkit promised, checked against
Redis and the executions' own bookkeeping.

Per job (each rule a named check; a job may fail several):

- ``exists`` / ``final``: the hash is there and its status is final (else the job is
  *lost*: missing, or stuck queued, running, scheduled or retrying after the drain);
- ``outcome``: the state its kind must end in (see :func:`expected`);
- ``one_success``: at most one final transition, exactly one for a success, counted by
  the ``done:<id>`` tokens jobkit pushes in the script that makes the transition;
- ``result``: a success's result names this job and an execution that ended ``ok``;
- ``crashes_explained``: every crash jobkit counted is matched by an execution the
  harness killed (its pid or group, after it began and before the job moved on) or by an
  attempt that never ran while a fault was in flight around its claim. A crash with
  neither is a jobkit bug, never forgiven;
- ``attempts``: attempts within the class's max_attempts; executions no more than
  attempts plus killed executions (a killed child's finished job is run again uncounted);
- ``unfinished_killed``: an execution that never ended was killed by the harness;
- ``dead_set``: in the dead set exactly when dead;
- ``not_early``: a delayed job never started before its due time (Redis TIME);
- ``released``: no longer in ``running`` or ``scheduled``.

Global: statistics agree with the jobs (``stats.succeeded`` counts every recorded
success, so a surplus is a duplicate success even where tokens missed it), no queue,
running or scheduled entry is left, the dead set holds only dead jobs, every job hash is
well formed, and no process outlived its supervisor or died without the harness's hand.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from jobkit import registry
from jobkit.errors import UnknownJobError
from jobkit.models import TERMINAL_STATUSES, Status
from stress.evidence import (
    JobView,
    Kills,
    Windows,
    leftovers,
    read_jobs,
    scan_job_ids,
)
from stress.jobs import Book, loads
from stress.shards import Client, shards
from stress.workload import KIND_OF_NAME, Kind

CHECKS = (
    "exists",
    "final",
    "outcome",
    "one_success",
    "result",
    "crashes_explained",
    "attempts",
    "unfinished_killed",
    "dead_set",
    "not_early",
    "released",
    "stats_agree",
    "nothing_left",
    "dead_set_exact",
    "well_formed",
    "no_orphans",
    "no_unexpected_exits",
)
SUCCESS_KINDS = frozenset(
    {Kind.INSTANT, Kind.DELAYED, Kind.SLOW, Kind.CANARY, Kind.PROBE, Kind.FLAKY}
)
HASH_FIELDS = ("name", "lane", "params", "status", "created_at")


@dataclass
class Finding:
    check: str
    job: str
    detail: str


@dataclass
class Verdict:
    """Every figure the report prints, and every finding."""

    accepted: int = 0
    unacked_calls: int = 0
    unacked_jobs: int = 0  # jobs in Redis no caller was told about
    missing: int = 0
    stuck: int = 0
    duplicate_successes: int = 0  # jobs with more than one final transition
    surplus_successes: int = 0  # stats.succeeded minus jobs that are succeeded
    executions_max: int = 0
    executions_mean: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    crashes: int = 0
    crashes_by_kill: int = 0  # a run the harness killed
    crashes_by_holder_kill: int = 0  # an unrun claim whose supervisor the harness killed
    crashes_by_fault_window: int = 0  # an unrun claim with a fault in flight around it
    findings: list[Finding] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.missing + self.stuck

    def failures(self) -> Counter[str]:
        return Counter(f.check for f in self.findings)

    @property
    def passed(self) -> bool:
        return not self.findings and not self.lost and not self.duplicate_successes

    def fail(self, check: str, job: str, detail: str) -> None:
        self.findings.append(Finding(check, job, detail))


@dataclass
class Context:
    """What the rules need besides the job itself."""

    kills: Kills
    windows: Windows
    max_crashes: int


def expected(job: JobView, ctx: Context) -> str | None:
    """Why the job's final state is wrong for its kind, or None if it is right."""
    status, reason = job.status, job.record.get("reason", "")
    attempts, crashes = job.number("attempts"), job.number("crashes")
    max_attempts = job.number("max_attempts")
    crashed_out = crashes >= 1 and (crashes >= ctx.max_crashes or attempts >= max_attempts)
    if status == Status.DEAD.value and reason == "crashed":
        return None if crashed_out else f"dead crashed with {crashes} crash(es)"
    kind = job.kind
    if kind in SUCCESS_KINDS:
        if status != Status.SUCCEEDED.value:
            if kind is Kind.FLAKY and reason == "exception" and attempts >= max_attempts:
                return None  # crashes ate the attempts its planned failures needed
            return f"{status} ({reason or '-'}), expected succeeded"
        if kind is Kind.FLAKY and job.raised != job.params.get("fail_times"):
            return f"succeeded after {job.raised} failures, planned {job.params.get('fail_times')}"
        return None
    if kind is Kind.FAILING:
        if status != Status.DEAD.value or reason != "exception":
            return f"{status} ({reason or '-'}), expected dead (exception)"
        if attempts != max_attempts:
            return f"dead after {attempts} of {max_attempts} attempts"
        error = loads(job.record.get("error")) or {}
        if not isinstance(error, dict) or error.get("type") != "Planned":
            return f"dead with the error {str(error)[:80]}, not its own"
        return None
    return None  # a job nobody was promised: only the global checks apply


def check_job(job: JobView, ctx: Context, verdict: Verdict) -> None:
    """Apply every per-job rule to ``job``."""
    fail = verdict.fail
    if not job.record:
        verdict.missing += 1
        fail("exists", job.id, f"{job.kind} job accepted but not in Redis")
        return
    if not _final(job.status):
        verdict.stuck += 1
        fail("final", job.id, f"{job.kind} job still {job.status or '?'} after the drain")
    verdict.outcomes[_outcome(job)] += 1
    problem = expected(job, ctx)
    if problem:
        fail("outcome", job.id, f"{job.kind}: {problem}")
    _check_success(job, verdict)
    _check_crashes(job, ctx, verdict)
    _check_attempts(job, ctx, verdict)
    if (job.status == Status.DEAD.value) != job.in_dead:
        fail("dead_set", job.id, f"status {job.status}, in dead set: {job.in_dead}")
    if job.in_running or job.in_scheduled:
        fail("released", job.id, f"{job.status} but still in running/scheduled")
    due = job.params.get("not_before_ms")
    if job.kind is Kind.DELAYED and due is not None:
        early = [r for r in job.runs if r.start_ms < int(due)]
        if early:
            fail("not_early", job.id, f"started {int(due) - early[0].start_ms} ms before due")


_FINAL = {s.value for s in TERMINAL_STATUSES}


def _final(status: str) -> bool:
    return status in _FINAL


def _outcome(job: JobView) -> str:
    reason = job.record.get("reason")
    if job.status == Status.DEAD.value:
        return f"dead {reason}"
    return job.status or "missing"


def _check_success(job: JobView, verdict: Verdict) -> None:
    if job.done_tokens > 1:
        verdict.duplicate_successes += 1
        detail = f"{job.done_tokens} final transitions, now {job.status}"
        verdict.fail("one_success", job.id, detail)
    if job.status != Status.SUCCEEDED.value:
        return
    if job.done_tokens == 0:
        verdict.fail("one_success", job.id, "succeeded, but no final transition after a run")
    result = loads(job.record.get("result")) or {}
    ok = {r.token for r in job.runs if r.outcome == "ok"}
    if not isinstance(result, dict) or result.get("id") != job.id or result.get("token") not in ok:
        verdict.fail("result", job.id, f"result {str(result)[:80]} is not one of its own runs")


def _check_crashes(job: JobView, ctx: Context, verdict: Verdict) -> None:
    crashes, attempts = job.number("crashes"), job.number("attempts")
    verdict.crashes += crashes
    killed = 0
    for i, run in enumerate(job.runs):
        # after a kill, the job's next run (or its end) shows it moved on
        moved_on = job.runs[i + 1].start_ms if i + 1 < len(job.runs) else _finished_ms(job)
        if ctx.kills.killed_between(run, moved_on):
            killed += 1
        elif run.outcome is None:
            detail = f"{ctx.kills.describe(run)}, not by the harness"
            verdict.fail("unfinished_killed", job.id, detail)
    ran = {r.attempt for r in job.runs}
    never_ran = [a for a in range(1, attempts + 1) if a not in ran]
    holder_killed = covered = 0
    started = _ms(job.record.get("started_at"))
    created = _ms(job.record.get("created_at"))
    worker = job.record.get("worker", "")
    for attempt in never_ran:
        if attempt == attempts and started:  # the last claim: its time and holder are known
            if ctx.kills.worker_killed_after(worker, started):
                holder_killed += 1
            else:
                covered += ctx.windows.around(started)
        else:
            covered += ctx.windows.during(created, _finished_ms(job))
    by_kill = min(crashes, killed)
    by_holder = min(crashes - by_kill, holder_killed)
    by_window = min(crashes - by_kill - by_holder, covered)
    verdict.crashes_by_kill += by_kill
    verdict.crashes_by_holder_kill += by_holder
    verdict.crashes_by_fault_window += by_window
    if crashes > by_kill + by_holder + by_window:
        verdict.fail(
            "crashes_explained",
            job.id,
            f"{crashes} crash(es): {killed} run(s) killed, {holder_killed + covered} of "
            f"{len(never_ran)} unrun claim(s) explained by a kill or a fault in flight; runs: "
            + "; ".join(ctx.kills.describe(r) for r in job.runs),
        )


def _check_attempts(job: JobView, ctx: Context, verdict: Verdict) -> None:
    attempts, max_attempts = job.number("attempts"), job.number("max_attempts")
    policy = _policy_attempts(job.record.get("name", ""))
    if policy is not None and max_attempts != policy:
        verdict.fail("attempts", job.id, f"max_attempts {max_attempts}, class says {policy}")
    if attempts > max_attempts:
        verdict.fail("attempts", job.id, f"{attempts} attempts of {max_attempts}")
    # a killed child's finished run is handed back uncounted (its outcome never recorded)
    killed = sum(1 for r in job.runs if ctx.kills.killed_between(r, float("inf")))
    if len(job.runs) > attempts + killed:
        verdict.fail("attempts", job.id, f"{len(job.runs)} executions for {attempts} attempts")


def _policy_attempts(name: str) -> int | None:
    try:
        return registry.lookup(name).retry.max_attempts
    except UnknownJobError:
        return None


def _ms(raw: str | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def _finished_ms(job: JobView) -> float:
    finished = _ms(job.record.get("finished_at"))
    return float(finished) if finished else float("inf")


def check_globals(
    client: Client, verdict: Verdict, views: dict[str, JobView], known: set[str]
) -> None:
    """The checks about Redis as a whole, after the per-job ones."""
    stats: dict[str, int] = {}
    for shard in shards(client):
        for name, n in client.hgetall(shard.stats).items():
            stats[str(name)] = stats.get(str(name), 0) + int(n)
    succeeded = sum(1 for v in views.values() if v.status == Status.SUCCEEDED.value)
    dead = sum(1 for v in views.values() if v.status == Status.DEAD.value)
    verdict.surplus_successes = stats.get("succeeded", 0) - succeeded
    if verdict.surplus_successes:
        verdict.fail(
            "stats_agree", "-", f"stats count {stats.get('succeeded', 0)} successes, "
            f"{succeeded} jobs succeeded",
        )  # fmt: skip
    if stats.get("dead", 0) != dead:
        detail = f"stats count {stats.get('dead', 0)} dead, {dead} jobs dead"
        verdict.fail("stats_agree", "-", detail)
    for key, size in leftovers(client).items():
        if size:
            verdict.fail("nothing_left", "-", f"{key} still holds {size}")
    for raw in [j for shard in shards(client) for j in client.zrange(shard.dead, 0, -1)]:
        job_id = str(raw)
        view = views.get(job_id)
        if view is None or view.status != Status.DEAD.value:
            verdict.fail("dead_set_exact", job_id, "in the dead set but not a dead job")
    for view in views.values():
        missing = [f for f in HASH_FIELDS if f not in view.record]
        if view.record and (missing or view.record.get("name") not in KIND_OF_NAME):
            verdict.fail("well_formed", view.id, f"garbage job hash: {_short(view.record)}")
        elif view.id not in known and not _final(view.status):
            verdict.fail("final", view.id, f"unacknowledged job still {view.status}")


def _short(record: dict[str, str]) -> str:
    return ", ".join(f"{k}={v[:20]}" for k, v in sorted(record.items()))[:160]


def judge(
    client: Client,
    book: Book,
    accepted: dict[str, Kind],
    ctx: Context,
    unacked_calls: int,
) -> tuple[Verdict, dict[str, JobView]]:
    """Check every accepted job, then Redis as a whole; also returns every job read."""
    verdict = Verdict(accepted=len(accepted), unacked_calls=unacked_calls)
    found = set(scan_job_ids(client))
    kinds: dict[str, Kind | None] = {i: accepted.get(i) for i in found | set(accepted)}
    views: dict[str, JobView] = {}
    executions = []
    for view in read_jobs(client, book, kinds):
        views[view.id] = view
        if view.id in accepted:
            check_job(view, ctx, verdict)
            executions.append(len(view.runs))
        elif view.record:
            verdict.unacked_jobs += 1
    verdict.executions_max = max(executions, default=0)
    verdict.executions_mean = round(sum(executions) / max(1, len(executions)), 3)
    check_globals(client, verdict, views, set(accepted))
    return verdict, views


def summary(verdict: Verdict) -> dict[str, Any]:
    """Per check: how many findings (0 = passed)."""
    failures = verdict.failures()
    return {name: failures.get(name, 0) for name in CHECKS}
