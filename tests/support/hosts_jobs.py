"""Jobs for the many-hosts tests; workers load them with ``-A tests.support.hosts_jobs``.

Each host's worker runs with ``HOST_NAME`` (which host this is) and ``HOST_RUNS`` (a
file on that host's disk) in its environment. A job writes what it does to that file, not
to Redis: a host cut off from the network still writes its own disk, so the test can see
what a host did while nobody could hear from it.
"""

from __future__ import annotations

import os
import time

from pydantic import BaseModel

from jobkit import BaseJob


def host_name() -> str:
    """The host this process runs on (the worker's ``HOST_NAME``)."""
    return os.environ.get("HOST_NAME", "?")


def note(event: str, job_id: str, attempt: int) -> None:
    """Append ``<event> <job id> <attempt> <time>`` to this host's ``HOST_RUNS`` file."""
    path = os.environ.get("HOST_RUNS")
    if path:
        with open(path, "a") as runs:  # one short write per line: lines never interleave
            runs.write(f"{event} {job_id} {attempt} {time.time():.3f}\n")


class Where(BaseJob):
    """Returns the name of the host that ran it."""

    def perform(self) -> str:
        return host_name()


class Slow(BaseJob):
    """Sleeps ``seconds``; notes its start and end on the host's disk; returns where and
    on which attempt it ran."""

    class Params(BaseModel):
        seconds: float

    params: Params  # what the worker validated against the class above

    def perform(self) -> dict[str, object]:
        note("start", self.job_id, self.attempt)
        time.sleep(self.params.seconds)
        note("end", self.job_id, self.attempt)
        return {"host": host_name(), "attempt": self.attempt}
