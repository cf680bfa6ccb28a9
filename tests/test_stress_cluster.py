"""The fault-injection suite's short setting on a Redis Cluster (``python -m stress --short
--cluster``): three masters with a replica each, jobs on three queues whose shards live on
different masters, while worker children, whole supervisors, lone supervisors, schedulers
and masters are killed (a killed master's replica takes over; the node rejoins as a
replica). No job may be lost, no success recorded twice, and every check must pass.

It runs as a subprocess: the suite starts its own cluster and processes, and kills every
one of them (whole process groups) however it ends.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson
import pytest

from tests.conftest import REPO_ROOT, clean_env

RUN_TIMEOUT = 240.0


def _findings(report: dict[str, Any], limit: int = 25) -> str:
    lines = [f"{f['check']}: {f['job']}: {f['detail']}" for f in report["findings"][:limit]]
    more = len(report["findings"]) - limit
    return "\n".join(lines + ([f"... and {more} more"] if more > 0 else []))


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_short_stress_run_on_a_cluster_loses_nothing_and_passes_every_check() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stress", "--short", "--cluster", "--json"],
        cwd=REPO_ROOT,
        env=clean_env(),
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr.decode(errors="replace")[-3000:]
    report = orjson.loads(done.stdout)
    where = f"logs: {report['workdir']}" if report["workdir"] else ""
    assert report["config"]["cluster"] and len(report["config"]["queues"]) == 3
    assert report["dispatched"] >= 1000
    kills = report["master_kills"]
    assert kills, "no master was killed"
    unhealed = [k for k in kills if k["failover"] is None or k["rejoined"] is None]
    assert not unhealed, f"masters that did not fail over or rejoin: {unhealed}; {where}"
    assert report["drained"], f"jobs still active after the drain timeout; {where}"
    assert report["lost"] == 0, f"{report['lost']} jobs lost\n{_findings(report)}\n{where}"
    dup, surplus = report["duplicate_successes"], report["surplus_successes_in_stats"]
    assert dup == 0, f"{dup} duplicate successes\n{_findings(report)}\n{where}"
    assert surplus == 0, f"stats count {surplus} successes too many\n{_findings(report)}\n{where}"
    failed = {name: n for name, n in report["checks"].items() if n}
    assert not failed, f"checks failed: {failed}\n{_findings(report)}\n{where}"
    assert report["passed"] and done.returncode == 0
