"""What ``jobkit worker`` imports on its way to the first job stays lean: no module of
another command, the archive, the web layer, or a library only they use. Each one it
imported would cost every worker's start (and the CLI's) its import time."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_ROOT

# The worker's path: the command line, the worker command built as `jobkit worker`
# builds it, the supervisor and the children it forks (imported by the command).
WORKER_PATH = """
import json, sys
from jobkit import cli
cli.area_commands("worker")
import jobkit.app, jobkit.worker.supervisor
print(json.dumps(sorted(sys.modules)))
"""

# Packages (and their submodules) the worker never uses.
KEPT_OFF = (
    "jobkit.archive",
    "jobkit.web",
    "jobkit.http",
    "jobkit.testing",
    "sqlalchemy",
    "rich",
    "fastapi",
    "jinja2",
    "uvicorn",
    "tenacity",
    "croniter",
    "opentelemetry.propagate",
)


def worker_modules() -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", WORKER_PATH],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
    )
    modules: list[str] = json.loads(done.stdout)
    return modules


def test_the_worker_imports_nothing_it_never_uses() -> None:
    modules = worker_modules()
    heavy = [m for m in modules if any(m == k or m.startswith(k + ".") for k in KEPT_OFF)]
    # of the command line, only the worker's module; of the views, only the package
    # (which names the error type every command catches)
    other_areas = [
        m
        for m in modules
        if m.startswith(("jobkit.cli.", "jobkit.ops."))
        and m not in {"jobkit.cli.common", "jobkit.cli.worker"}
    ]
    assert not heavy, heavy
    assert not other_areas, other_areas
