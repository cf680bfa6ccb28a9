"""The fault-injection suite's short setting (``python -m stress --short``), as a test:
about a minute of killed workers, schedulers and Redis and cut connections, after which
no job may be lost, no success recorded twice, and every check must pass.

It runs as a subprocess: the suite starts its own redis-server, proxy and processes, and
kills every one of them (whole process groups) however it ends.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson
import pytest

from tests.conftest import REPO_ROOT, clean_env

RUN_TIMEOUT = 360.0


def _findings(report: dict[str, Any], limit: int = 25) -> str:
    lines = [f"{f['check']}: {f['job']}: {f['detail']}" for f in report["findings"][:limit]]
    more = len(report["findings"]) - limit
    return "\n".join(lines + ([f"... and {more} more"] if more > 0 else []))


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_short_stress_run_loses_nothing_and_passes_every_check() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stress", "--short", "--json"],
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
    assert report["duplicate_successes"] == 0, f"{_findings(report)}\n{where}"
    assert report["surplus_successes_in_stats"] == 0, f"{_findings(report)}\n{where}"
    failed = {name: n for name, n in report["checks"].items() if n}
    assert not failed, f"checks failed: {failed}\n{_findings(report)}\n{where}"
    assert report["passed"] and done.returncode == 0
