"""The fault-injection suite's short setting (``python -m stress --short``, on one node
and with ``--cluster``), as a test:
about a minute of killed workers, schedulers and Redis and cut connections, after which
no job may be lost, no success recorded twice, and every check must pass. Also, quickly,
the checker's rules on made-up jobs.

It runs as a subprocess: the suite starts its own redis-server, proxy and processes, and
kills every one of them (whole process groups) however it ends.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from jobkit import registry
from stress.checker import Context, Verdict, check_job
from stress.cluster import Kill
from stress.evidence import JobView, Kills, Run, Windows
from stress.faults import FaultEvent
from stress.workload import JOB_NAMES, Kind
from tests.conftest import REPO_ROOT, clean_env

RUN_TIMEOUT = 360.0


def _findings(report: dict[str, Any], limit: int = 25) -> str:
    lines = [f"{f['check']}: {f['job']}: {f['detail']}" for f in report["findings"][:limit]]
    more = len(report["findings"]) - limit
    return "\n".join(lines + ([f"... and {more} more"] if more > 0 else []))


def _short_run(*extra: str) -> tuple[dict[str, Any], str]:
    """``python -m stress --short <extra> --json`` checked for the suite's promises; the
    report, and where its logs are (kept when it failed)."""
    done = subprocess.run(
        [sys.executable, "-m", "stress", "--short", *extra, "--json"],
        cwd=REPO_ROOT,
        env=clean_env(),
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr.decode(errors="replace")[-3000:]
    report = orjson.loads(done.stdout)
    where = f"logs: {report['workdir']}" if report["workdir"] else ""
    assert report["dispatched"] >= 1000
    assert report["drained"], f"jobs still active after the drain timeout; {where}"
    assert report["lost"] == 0, f"{report['lost']} jobs lost\n{_findings(report)}\n{where}"
    dup, surplus = report["duplicate_successes"], report["surplus_successes_in_stats"]
    assert dup == 0, f"{dup} duplicate successes\n{_findings(report)}\n{where}"
    assert surplus == 0, f"stats count {surplus} successes too many\n{_findings(report)}\n{where}"
    failed = {name: n for name, n in report["checks"].items() if n}
    assert not failed, f"checks failed: {failed}\n{_findings(report)}\n{where}"
    assert report["passed"] and done.returncode == 0
    return report, where


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_short_stress_run_loses_nothing_and_passes_every_check() -> None:
    _short_run()


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_short_stress_run_on_a_cluster_loses_nothing_and_passes_every_check() -> None:
    """The same on a three-master Redis Cluster, three queues on three masters, with
    masters killed (their replicas take over) among the faults."""
    report, where = _short_run("--cluster")
    assert report["config"]["cluster"] and len(report["config"]["queues"]) == 3
    kills = report["master_kills"]
    assert kills, "no master was killed"
    unhealed = [k for k in kills if k["failover"] is None or k["rejoined"] is None]
    assert not unhealed, f"masters that did not fail over or rejoin: {unhealed}; {where}"


# -- the checker's rules, on made-up jobs: it must never forgive a loss --------------------

NOW = 1_800_000_000_000  # ms


def _view(kind: Kind, status: str, **fields: Any) -> JobView:
    runs = fields.pop("runs", [])
    policy = registry.lookup(JOB_NAMES[kind]).retry.max_attempts
    record = {
        "name": JOB_NAMES[kind], "lane": "default", "params": "{}", "status": status,
        "created_at": str(NOW), "attempts": "1", "max_attempts": str(policy), "crashes": "0",
        **{k: str(v) for k, v in fields.items()},
    }  # fmt: skip
    if status == "succeeded":
        token = runs[-1].token if runs else "t"
        record["result"] = orjson.dumps({"id": "j", "token": token}).decode()
    tokens = 1 if status in ("succeeded", "dead") else 0
    return JobView("j", kind, record, runs, tokens, status == "dead", False, False)


def _run(attempt: int, pid: int = 100, outcome: str | None = "ok", at: int = 0) -> Run:
    return Run(f"t{attempt}", attempt, pid, pid, NOW + at, outcome, None)


def _judge(view: JobView, kills: Sequence[Kill] = (), events: Sequence[FaultEvent] = ()) -> Verdict:
    verdict = Verdict()
    check_job(view, Context(Kills(kills), Windows(events, 3.0, 10.0), max_crashes=4), verdict)
    return verdict


def _checks(verdict: Verdict) -> set[str]:
    return {f.check for f in verdict.findings}


def test_checker_counts_a_missing_or_stuck_job_as_lost() -> None:
    missing = JobView("j", Kind.INSTANT, {}, [], 0, False, False, False)
    assert _judge(missing).lost == 1
    stuck = _judge(_view(Kind.INSTANT, "running", runs=[_run(1)]))
    assert stuck.lost == 1 and "final" in _checks(stuck)


def test_checker_passes_a_clean_success_and_flags_a_second_one() -> None:
    assert _judge(_view(Kind.INSTANT, "succeeded", runs=[_run(1)])).findings == []
    twice = _view(Kind.INSTANT, "succeeded", runs=[_run(1)])
    twice.done_tokens = 2
    verdict = _judge(twice)
    assert verdict.duplicate_successes == 1 and "one_success" in _checks(verdict)


def test_a_crash_is_forgiven_only_when_the_harness_killed_the_run() -> None:
    def crashed() -> JobView:
        runs = [_run(a, pid=100 + a, outcome=None, at=1000 * a) for a in range(1, 5)]
        return _view(Kind.SLOW, "dead", reason="crashed", crashes=4, attempts=4, runs=runs)

    kills = [Kill("child", "s0g1", [100 + a], NOW + 1000 * a + 500) for a in range(1, 5)]
    assert _judge(crashed(), kills).findings == []
    unexplained = _judge(crashed(), kills[:3])
    assert _checks(unexplained) >= {"crashes_explained", "unfinished_killed"}


def test_an_unrun_claim_needs_a_fault_around_it() -> None:
    def stranded() -> JobView:  # attempt 1 was claimed, never ran, and lapsed
        return _view(Kind.INSTANT, "succeeded", attempts=2, crashes=1, runs=[_run(2, at=20_000)])

    assert "crashes_explained" in _checks(_judge(stranded()))
    stall = FaultEvent("stall", 0.0, NOW, duration=4.0)
    lone = FaultEvent("lone_supervisor", 0.0, NOW)
    assert _judge(stranded(), events=[stall]).findings == []
    # a supervisor killed alone takes its children with it: as a whole-worker kill
    assert _judge(stranded(), events=[lone]).findings == []


def test_a_last_claim_is_forgiven_when_its_whole_supervisor_was_killed_after_it() -> None:
    def out_of_attempts() -> JobView:  # attempt 3 of 3 claimed by s0g1 at +100 ms, never ran
        runs = [_run(1, outcome="raised"), _run(2, outcome="raised", at=50)]
        return _view(Kind.FAILING, "dead", reason="crashed", attempts=3, crashes=1,
                     started_at=NOW + 100, worker="s0g1", runs=runs)  # fmt: skip

    whole = Kill("supervisor", "s0g1", [7], NOW + 200, group=7)
    assert _judge(out_of_attempts(), kills=[whole]).findings == []
    before = Kill("supervisor", "s0g1", [7], NOW + 50, group=7)  # before the claim: no
    assert "crashes_explained" in _checks(_judge(out_of_attempts(), kills=[before]))
    alone = Kill("lone_supervisor", "s0g1", [7], NOW + 200)  # its children die with it
    assert _judge(out_of_attempts(), kills=[alone]).findings == []


def test_a_failing_job_must_use_every_attempt_and_a_delayed_one_must_wait() -> None:
    error = orjson.dumps({"type": "Planned"}).decode()
    runs = [_run(1, outcome="raised"), _run(2, outcome="raised")]
    early = _view(Kind.FAILING, "dead", reason="exception", attempts=2, error=error, runs=runs)
    assert "outcome" in _checks(_judge(early))
    delayed = _view(Kind.DELAYED, "succeeded", runs=[_run(1)])
    delayed.params = {"not_before_ms": NOW + 50}
    assert "not_early" in _checks(_judge(delayed))
